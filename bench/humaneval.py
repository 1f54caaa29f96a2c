"""HumanEval pass rates of the µCode search with a real model (private tests grade; the model
only ever sees the public docstring examples and the feedback on them).

Configurations, all in one run with one loaded model:
  greedy-1      single turn, greedy (n=1, temperature 0)
  greedy-3      multi-turn greedy (T=3)
  bon5-random   multi-turn Best-of-N, N=5, T=3, temperature 0.7, random selection
  bon5-pt       the same, selection by public tests
  bon5-pt+lv    the same, public tests then verifier (only with MUCODE_VERIFIER set)

    .venv/bin/python bench/humaneval.py [--limit K] [--configs greedy-1,bon5-pt] [--out report.json]

The generator is the engine's default (MUCODE_GENERATOR / MUCODE_MODEL override it). Each
problem's result is appended to REPORT.CONFIG.jsonl as soon as it is known, and a rerun with the
same options skips the problems already there: an interrupted run resumes where it stopped.
"minutes" is the sum of the per-problem times (model loading and skipped rows excluded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from mucode.problems import Problem, load_humaneval
from mucode.sandbox import ExecutionRequest, SandboxPool
from mucode.server.engine.loading import load_configured_verifier, load_generator
from mucode.server.engine.options import SolveOptions
from mucode.server.engine.search import SearchEngine
from mucode.server.engine.settings import EngineSettings

CONFIGS: dict[str, dict[str, Any]] = {
    "greedy-1": {"n": 1, "turns": 1, "temperature": 0.0, "selection": "pt"},
    "greedy-3": {"n": 1, "turns": 3, "temperature": 0.0, "selection": "pt"},
    "bon5-random": {"n": 5, "turns": 3, "temperature": 0.7, "selection": "random"},
    "bon5-pt": {"n": 5, "turns": 3, "temperature": 0.7, "selection": "pt"},
    "bon5-pt+lv": {"n": 5, "turns": 3, "temperature": 0.7, "selection": "pt+lv"},
}


async def grade(pool: SandboxPool, problem: Problem, code: str | None) -> bool:
    if not code:
        return False
    result = await pool.execute(ExecutionRequest(code=code, tests=problem.private_tests))
    return result.passed


async def run_config(
    engine: SearchEngine,
    pool: SandboxPool,
    problems: list[Problem],
    name: str,
    max_tokens: int,
    seed: int,
    rows_path: Path,
) -> dict[str, Any]:
    """Runs one configuration, one JSONL row per problem as it goes; rows already in ``rows_path``
    (an interrupted run) are kept, not rerun."""
    options = SolveOptions(**CONFIGS[name], max_tokens=max_tokens, seed=seed)
    done = {}
    if rows_path.exists():
        for line in rows_path.read_text().splitlines():
            row = json.loads(line)
            if row["options"] == options.model_dump(mode="json"):
                done[row["problem"]] = row
    with rows_path.open("a") as out:
        for k, problem in enumerate(problems, start=1):
            if problem.id in done:
                continue
            started = time.perf_counter()
            result = await engine.solve(problem, options)
            ok = await grade(pool, problem, result.final_code)
            # pass@1 per turn: the answer if the search had stopped after turn t.
            answers = [record.chosen.code for record in result.turns]
            answers += [answers[-1]] * (options.turns - len(answers))
            by_turn = [
                ok if code == result.final_code else await grade(pool, problem, code) for code in answers
            ]
            row = {
                "problem": problem.id,
                "options": options.model_dump(mode="json"),
                "passed": ok,
                "passed_by_turn": by_turn,
                "completion_tokens": result.usage.completion_tokens,
                "turns": len(result.turns),
                "seconds": round(time.perf_counter() - started, 2),
            }
            done[problem.id] = row
            out.write(json.dumps(row) + "\n")
            out.flush()
            passed = sum(r["passed"] for r in done.values())
            print(
                f"  {name} {k}/{len(problems)} {problem.id}: {'pass' if ok else 'fail'} "
                f"({passed}/{len(done)} so far)",
                flush=True,
            )
    rows = [done[p.id] for p in problems]
    minutes = sum(r["seconds"] for r in rows) / 60
    return {
        "config": name,
        "options": options.model_dump(),
        "problems": len(rows),
        "passed": sum(r["passed"] for r in rows),
        "pass_rate": round(100 * sum(r["passed"] for r in rows) / len(rows), 1),
        "pass_rate_by_turn": [
            round(100 * sum(r["passed_by_turn"][t] for r in rows) / len(rows), 1)
            for t in range(options.turns)
        ],
        "completion_tokens": sum(r["completion_tokens"] for r in rows),
        "mean_turns": round(sum(r["turns"] for r in rows) / len(rows), 2),
        "minutes": round(minutes, 1),
        "problems_per_minute": round(len(rows) / max(minutes, 1e-6), 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=164, help="first K problems")
    parser.add_argument("--configs", default="greedy-1,greedy-3,bon5-random,bon5-pt,bon5-pt+lv")
    parser.add_argument("--max-tokens", type=int, default=768)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("humaneval-report.json"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)

    settings = EngineSettings()
    generator = load_generator(settings)
    verifier = load_configured_verifier(settings)
    names = [c for c in args.configs.split(",") if c]
    if verifier is None:
        names = [c for c in names if not c.endswith("lv")]
    problems = load_humaneval()[: args.limit]
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{len(os.sched_getaffinity(0))} cores",
        "generator": generator.description,
        "verifier": verifier.name if verifier else "none",
        "problems": f"HumanEval first {len(problems)} of 164 (private tests grade)",
        "results": [],
    }
    async with SandboxPool() as pool:
        engine = SearchEngine(generator, pool, verifier)
        for name in names:
            rows = args.out.with_name(f"{args.out.stem}.{name}.jsonl")
            report["results"].append(
                await run_config(engine, pool, problems, name, args.max_tokens, args.seed, rows)
            )
            args.out.write_text(json.dumps(report, indent=2))
    await generator.close()
    print(f"\n{report['generator']} on {report['problems']}")
    print(f"{'config':12s} {'pass %':>7s}  by turn            tokens   min  problems/min")
    for r in report["results"]:
        by_turn = " ".join(f"{p:5.1f}" for p in r["pass_rate_by_turn"])
        print(
            f"{r['config']:12s} {r['pass_rate']:7.1f}  {by_turn:18s} {r['completion_tokens']:7d} "
            f"{r['minutes']:5.1f} {r['problems_per_minute']:8.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
