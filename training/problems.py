"""Problem sets for training and evaluation, and the rule that keeps them apart.

Offline, HumanEval is the only set with private tests, so it is split into two disjoint folds
(seeded): train on one, evaluate on the other, and swap. Every report names the fold it used.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from mucode.problems import Problem, guess_entry_point, load_dataframebench, load_humaneval, load_jsonl

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


def from_mbpp(row: dict[str, Any]) -> Problem:
    """An MBPP row as the paper splits it: the first assert is public, the rest private; the
    prompt is the task text plus the reference solution's signature."""
    tests = list(row["test_list"]) + list(row.get("challenge_test_list") or [])
    signature = next((line for line in str(row["code"]).splitlines() if line.startswith("def ")), "")
    setup = str(row.get("test_setup_code") or "").strip()
    text = str(row.get("text") or row.get("prompt") or "")
    return Problem(
        id=f"mbpp/{row['task_id']}",
        prompt=f"{text}\n\n{signature}\n" if signature else f"{text}\n",
        entry_point=guess_entry_point(signature, tests),
        public_tests=[setup + "\n" + tests[0] if setup else tests[0]],
        private_tests=[setup + "\n" + t if setup else t for t in tests[1:]],
        reference_solution=str(row["code"]),
        source="mbpp",
    )


def load_mbpp(split: str = "test", data_files: str | None = None) -> list[Problem]:
    """MBPP through ``datasets``: the hub's ``google-research-datasets/mbpp`` (online), or local
    JSON/JSONL files of the same schema (offline, and how the tests exercise this path)."""
    from datasets import load_dataset

    if data_files is not None:
        rows = load_dataset("json", data_files=data_files, split="train")
    else:
        rows = load_dataset("google-research-datasets/mbpp", "full", split=split)
    return [from_mbpp(dict(row)) for row in rows]


NO_TESTS = ":no-tests"


def load_problem_set(spec: str) -> list[Problem]:
    """``humaneval`` (the 151 problems whose docstrings give examples, which become the public
    tests), ``humaneval:all`` (all 164; the 13 without public tests get one turn, chosen by
    execution agreement), ``humaneval:fold0``, ``humaneval:fold1``, ``dataframebench:train|val|test``
    (then optionally ``:polars`` instead of ``:pandas``, and ``:K`` test methods shown instead of
    1: ``dataframebench:val:pandas:2``), ``mbpp:train`` / ``mbpp:test``
    (hub, online), ``mbpp-file:PATH`` (local MBPP-schema JSON/JSONL) or a JSONL file of problems.
    Any of these ending in ``:no-tests`` withholds the public tests from the model and the search
    (the private tests still grade); ``humaneval:no-tests`` is all 164 HumanEval problems."""
    if spec.endswith(NO_TESTS):
        inner = spec.removesuffix(NO_TESTS)
        problems = load_humaneval() if inner == "humaneval" else load_problem_set(inner)
        return [p.model_copy(update={"public_tests": [], "public_io_tests": []}) for p in problems]
    if spec.startswith("dataframebench:"):
        split, library, public = [*spec.split(":")[1:], "", ""][:3]
        if public and not public.isdigit():
            raise ValueError(f"{spec!r}: the number of shown test methods must be a number")
        return load_dataframebench(split, library or "pandas", int(public or 1))
    if spec.startswith("mbpp:"):
        return load_mbpp(split=spec.split(":", 1)[1])
    if spec.startswith("mbpp-file:"):
        return load_mbpp(data_files=spec.split(":", 1)[1])
    if spec == "humaneval":
        return [p for p in load_humaneval() if p.public_tests]
    if spec == "humaneval:all":
        return load_humaneval()
    if spec in ("humaneval:fold0", "humaneval:fold1"):
        return humaneval_folds()[int(spec[-1])]
    if Path(spec).exists():
        return load_jsonl(spec)
    raise ValueError(
        f"unknown problem set {spec!r}: use humaneval, humaneval:all, humaneval:fold0, humaneval:fold1, "
        "dataframebench:train|val|test or a .jsonl file"
    )
