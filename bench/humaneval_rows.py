"""Evaluation rows side by side, on the problems they all have: passed counts, the evaluation's
own columns (solved after feedback, by refills, repeat share, tokens) over just those problems,
how many first answers copy tests under the function as top-level asserts, and how the failures'
final answers ended (extraction, finish reason; from the traces beside the rows). For partial
runs too: a stopped evaluation's rows compare with a finished one's on the problems both have.

    .venv/bin/python bench/humaneval_rows.py ROWS.jsonl [ROWS.jsonl ...] [--pattern REGEX] [--versus]

``--pattern`` splits every sample of every turn in two, those whose text matches and the rest,
and counts of each how many passed the public tests and how many were cut at max_tokens (a habit
a trained generator picked up, and what it costs). ``--versus`` lists, for every two files, the
problems one passed and the other did not (which problems two generators split between them), and
the exact McNemar test's p-value on them.

A row file is what training/evaluate.py writes (NAME.CONFIG.jsonl); its traces are read from
NAME.CONFIG.traces.jsonl or the .gz of it kept in docs/bench-data.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from collections import Counter
from itertools import combinations
from math import comb
from pathlib import Path
from typing import Any

from mucode.engine.options import SolveOptions
from mucode.engine.trace import SolveResult
from mucode.training.evaluate import summary

TOP_LEVEL_ASSERT = re.compile(r"^assert ", re.MULTILINE)


def read(path: Path) -> str:
    return path.read_text() if path.exists() else gzip.decompress(Path(f"{path}.gz").read_bytes()).decode()


def known(options: dict[str, Any]) -> dict[str, Any]:
    """Options without those dropped since a row was written: committed rows stay readable."""
    return {k: v for k, v in options.items() if k in SolveOptions.model_fields}


def trace(line: str) -> SolveResult:
    row = json.loads(line)
    return SolveResult.model_validate(row | {"options": known(row["options"])})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rows", type=Path, nargs="+")
    parser.add_argument("--pattern", type=re.compile, help="count the samples whose text matches")
    parser.add_argument("--versus", action="store_true", help="problems each two files split")
    args = parser.parse_args()
    tables = {}
    for path in args.rows:
        # A rerun row comes after the one it replaces: the last row of a problem wins.
        tables[path] = {row["problem"]: row for row in map(json.loads, read(path).splitlines())}
    common = set.intersection(*(set(t) for t in tables.values()))
    print(f"{len(common)} problems in every file")
    for path, rows in tables.items():
        traces = [trace(t) for t in read(path.with_suffix(".traces.jsonl")).splitlines()]
        by_id = {t.problem_id: t for t in traces}
        copies = sum(bool(TOP_LEVEL_ASSERT.search(by_id[p].turns[0].candidates[0].text)) for p in common)
        passed = sum(rows[p]["passed"] for p in common)
        endings = Counter(
            f"{by_id[p].turns[-1].chosen.extraction}/{by_id[p].turns[-1].chosen.finish_reason}"
            for p in common
            if not rows[p]["passed"]
        )
        shared = [rows[p] for p in sorted(common)]
        numbers = summary(path.name, SolveOptions.model_validate(known(shared[0]["options"])), shared)
        keep = (
            "pass_rate_by_turn",
            "solved_after_feedback",
            "solved_by_refills",
            "coverage",
            "selection_losses",
            "feedback_samples",
            "repeat_share",
            "improve_share",
        )
        print(f"{path}: passed {passed}, first answers with top-level asserts {copies}")
        print("  " + ", ".join(f"{k} {numbers[k]}" for k in keep), end=", ")
        print(f"tokens/problem {numbers['completion_tokens'] / len(shared):.0f}")
        print(f"  failures by how the answer ended (extraction/finish): {dict(endings)}")
        if args.pattern:
            print(f"  samples {pattern_split(args.pattern, [by_id[p] for p in sorted(common)])}")
    if args.versus:
        for a, b in combinations(tables, 2):
            split = []
            for x, y in ((a, b), (b, a)):
                only = sorted(p for p in common if tables[x][p]["passed"] and not tables[y][p]["passed"])
                print(f"passed by {x} and not by {y}: {len(only)} {only}")
                split.append(len(only))
            print(f"  exact McNemar test on the {sum(split)} split problems: p = {mcnemar(*split):.3f}")


def mcnemar(wins: int, losses: int) -> float:
    """Two-sided exact McNemar (sign) test: how often two equally good searches split the problems
    at least this unevenly. Problems both pass or both fail say nothing about which is better."""
    n = wins + losses
    tail: float = sum(comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def pattern_split(pattern: re.Pattern[str], traces: list[SolveResult]) -> str:
    counts: Counter[tuple[bool, str]] = Counter()
    for t in traces:
        for candidate in (c for turn in t.turns for c in turn.candidates):
            matches = bool(pattern.search(candidate.text or ""))
            counts[matches, "all"] += 1
            counts[matches, "passed"] += bool(candidate.execution and candidate.execution.passed)
            counts[matches, "length"] += candidate.finish_reason == "length"
    return "; ".join(
        f"{name}: {counts[m, 'all']}, passed the public tests {counts[m, 'passed']}, "
        f"cut at max_tokens {counts[m, 'length']}"
        for m, name in ((True, f"matching {pattern.pattern!r}"), (False, "the rest"))
    )


if __name__ == "__main__":
    main()
