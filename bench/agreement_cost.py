"""What execution agreement costs in wall time: Best-of-5 with random choice against Best-of-5
with selection `agree` (written calls and their runs), on the same HumanEval problems
with the public tests withheld, one problem at a time, each configuration with its own empty
sample cache (nothing replayed: both generate everything). Target: agree at most 2x random.

    .venv/bin/python bench/agreement_cost.py [--limit 12] [--seed 7] [--out runs/agreement-cost]

Prints minutes for each, the ratio, and agree's own time (waiting for the written calls and
running them) next to the generation time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from mucode.engine.loading import load_generator
from mucode.engine.settings import EngineSettings
from mucode.engine.trace import SolveResult
from mucode.training.evaluate import evaluate
from mucode.training.problems import load_problem_set


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=12, help="first K problems")
    parser.add_argument("--seed", type=int, default=7, help="a seed no cached run used")
    parser.add_argument("--out", type=Path, default=Path("runs/agreement-cost"))
    args = parser.parse_args()
    problems = load_problem_set("humaneval:no-tests")[: args.limit]
    generator = load_generator(EngineSettings())
    minutes = {}
    try:
        for config in ("bon5-random", "bon5-agree"):
            out = args.out / config / "report.json"  # its own folder: its own sample cache
            report = await evaluate(
                problems, generator, None, [config], out, problem_set="humaneval:no-tests", seed=args.seed
            )
            minutes[config] = report["results"][0]["minutes"]
    finally:
        await generator.close()
    traces = args.out / "bon5-agree" / "report.bon5-agree.traces.jsonl"
    results = [SolveResult.model_validate_json(line) for line in traces.read_text().splitlines()]
    turns = [t for r in results for t in r.turns]
    print(
        json.dumps(
            {
                "problems": len(problems),
                "minutes": minutes,
                "ratio": round(minutes["bon5-agree"] / minutes["bon5-random"], 2),
                "agreement_s": round(sum(t.timings.agreement_ms for t in turns) / 1000, 1),
                "generation_s": round(sum(t.timings.generation_ms for t in turns) / 1000, 1),
                # Turn 1's tokens beyond its candidates' own (turn 1 has no refills): the written calls.
                "written_call_tokens": sum(
                    r.turns[0].usage.completion_tokens
                    - sum(c.usage.completion_tokens for c in r.turns[0].candidates)
                    for r in results
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
