"""Best-of-N against greedy, problem by problem: reads the traces that bench/humaneval.py wrote
(REPORT-stem.CONFIG.traces.jsonl) and grades every candidate of every turn on the private tests
(the search itself never sees them). What one configuration does on its own — coverage,
selection losses, problems solved after feedback, repeats in the feedback turns — every
evaluation reports itself (training/evaluate.py); this is the comparison of two.

    .venv/bin/python bench/humaneval_why.py REPORT.json [--greedy greedy-1] [--bon bon5-pt]

Prints, for the two configurations:
  * how often a single turn-1 candidate of BoN is right, against the greedy answer;
  * the problems each one alone solves; for each BoN loss, whether any sample of the deciding
    turn was right (then the selection lost it: several candidates passed the public tests and
    the tie-break took a wrong one) or none was (the generator lost it);
  * turn 1 again with ties among candidates that pass every public test broken by the most
    common program instead of at random: the same samples, nothing regenerated. Exact where
    turn 1 ended the search (some candidate passed the public tests); elsewhere the recorded
    outcome is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

from mucode.engine.shape import shape
from mucode.engine.trace import Candidate, SolveResult
from mucode.problems import Problem, load_humaneval
from mucode.sandbox import SandboxPool
from mucode.training.evaluate import grade


def most_common(candidates: list[Candidate]) -> Candidate:
    """The candidate whose program occurs most often among ``candidates`` (earliest on a tie)."""
    counts = Counter(shape(c.code) for c in candidates)
    return max(candidates, key=lambda c: (counts[shape(c.code)], -c.index))


def load_traces(report: Path, config: str) -> dict[str, SolveResult]:
    """REPORT-stem.CONFIG.traces.jsonl, or its .gz as kept in docs/bench-data."""
    path = report.with_name(f"{report.stem}.{config}.traces.jsonl")
    text = path.read_text() if path.exists() else gzip.decompress(Path(f"{path}.gz").read_bytes()).decode()
    traces = [SolveResult.model_validate_json(line) for line in text.splitlines()]
    return {t.problem_id: t for t in traces}


class Grader:
    """Private-test verdicts, each distinct program of a problem graded once."""

    def __init__(self, pool: SandboxPool, problems: dict[str, Problem]) -> None:
        self.pool = pool
        self.problems = problems
        self.verdicts: dict[tuple[str, str | None], bool] = {}
        self.slots = asyncio.Semaphore(64)  # well inside the sandbox queue

    async def grade_one(self, problem_id: str, code: str | None) -> None:
        async with self.slots:
            self.verdicts[(problem_id, code)] = await grade(self.pool, self.problems[problem_id], code)

    async def all(self, traces: list[SolveResult]) -> None:
        keys = {(t.problem_id, c.code) for t in traces for turn in t.turns for c in turn.candidates}
        await asyncio.gather(*(self.grade_one(*key) for key in keys))


async def analyse(
    report: Path, greedy_name: str, bon_name: str, problem_set: list[Problem] | None = None
) -> dict[str, Any]:
    """The numbers above for two configurations of REPORT (HumanEval unless ``problem_set``)."""
    problems = {p.id: p for p in problem_set or load_humaneval()}
    order = {pid: k for k, pid in enumerate(problems)}
    greedy, bon = load_traces(report, greedy_name), load_traces(report, bon_name)
    common = sorted(set(greedy) & set(bon), key=order.__getitem__)
    async with SandboxPool() as pool:
        grader = Grader(pool, problems)
        await grader.all([trace[pid] for trace in (bon, greedy) for pid in common])
    right = grader.verdicts

    def solved(trace: SolveResult) -> bool:
        return right[(trace.problem_id, trace.final_code)]

    greedy_only = [pid for pid in common if solved(greedy[pid]) and not solved(bon[pid])]
    bon_only = [pid for pid in common if solved(bon[pid]) and not solved(greedy[pid])]
    losses = {}
    for pid in greedy_only:
        last = bon[pid].turns[-1]
        any_right = any(right[(pid, c.code)] for c in last.candidates)
        losses[pid] = "selection" if any_right else "generation"

    first_samples = [right[(pid, c.code)] for pid in common for c in bon[pid].turns[0].candidates]

    majority = 0
    for pid in common:
        first = bon[pid].turns[0]
        passers = [c for c in first.candidates if c.public_all_passed]
        majority += right[(pid, most_common(passers).code)] if passers else solved(bon[pid])

    n = len(common)
    g_pass, b_pass = sum(solved(greedy[p]) for p in common), sum(solved(bon[p]) for p in common)
    return {
        "problems": n,
        greedy_name: g_pass,
        bon_name: b_pass,
        "gain_points": round(100 * (b_pass - g_pass) / n, 1),
        f"{bon_name}_only": bon_only,
        f"{greedy_name}_only": greedy_only,
        "losses": losses,
        # How often one turn-1 candidate is right, against the greedy answer's rate.
        "turn1_candidate_accuracy": round(sum(first_samples) / len(first_samples), 3),
        "greedy_accuracy": round(g_pass / n, 3),
        f"{bon_name}_majority_tiebreak": majority,
        "majority_gain_points": round(100 * (majority - g_pass) / n, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("report", type=Path, help="the --out of bench/humaneval.py")
    parser.add_argument("--greedy", default="greedy-1")
    parser.add_argument("--bon", default="bon5-pt")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(analyse(args.report, args.greedy, args.bon)), indent=2))


if __name__ == "__main__":
    main()
