"""Toy sorting problems with a right and a wrong answer each: training and evaluation tests roll
out scripted policies on them, so labels exist without a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mucode.problems import Problem, write_jsonl

NAMES = ["sort_a", "sort_b", "sort_c", "sort_d", "sort_e", "sort_f"]


def right(name: str) -> str:
    return f"```python\ndef {name}(xs):\n    return sorted(xs)\n```"


def wrong(name: str) -> str:
    return f"```python\ndef {name}(xs):\n    return list(xs)\n```"


def write_problems(path: Path) -> None:
    problems = [
        Problem(
            id=f"toy/{k}",
            prompt=f'def {name}(xs):\n    """Return the items of xs in increasing order."""\n',
            entry_point=name,
            public_tests=[f"assert {name}([2, 1]) == [1, 2]"],
            private_tests=[f"assert {name}([3, 1, 2]) == [1, 2, 3]", f"assert {name}([]) == []"],
            reference_solution=right(name)[10:-4],
        )
        for k, name in enumerate(NAMES)
    ]
    write_jsonl(problems, path)


def toy_sft_rows() -> list[Any]:
    """One expert row per toy problem: its right answer to a one-line request."""
    from mucode.training.relabel import SFTRow

    return [
        SFTRow(
            problem_id=f"toy/{k}", iteration=1, source="expert", target=right(name),
            messages=[{"role": "user", "content": f"Write {name}."}],
        )
        for k, name in enumerate(NAMES)
    ]  # fmt: skip
