"""HumanEval pass rates of the µCode search with a real model (private tests grade; the model
only ever sees the public docstring examples and the feedback on them).

Configurations, all in one run with one loaded model (mucode.training.evaluate.CONFIGS):
  greedy-1      single turn, greedy (n=1, temperature 0)
  greedy-3      multi-turn greedy (T=3)
  bon5-random   multi-turn Best-of-N, N=5, T=3, temperature 0.7, random selection
  bon5-pt       the same, selection by public tests
  bon5-lv, bon5-pt+lv   verifier rules (only with a verifier: MUCODE_VERIFIER or MUCODE_CHECKPOINT)
  greedy-3-repeats, bon5-pt-repeats   without refills: feedback turns may repeat a program (paper)
  bon5-pt-sampled   all five candidates sampled, no greedy candidate (paper)
Every configuration reports coverage, selection losses, problems solved after feedback (and by
refills), repeat shares and cost per solved problem (training/evaluate.py).

    .venv/bin/python bench/humaneval.py [--limit K] [--configs greedy-1,bon5-pt] [--out report.json]

The generator is the engine's default (MUCODE_GENERATOR / MUCODE_MODEL override it). Each
problem's result is appended to REPORT.CONFIG.jsonl as soon as it is known, and a rerun with the
same options skips the problems already there: an interrupted run resumes where it stopped.
"minutes" is the wall time of the problems run in this invocation (model loading and rows kept
from an earlier run excluded). Configurations share seeded samples (training/sample_cache.py), so
`bon5-random` after `bon5-pt` regenerates only where the two choose differently.
`mucode eval` runs the same code on any problem set (e.g. a HumanEval fold).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from mucode.engine.loading import configured_prompt, load_configured_verifier, load_generator
from mucode.engine.settings import EngineSettings
from mucode.problems import load_humaneval
from mucode.training.evaluate import evaluate


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=164, help="first K problems")
    parser.add_argument("--configs", default="greedy-1,greedy-3,bon5-random,bon5-pt,bon5-pt+lv")
    parser.add_argument("--max-tokens", type=int, default=768)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--concurrency", type=int, default=4, help="problems in flight (llama.cpp and vLLM batch them)"
    )
    parser.add_argument("--out", type=Path, default=Path("humaneval-report.json"))
    args = parser.parse_args()

    settings = EngineSettings()
    generator = load_generator(settings)
    verifier = load_configured_verifier(settings)
    problems = load_humaneval()[: args.limit]
    try:
        await evaluate(
            problems,
            generator,
            verifier,
            [c for c in args.configs.split(",") if c],
            args.out,
            problem_set=f"HumanEval first {len(problems)} of 164",
            max_tokens=args.max_tokens,
            seed=args.seed,
            concurrency=args.concurrency,
            prompt=configured_prompt(settings),
        )
    finally:
        await generator.close()


if __name__ == "__main__":
    asyncio.run(main())
