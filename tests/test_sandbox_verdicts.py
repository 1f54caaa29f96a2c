"""The sandbox tells the truth: passes only when the harness recorded them, feedback a model can use."""

from __future__ import annotations

import pytest

from mucode.sandbox import TestStatus

from .helpers import Sandbox

ADD_ONE = "def f(x):\n    return x + 1\n"


def statuses(result: object) -> list[str]:
    return [r.status.value for r in result.results]  # type: ignore[attr-defined]


def test_passing_and_failing_asserts(sandbox: Sandbox) -> None:
    result = sandbox.run(ADD_ONE, ["assert f(1) == 2", "assert f(1) == 3"])
    assert statuses(result) == ["passed", "failed"]
    assert not result.passed
    assert result.passed_count == 1
    assert result.results[1].message == "f(1) returned 2, expected 3"


def test_acceptance_feedback_names_call_expected_and_actual(sandbox: Sandbox) -> None:
    result = sandbox.run("def f(x): return x+1", ["assert f(1) == 3"])
    assert result.passed is False
    assert "f(1) returned 2, expected 3" in result.feedback
    assert "AssertionError" not in result.feedback


@pytest.mark.parametrize(
    ("test", "message"),
    [
        ("assert 3 == f(1)", "f(1) returned 2, expected 3"),
        ("assert f(1) < 1", "f(1) returned 2, expected it to be < 1"),
        ("assert f(1) != 2", "f(1) returned 2, expected it to be != 2"),
        ("assert not f(1)", "f(1) returned 2, expected a false value"),
        ("assert f(-1)", "f(-1) returned 0, expected a true value"),
        ("assert f(1) == 2 and f(2) == 4", "f(2) returned 3, expected 4"),
        ("assert f(1) == 5, 'custom'", "f(1) returned 2, expected 5 (assert message: custom)"),
        ("x = f(4)\nassert x == 4", "x is 5, expected 4"),
    ],
)
def test_failure_messages(sandbox: Sandbox, test: str, message: str) -> None:
    result = sandbox.run(ADD_ONE, [test])
    assert result.results[0].status is TestStatus.failed
    assert result.results[0].message == message


def test_exception_traceback_is_trimmed_to_candidate_lines(sandbox: Sandbox) -> None:
    code = "import math\n\ndef f(x):\n    y = g(x)\n    return y\n\ndef g(x):\n    return 1 / x\n"
    result = sandbox.run(code, ["assert f(0) == 1"])
    message = result.results[0].message
    assert result.results[0].status is TestStatus.error
    assert message.startswith("assert f(0) == 1 raised ZeroDivisionError: division by zero")
    assert 'File "solution.py", line 4, in f\n    y = g(x)' in message
    assert 'File "solution.py", line 8, in g\n    return 1 / x' in message
    assert "harness" not in message
    assert "<test" not in message


def test_syntax_error_reported_once_with_line(sandbox: Sandbox) -> None:
    result = sandbox.run("def f(x)\n    return x\n", ["assert f(1) == 1", "assert f(2) == 2"])
    assert statuses(result) == ["error", "error"]
    assert "SyntaxError: expected ':' at line 1" in result.feedback
    assert result.feedback.count("SyntaxError") == 1


def test_timeout_names_the_test(sandbox: Sandbox) -> None:
    code = "def f(x):\n    while x:\n        pass\n    return 1\n"
    result = sandbox.run(code, ["assert f(0) == 1", "assert f(1) == 1", "assert f(0) == 1"], timeout_s=1)
    assert statuses(result) == ["passed", "timeout", "error"]
    assert "Test TIMEOUT: assert f(1) == 1" in result.feedback
    assert "timed out (time limit 1s)" in result.feedback


def test_many_tests_run_in_one_execution(sandbox: Sandbox) -> None:
    tests = [f"assert f({i}) == {i + 1}" for i in range(200)]
    result = sandbox.run(ADD_ONE, tests)
    assert result.passed
    assert result.passed_count == 200
    assert result.duration_ms < 2000


def test_tests_share_setup_but_not_the_candidate_namespace(sandbox: Sandbox) -> None:
    code = "LIMIT = 10\ndef f(x):\n    return min(x, LIMIT)\n"
    result = sandbox.run(code, ["import math\nLIMIT = 1", "assert f(50) == 10 and math.floor(2.5) == 2"])
    assert result.passed, result.feedback


def test_plain_value_conversions(sandbox: Sandbox) -> None:
    code = (
        "import collections, fractions, decimal\n"
        "from typing import NamedTuple\n"
        "class P(NamedTuple):\n    x: int\n    y: int\n"
        "def counter(s): return collections.Counter(s)\n"
        "def half(): return fractions.Fraction(1, 2)\n"
        "def dec(): return decimal.Decimal('2')\n"
        "def point(): return P(1, 2)\n"
        "def nested(): return {'a': [1, (2, {3})], 'b': None}\n"
    )
    tests = [
        "assert counter('aab') == {'a': 2, 'b': 1}",
        "assert half() == 0.5",
        "assert dec() == 2",
        "assert point() == (1, 2)",
        "assert nested() == {'a': [1, (2, {3})], 'b': None}",
        "assert abs(half() - 0.5) < 1e-9",
    ]
    result = sandbox.run(code, tests)
    assert result.passed, result.feedback


# ----------------------------------------------------------------------------- no false passes
FALSE_PASS_TRICKS = {
    "sys.exit(0) at top level": ("import sys\ndef f(x): return 0\nsys.exit(0)\n", None),
    "sys.exit(0) in the function": ("import sys\ndef f(x):\n    sys.exit(0)\n", None),
    "raise SystemExit": ("def f(x):\n    raise SystemExit\n", None),
    "os._exit(0) in the function": ("import os\ndef f(x):\n    os._exit(0)\n", None),
    "os._exit(0) at top level": ("import os\nos._exit(0)\n", None),
    "atexit handler": ("import atexit, os\natexit.register(lambda: os._exit(0))\ndef f(x): return 0\n", None),
    "lying __eq__": (
        "class Any:\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
        "    def __bool__(self): return True\n"
        "def f(x): return Any()\n",
        None,
    ),
    "lying int subclass": (
        "class Liar(int):\n    def __eq__(self, other): return True\n    __hash__ = int.__hash__\n"
        "def f(x): return Liar(0)\n",
        None,
    ),
    "patched builtins at top level": (
        "import builtins\nbuiltins.len = lambda x: 2\nbuiltins.isinstance = lambda *a: True\n"
        "def f(x): return [0]\n",
        "assert len(f(1)) == 2",
    ),
    "patched builtins during the test": (
        "import builtins\ndef f(x):\n    builtins.len = lambda x: 2\n    return [0]\n",
        "assert len(f(1)) == 1 and len(f(1)) == 2",
    ),
    "patched math.isclose": (
        "import math\nmath.isclose = lambda *a, **k: True\ndef f(x): return 0.0\n",
        "import math\nassert math.isclose(f(1), 2.0)",
    ),
    "replaced checking helper": (
        "import sys\ndef f(x):\n    sys._getframe(1).f_globals['__mucode_checks__'] = None\n    return 2\n",
        "assert f(1) == 2",
    ),
    "patched builtins the checks use": (
        "import builtins\nbuiltins.zip = lambda *a: iter(())\nbuiltins.all = lambda x: True\n"
        "builtins.any = lambda x: True\nbuiltins.bool = lambda x: True\ndef f(x): return 0\n",
        "assert f(1) == 2 or f(1) == 3",
    ),
    "fake module in sys.modules": (
        "import sys, types\nsys.modules['math'] = types.SimpleNamespace(isclose=lambda *a, **k: True)\n"
        "def f(x): return 0.0\n",
        "import math\nassert math.isclose(f(1), 2.0)",
    ),
    "module name rebound by the candidate": (
        "import types\nmath = types.SimpleNamespace(isclose=lambda *a, **k: True)\ndef f(x): return 0.0\n",
        "assert math.isclose(f(1), 2.0)",
    ),
    "patched Fraction equality": (
        "import fractions\nfractions.Fraction.__eq__ = lambda *a: True\n"
        "def f(x): return fractions.Fraction(7, 3)\n",
        None,
    ),
}


@pytest.mark.parametrize("trick", sorted(FALSE_PASS_TRICKS))
def test_false_pass_tricks_fail(sandbox: Sandbox, trick: str) -> None:
    code, test = FALSE_PASS_TRICKS[trick]
    result = sandbox.run(code, [test or "assert f(1) == 2"])
    assert not result.passed, result.feedback
    assert result.results[0].status is not TestStatus.passed


def test_exit_reports_why(sandbox: Sandbox) -> None:
    result = sandbox.run("import os\ndef f(x):\n    os._exit(0)\n", ["assert f(1) == 2", "assert f(2) == 3"])
    assert statuses(result) == ["error", "error"]
    assert "exited with status 0" in result.results[0].message
    assert "not run" in result.results[1].message


def test_no_tests_means_the_program_must_run_cleanly(sandbox: Sandbox) -> None:
    assert sandbox.run("x = 1\n").passed
    failed = sandbox.run("raise ValueError('boom')\n")
    assert not failed.passed
    assert "ValueError: boom" in failed.feedback


def test_invalid_utf8_output_does_not_break_anything(sandbox: Sandbox) -> None:
    code = (
        "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe\\x80 ok\\n')\nsys.stderr.buffer.write(b'\\xc3')\n"
    )
    code += "def f(x): return '\\udcff'\n"
    result = sandbox.run(code, ["assert f(1) == 'x'"])
    assert "ok" in result.stdout
    assert "\ufffd" in result.stdout
    assert result.results[0].status is TestStatus.failed
    result.model_dump_json()  # serialisable


def test_large_output_is_capped_and_does_not_hang(sandbox: Sandbox) -> None:
    code = "print('y' * (2 * 1024 * 1024))\ndef f(x): return x\n"
    result = sandbox.run(code, ["assert f(1) == 1"])
    assert result.passed
    assert result.stdout_truncated
    assert len(result.stdout) <= 64 * 1024


# ----------------------------------------------------------------------------- stdin/stdout tests
def test_io_tests(sandbox: Sandbox) -> None:
    code = "n = int(input())\nprint(n * 2)   \n"
    result = sandbox.run(
        code,
        io_tests=[
            {"input": "3\n", "output": "6"},
            {"input": "4", "output": "9\n"},
            {"input": "x", "output": ""},
        ],
    )
    assert statuses(result) == ["passed", "failed", "error"]
    assert "expected output:\n9\nactual output:\n8" in result.results[1].message
    assert "ValueError" in result.results[2].message
    assert result.results[0].test == "stdin #1"


def test_io_program_runs_as_main(sandbox: Sandbox) -> None:
    code = (
        "import sys\ndef main():\n    print(sum(map(int, sys.stdin.read().split())))\n"
        "if __name__ == '__main__':\n    main()\n"
    )
    result = sandbox.run(code, io_tests=[{"input": "1 2 3\n", "output": "6\n"}])
    assert result.passed, result.feedback
