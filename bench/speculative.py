"""Prompt-lookup speculative decoding on the llama.cpp backend, against the same backend without
it, in one run: greedy searches (n=1, three turns, repeats not refilled, so turns 2-3 are greedy
repair turns that read the previous program) on HumanEval problems, each once per setting.

Reports per setting the completion tokens per second of the generator calls (wall time of each
call, its prompt included) on turn 1 and on repair turns, and whether every answer is token for
token the one decoded without drafting.

    .venv/bin/python bench/speculative.py [--problems 20] [--drafts 0,8,16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from _machine import machine

from mucode.engine import prompts
from mucode.engine.generators.base import Completion, Generator, SamplingParams
from mucode.engine.generators.llamacpp import LlamaCppGenerator
from mucode.engine.model_store import pull_gguf
from mucode.engine.options import SolveOptions
from mucode.engine.search import SearchEngine
from mucode.engine.trace import ChatMessage
from mucode.sandbox import SandboxPool
from mucode.training.problems import humaneval_folds


class Recorder(Generator):
    """Passes calls through, noting each call's turn, tokens, seconds and texts."""

    backend = "recorder"
    supports_prefill = True

    def __init__(self, inner: LlamaCppGenerator) -> None:
        self.inner = inner
        self.model = inner.model
        self.calls: list[dict[str, Any]] = []
        self.turn = 0

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        started = time.perf_counter()
        completions = await self.inner.sample(messages, params)
        self.calls.append(
            {
                "repair": len(messages) > 2,
                "tokens": sum(c.completion_tokens for c in completions),
                "seconds": time.perf_counter() - started,
                "texts": [c.text for c in completions],
            }
        )
        return completions

    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        return await self.inner.complete(prompt, params)


def rate(calls: list[dict[str, Any]]) -> float:
    seconds = sum(c["seconds"] for c in calls)
    return round(sum(c["tokens"] for c in calls) / seconds, 1) if seconds else 0.0


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", type=int, default=20, help="the first K of HumanEval fold 0")
    parser.add_argument("--drafts", default="0,8,16", help="draft lengths to compare; 0 is the baseline")
    args = parser.parse_args()

    problems = [p for p in humaneval_folds()[0] if p.public_tests][: args.problems]
    options = SolveOptions(n=1, turns=3, temperature=0.0, selection="pt", refill_repeats=False)
    generator = LlamaCppGenerator.load(pull_gguf(), kv_tokens=16384)
    recorder = Recorder(generator)
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        async with SandboxPool() as pool:
            engine = SearchEngine(recorder, pool, prompt=prompts.DEFAULT)
            for length in (int(d) for d in args.drafts.split(",")):
                generator.decoder.draft_tokens = length
                recorder.calls = []
                for problem in problems:
                    await engine.solve(problem, options)
                runs[str(length)] = recorder.calls
    finally:
        await generator.close()

    baseline = runs[args.drafts.split(",")[0]]
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "problems": len(problems),
        "settings": {},
    }
    for setting, calls in runs.items():
        first = [c for c in calls if not c["repair"]]
        repair = [c for c in calls if c["repair"]]
        report["settings"][setting] = {
            "turn1_calls": len(first),
            "turn1_tok_per_s": rate(first),
            "repair_calls": len(repair),
            "repair_tok_per_s": rate(repair),
            "identical_to_baseline": [c["texts"] for c in calls] == [c["texts"] for c in baseline],
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
