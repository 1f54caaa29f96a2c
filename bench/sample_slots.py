"""Is every sample slot of a Best-of-N an equally good draw?

    .venv/bin/python bench/sample_slots.py --traces T.traces.jsonl.gz --codes codes.jsonl \
        [--model qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --problems humaneval --limit 40]

From a search's traces and the oracle labels of their programs (`mucode train codes`): the share
of problems whose turn-1 candidate in each slot passes. With --model, the mechanism, live on the
llama.cpp backend: each slot's first-token log-probability when every problem samples on the same
seed (as the search did before its seeds depended on the problem) and on the search's own seed
for the problem (``turn_seed``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from _machine import machine

from mucode.engine.generators.base import SamplingParams
from mucode.engine.prompts import DEFAULT
from mucode.engine.search import turn_seed
from mucode.engine.trace import SolveResult
from mucode.problems import iter_jsonl
from mucode.training.problems import load_problem_set
from mucode.training.schemas import LabeledCode, read_jsonl


def slot_pass_rates(traces: Path, codes: Path) -> dict[str, Any]:
    labels = {(c.problem_id, c.code): c.passed for c in read_jsonl(codes, LabeledCode)}
    passed: dict[int, list[bool]] = defaultdict(list)
    for _, row in iter_jsonl(traces):
        result = SolveResult.model_validate(row)
        for c in result.turns[0].candidates:
            passed[c.index].append(bool(c.code and labels.get((result.problem_id, c.code))))
    return {
        str(k): {"problems": len(v), "pass_rate": round(sum(v) / len(v), 3)}
        for k, v in sorted(passed.items())
    }


async def first_tokens(model: str, problems: str, limit: int, n: int) -> dict[str, Any]:
    from mucode.engine.generators.llamacpp import LlamaCppGenerator

    generator = LlamaCppGenerator.load(model, n_ctx=4096, kv_tokens=8192, max_sequences=n)
    first = DEFAULT.first_turn
    found: dict[str, list[list[float]]] = {"one seed for every problem": [], "turn_seed per problem": []}
    try:
        for problem in load_problem_set(problems)[:limit]:
            for way, seed in (("one seed for every problem", 1), ("turn_seed per problem", None)):
                params = SamplingParams(
                    n=n, temperature=0.7, top_p=0.95, max_tokens=1, prefill=DEFAULT.prefill,
                    seed=turn_seed(0, 1, problem) if seed is None else seed,
                )  # fmt: skip
                found[way].append([c.logprob or 0.0 for c in await generator.sample(first(problem), params)])
    finally:
        await generator.close()
    return {
        way: {f"slot {k}": round(sum(row[k] for row in rows) / len(rows), 3) for k in range(n)}
        for way, rows in found.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=Path, required=True)
    parser.add_argument("--codes", type=Path, required=True)
    parser.add_argument("--model", default=None, help="GGUF: also run the first-token check")
    parser.add_argument("--problems", default="humaneval")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--n", type=int, default=4, help="samples per request (the sampled slots)")
    args = parser.parse_args()
    rates = slot_pass_rates(args.traces, args.codes)
    report: dict[str, Any] = {"machine": machine(), "traces": str(args.traces), "turn-1 pass by slot": rates}
    if args.model:
        report[f"mean first-token log-probability by sampled slot ({args.limit} problems)"] = asyncio.run(
            first_tokens(args.model, args.problems, args.limit, args.n)
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
