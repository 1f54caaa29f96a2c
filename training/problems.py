"""Problem sets for training and evaluation, and the rule that keeps them apart.

Offline, HumanEval is the only set with private tests, so it is split into two disjoint folds
(seeded): train on one, evaluate on the other, and swap. Every report names the fold it used.
"""

from __future__ import annotations

import random
from pathlib import Path

from mucode.problems import Problem, load_humaneval, load_jsonl

FOLD_SEED = 0


def humaneval_folds(seed: int = FOLD_SEED) -> tuple[list[Problem], list[Problem]]:
    """The HumanEval problems that have public tests, shuffled with ``seed``, in two halves."""
    problems = [p for p in load_humaneval() if p.public_tests]
    random.Random(seed).shuffle(problems)
    half = len(problems) // 2
    return sorted(problems[:half], key=_order), sorted(problems[half:], key=_order)


def _order(problem: Problem) -> tuple[str, int]:
    prefix, _, number = problem.id.rpartition("/")
    return prefix, int(number) if number.isdigit() else 0


def load_problem_set(spec: str) -> list[Problem]:
    """``humaneval``, ``humaneval:fold0``, ``humaneval:fold1`` or a JSONL file of problems."""
    if spec == "humaneval":
        return [p for p in load_humaneval() if p.public_tests]
    if spec in ("humaneval:fold0", "humaneval:fold1"):
        return humaneval_folds()[int(spec[-1])]
    if Path(spec).exists():
        return load_jsonl(spec)
    raise ValueError(
        f"unknown problem set {spec!r}: use humaneval, humaneval:fold0, humaneval:fold1 or a .jsonl file"
    )
