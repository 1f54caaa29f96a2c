"""HumanEval split as the paper does, and user JSONL problem sets."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from mucode.problems import (
    Problem,
    docstring_examples,
    load_humaneval,
    load_jsonl,
    strip_docstrings,
    unwrap_reference,
    write_jsonl,
)
from mucode.sandbox import ExecutionRequest
from mucode.training.problems import load_problem_set

from .helpers import Sandbox


@pytest.fixture(scope="module")
def humaneval() -> list[Problem]:
    return load_humaneval()


def test_humaneval_is_complete_and_split(humaneval: list[Problem]) -> None:
    assert len(humaneval) == 164
    assert len({p.id for p in humaneval}) == 164
    assert sum(bool(p.public_tests) for p in humaneval) >= 150
    for problem in humaneval:
        assert problem.private_tests
        assert problem.private_tests[0].rstrip().endswith(f"check({problem.entry_point})")
        for test in problem.public_tests:  # a public test never copies a private one
            assert test not in problem.private_tests[0]


def test_canonical_solutions_pass_public_and_private_tests(
    sandbox: Sandbox, humaneval: list[Problem]
) -> None:
    async def run_all(tests_of: str) -> list[tuple[str, bool, str]]:
        requests = [
            ExecutionRequest(code=p.reference_solution or "", tests=getattr(p, tests_of)) for p in humaneval
        ]
        results = await asyncio.gather(*(sandbox.pool.execute(r) for r in requests))
        return [(p.id, r.passed, r.feedback) for p, r in zip(humaneval, results, strict=True)]

    for kind in ("public_tests", "private_tests"):
        failures = [(pid, fb) for pid, ok, fb in sandbox.loop.run(run_all(kind)) if not ok]
        assert failures == [], failures[:3]


def test_docstring_example_formats() -> None:
    prompt = '''def f(xs, k):
    """
    >>> f([1, 2], 1)
    [2]
    >>> f([], 0)

    f([3], 1) ==> [3]
    f([4], 1) should return [4] (explained)
    f([5], 1) = 2 + 3 = [5]
    For xs = [6], k = 1 the output should be [6]
    Input: xs = [7], k = 1
    Output: [7]
    f(a, 1) => [1]
    """
'''
    assert docstring_examples(prompt, "f") == [
        "assert f([1, 2], 1) == [2]",
        "assert f([], 0) is None",
        "assert f([3], 1) == [3]",
        "assert f([4], 1) == [4]",
        "assert f([6], 1) == [6]",
        "assert f([7], 1) == [7]",
    ]


def test_jsonl_round_trip_and_errors(tmp_path: Path, humaneval: list[Problem]) -> None:
    path = tmp_path / "set.jsonl"
    write_jsonl(humaneval[:3], path)
    assert load_jsonl(path) == humaneval[:3]
    path.write_text('{"id": "a", "prompt": "p"}\n\n{"id": "b"}\n')
    with pytest.raises(ValueError, match=r"set.jsonl:3: not a valid problem"):
        load_jsonl(path)
    path.write_text("{nope\n")
    with pytest.raises(ValueError, match=r"set.jsonl:1: invalid JSON"):
        load_jsonl(path)


def test_dataframebench_splits_fill_the_library_and_show_the_first_test_method() -> None:
    sizes = {split: len(load_problem_set(f"dataframebench:{split}")) for split in ("train", "val", "test")}
    assert sizes == {"train": 709, "val": 16, "test": 100}
    problem = load_problem_set("dataframebench:test")[0]
    assert problem.id == "DFB/B0001" and problem.entry_point == "task_func"
    assert "import pandas as pd" in problem.prompt and "{library" not in problem.prompt
    assert "Use pandas as the data processing library" in problem.prompt
    (public,) = problem.public_tests
    assert "def test_default_parameters" in public and "def test_custom_rows" not in public
    assert "def tearDown" in public  # what the kept method needs stays
    (private,) = problem.private_tests
    assert private.count("def test_") == 5
    polars = load_problem_set("dataframebench:test:polars")[0]
    assert "import polars as pl" in polars.prompt and polars.reference_solution != problem.reference_solution


def test_dataframebench_reference_solutions_pass_in_the_scientific_sandbox(science: Sandbox) -> None:
    """A sample here (all 100 of test: bench/dataframebench_sandbox.py, docs/benchmarks.md)."""
    for problem in load_problem_set("dataframebench:val")[:6]:
        result = science.run(problem.reference_solution or "", problem.private_tests, timeout_s=30)
        assert result.passed, (problem.id, result.feedback)
        public = science.run(problem.reference_solution or "", problem.public_tests, timeout_s=30)
        assert public.passed and public.total == 1, (problem.id, public.feedback)


FORWARDING = """import pandas as pd


def task_func(data, n=3):
    \"\"\"Doc.\"\"\"
    return pd.DataFrame(data).head(n)

_reference_impl = task_func

import pandas as pd
from typing import Optional


def task_func(data: dict, n: Optional[int] = 2):
    return _reference_impl(data, n=n)
"""

CONVERTING = """import pandas as pd

COLUMNS = ["a"]


def task_func(df):
    return df.sum()

_reference_impl = task_func

import pandas as pd


def task_func(data: list):
    result = _reference_impl(pd.DataFrame(data, columns=COLUMNS))
    return result.to_dict()
"""


def test_reference_adapters_unwrap_into_the_same_program() -> None:
    """DataFrameBench's references end in ``_reference_impl = task_func`` and a second definition;
    a trained generator copied that. Unwrapped, one definition takes the wrapper's signature, or
    the first becomes a helper; either way the program computes the same."""
    forwarded = unwrap_reference(FORWARDING, "task_func")
    assert forwarded.count("def task_func") == 1 and "_reference_impl" not in forwarded
    assert "def task_func(data: dict, n: Optional[int] = 2):" in forwarded
    # The import its signature needs moved above it; the repeated one went.
    assert forwarded.index("from typing import Optional") < forwarded.index("def task_func")
    assert forwarded.count("import pandas as pd") == 1
    # Nothing imported above the function: the moved import goes above its new signature.
    bare = unwrap_reference(FORWARDING.removeprefix("import pandas as pd\n"), "task_func")
    assert bare.index("from typing import Optional") < bare.index(
        "def task_func(data: dict, n: Optional[int] = 2):"
    )
    converted = unwrap_reference(CONVERTING, "task_func")
    assert "def _task_func(df):" in converted and "_reference_impl" not in converted
    assert "result = _task_func(pd.DataFrame(data, columns=COLUMNS))" in converted
    for before, after, call in [
        (FORWARDING, forwarded, "task_func([1, 2, 3])"),
        (CONVERTING, converted, "task_func([1, 2])"),
    ]:
        scope_before: dict[str, object] = {}
        scope_after: dict[str, object] = {}
        exec(before, scope_before)
        exec(after, scope_after)
        assert str(eval(call, scope_before)) == str(eval(call, scope_after))
    assert unwrap_reference("def task_func(:", "task_func") == "def task_func(:"  # not Python: as it was
    plain = "def task_func(x):\n    return x\n"
    assert unwrap_reference(plain, "task_func") == plain
    for split in ("train", "val", "test"):  # all of them, and the loader does it
        assert not [
            p.id
            for p in load_problem_set(f"dataframebench:{split}")
            if "_reference_impl" in (p.reference_solution or "")
        ]


def test_docstrings_go_and_the_code_stays() -> None:
    """BigCodeBench's long docstrings are half of a reference's text; an SFT target without them
    teaches the code."""
    code = '''import math


class Box:
    """A box."""

    size = 2


def area(r):
    """The area.

    Example: area(1) -> 3.14...
    """
    return math.pi * r * r


def only_doc():
    """Nothing else: the docstring stays, the function needs a body."""


def inline(): "on the def line"; return 1
'''
    plain = strip_docstrings(code)
    assert "A box." not in plain and "The area." not in plain and "Example" not in plain
    assert "Nothing else" in plain and '"on the def line"' in plain
    scope: dict[str, object] = {}
    exec(plain, scope)
    assert eval("area(1), Box.size, only_doc(), inline()", scope) == (math.pi, 2, None, 1)
    assert strip_docstrings("def f(:") == "def f(:"
