"""Kept prompts (llama.cpp's prefix cache, ``MUCODE_PREFIX_CACHE``) against none, and the KV
cache's two layouts (``MUCODE_KV_STREAMS``), in one run, on the requests a real search made: each
problem's trace (``mucode eval`` writes them) is replayed through the llama.cpp backend — turn 1's
greedy and sampled requests, each feedback turn's request and its refill, with the prompts the
search sent and answers of the lengths it got (end of sequence ignored, so every setting writes the
same tokens), the sandbox's time between turns as a pause, several problems in flight as in the
evaluation.

    .venv/bin/python bench/prefix_cache.py --traces report.bon5-pt.traces.jsonl.gz [--limit 4]
        [--kept 16,0] [--layouts shared,streams] [--in-flight 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from _machine import machine

from mucode.engine import prompts
from mucode.engine.generators.base import SamplingParams
from mucode.engine.generators.llamacpp import LlamaCppGenerator
from mucode.engine.model_store import pull_gguf
from mucode.engine.options import SolveOptions
from mucode.engine.trace import ChatMessage, SolveResult, TurnRecord
from mucode.training.schemas import read_jsonl


def requests_of(turn: TurnRecord, options: SolveOptions) -> list[tuple[list[ChatMessage], int, int, float]]:
    """(messages, n, answer tokens, temperature) of each request a turn made, in order. A feedback
    turn's repeated samples are not in the trace: their tokens are the turn's total less the
    refills', shared out evenly."""
    tokens = [c.usage.completion_tokens for c in turn.candidates]
    refills = [t for c, t in zip(turn.candidates, tokens, strict=True) if c.refill]
    temperature = options.temperature
    if turn.turn == 1 and options.greedy_candidate and len(tokens) > 1:
        greedy, sampled = tokens[0], tokens[1:]
        return [(turn.messages, 1, greedy, 0.0), (turn.messages, len(sampled), max(sampled), temperature)]
    if turn.turn == 1:
        return [(turn.messages, len(tokens), max(tokens), temperature)]
    own = turn.usage.completion_tokens - sum(refills)
    made = [(turn.messages, len(tokens), max(1, own // len(tokens)), temperature)]
    if refills and turn.refill_messages:
        made.append((turn.refill_messages, len(refills), max(refills), temperature))
    return made


async def replay(generator: LlamaCppGenerator, traces: list[SolveResult], in_flight: int) -> dict[str, float]:
    """Wall seconds, prompt tokens (each request's once) and answer tokens of the replay."""
    slots = asyncio.Semaphore(in_flight)
    prefill = prompts.DEFAULT.prefill
    totals = {"prompt_tokens": 0, "completion_tokens": 0}

    async def problem(trace: SolveResult) -> None:
        async with slots:
            for turn in trace.turns:
                for messages, n, tokens, temperature in requests_of(turn, trace.options):
                    params = SamplingParams(
                        n=n, temperature=temperature, max_tokens=tokens, ignore_eos=True, seed=0
                    )
                    done = await generator.complete(generator._opened(messages) + prefill, params)
                    totals["prompt_tokens"] += done[0].prompt_tokens
                    totals["completion_tokens"] += sum(c.completion_tokens for c in done)
                runs = [c.execution.duration_ms for c in turn.candidates if c.execution]
                await asyncio.sleep(max(runs, default=0.0) / 1000)

    started = time.perf_counter()
    await asyncio.gather(*(problem(t) for t in traces))
    return {"seconds": round(time.perf_counter() - started, 1), **totals}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=Path, required=True, help="a config's traces (.jsonl or .jsonl.gz)")
    parser.add_argument("--limit", type=int, default=4, help="the first K problems of the traces")
    parser.add_argument("--in-flight", type=int, default=4, help="problems at once (eval's --concurrency)")
    parser.add_argument("--kept", default="16,0", help="prefix cache sizes to compare, run in this order")
    parser.add_argument("--layouts", default="shared", help="KV layouts to compare: shared, streams")
    args = parser.parse_args()

    traces = read_jsonl(args.traces, SolveResult)[: args.limit]
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "traces": str(args.traces),
        "problems": [t.problem_id for t in traces],
        "in_flight": args.in_flight,
        "runs": [],
    }
    for layout in args.layouts.split(","):
        for kept in (int(k) for k in args.kept.split(",")):
            generator = LlamaCppGenerator.load(pull_gguf(), prefix_cache=kept, kv_streams=layout == "streams")
            try:
                run = asyncio.run(replay(generator, traces, args.in_flight))
                run["reused_prompt_tokens"] = generator.decoder.reused_tokens
            finally:
                asyncio.run(generator.close())
            report["runs"].append({"layout": layout, "prefix_cache": kept, **run})
            print(json.dumps(report["runs"][-1]), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
