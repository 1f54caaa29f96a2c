"""Which rule should choose between groups of agreeing candidates? Replayed from the traces of a
`bon5-agree` evaluation (turn 1: every candidate, the written calls, the groups), with every
candidate graded by the private tests, per HumanEval fold: tune on fold 0, confirm on fold 1.

    .venv/bin/python bench/agreement_rules.py runs/agree/humaneval-nt.bon5-agree.traces.jsonl

Columns: each rule of ``engine.agreement.RULES``; the greedy candidate (candidate 0); a random
candidate (the mean over candidates, the expected pass rate of a random pick); and coverage (some
candidate right: the ceiling for any rule).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
from pathlib import Path

from mucode.engine import agreement
from mucode.engine.trace import SolveResult
from mucode.problems import load_humaneval
from mucode.sandbox import SandboxPool, SandboxSettings
from mucode.training.evaluate import grade
from mucode.training.problems import humaneval_folds


def read_traces(path: Path) -> list[SolveResult]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return [SolveResult.model_validate_json(line) for line in lines if line.strip()]


async def verdicts(results: list[SolveResult]) -> dict[tuple[str, str], bool]:
    """(problem, code) -> passes the private tests, for every candidate of turn 1."""
    problems = {p.id: p for p in load_humaneval()}
    pool = SandboxPool(SandboxSettings())
    await pool.start()
    try:
        pairs = sorted(
            {(r.problem_id, c.code) for r in results for c in r.turns[0].candidates if c.code is not None}
        )
        slots = asyncio.Semaphore(64)  # under the pool's queue limit

        async def one(problem: str, code: str) -> bool:
            async with slots:
                return await grade(pool, problems[problem], code)

        graded = await asyncio.gather(*(one(p, code) for p, code in pairs))
    finally:
        await pool.close()
    return dict(zip(pairs, graded, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("traces", type=Path)
    args = parser.parse_args()
    results = read_traces(args.traces)
    right = asyncio.run(verdicts(results))
    fold0, fold1 = humaneval_folds()
    folds = {"fold 0 (tune)": {p.id for p in fold0}, "fold 1 (confirm)": {p.id for p in fold1}}
    folds["not in a fold (no public tests)"] = {r.problem_id for r in results} - set().union(*folds.values())
    folds["all"] = {r.problem_id for r in results}
    columns = [*agreement.RULES, "greedy", "random", "coverage", "agreement used"]
    print("| problems | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, ids in folds.items():
        rows = [r for r in results if r.problem_id in ids]
        if not rows:
            continue
        counts = dict.fromkeys(columns, 0.0)
        for r in rows:
            turn = r.turns[0]

            def ok(index: int, r: SolveResult = r) -> bool:
                code = r.turns[0].candidates[index].code
                return code is not None and right[(r.problem_id, code)]

            agreed = turn.agreement
            for rule in agreement.RULES:
                if agreed is not None and agreed.used:
                    counts[rule] += ok(min(agreement.rank_groups(agreed.groups, rule)[0].members))
                else:
                    counts[rule] += ok(turn.selected)
            counts["greedy"] += ok(0)
            counts["random"] += sum(ok(c.index) for c in turn.candidates) / len(turn.candidates)
            counts["coverage"] += any(ok(c.index) for c in turn.candidates)
            counts["agreement used"] += bool(agreed and agreed.used)
        cells = [f"{100 * counts[c] / len(rows):.1f} ({counts[c]:.0f})" for c in columns[:-1]]
        print(f"| {name}, {len(rows)} | " + " | ".join(cells) + f" | {counts['agreement used']:.0f} |")
    print(f"\ndefault rule: {agreement.DEFAULT_RULE}")
    print(json.dumps({"traces": str(args.traces), "problems": len(results)}))


if __name__ == "__main__":
    main()
