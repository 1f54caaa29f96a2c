"""What a scoped adapter (``MUCODE_LORA_SCOPE=data-libraries``) costs the llama.cpp decoder: the
same sampled chats (HumanEval problems, DataFrameBench test problems, and both kinds at once) on
the bundled GGUF without an adapter, with the adapter on every problem, and scoped. Only the mixed
load can pay: its two kinds decode in passes of their own, the adapter switched between them.

    .venv/bin/python bench/adapter_scope.py --lora ~/.cache/mucode/checkpoint/generator-lora.gguf \\
        [--problems 4] [--n 2] [--max-tokens 96] [--repeat 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from _machine import machine

from mucode.engine.generators.base import SamplingParams
from mucode.engine.generators.llamacpp import LlamaCppGenerator
from mucode.engine.model_store import pull_gguf
from mucode.engine.trace import ChatMessage
from mucode.problems import load_humaneval
from mucode.training.problems import load_problem_set


async def tokens_per_second(
    generator: LlamaCppGenerator, problems: list[str], params: SamplingParams
) -> float:
    start = time.perf_counter()
    done = await asyncio.gather(
        *(generator.sample([ChatMessage(role="user", content=p)], params) for p in problems)
    )
    tokens = sum(c.completion_tokens for completions in done for c in completions)
    return round(tokens / (time.perf_counter() - start), 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lora", required=True, help="a GGUF LoRA adapter for the bundled GGUF")
    parser.add_argument("--problems", type=int, default=4, help="of each kind")
    parser.add_argument("--n", type=int, default=2, help="samples per problem")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each load; the best counts")
    args = parser.parse_args()

    plain = [p.prompt for p in load_humaneval()[: args.problems]]
    library = [p.prompt for p in load_problem_set("dataframebench:test")[: args.problems]]
    loads = {"humaneval": plain, "dataframebench": library, "mixed": plain + library}
    # Every sample writes exactly max_tokens, so the loads differ only in what they decode with.
    params = SamplingParams(n=args.n, temperature=0.7, max_tokens=args.max_tokens, seed=1, ignore_eos=True)
    rows: dict[str, Any] = {}
    for name, lora, scope in (
        ("no adapter", None, "all"),
        ("adapter on every problem", args.lora, "all"),
        ("adapter scoped to data-libraries", args.lora, "data-libraries"),
    ):
        generator = LlamaCppGenerator.load(
            pull_gguf(),
            lora=lora,
            lora_scope=scope,  # type: ignore[arg-type]
            n_ctx=4096,
            max_sequences=len(loads["mixed"]) * args.n,
            kv_streams=True,
            prefix_cache=0,
        )
        try:
            asyncio.run(tokens_per_second(generator, plain[:1], params))  # warm
            rows[name] = {
                load: max(
                    asyncio.run(tokens_per_second(generator, problems, params)) for _ in range(args.repeat)
                )
                for load, problems in loads.items()
            }
        finally:
            asyncio.run(generator.close())
        print(name, rows[name], file=sys.stderr, flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "settings": vars(args),
        "tokens_per_second": rows,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
