"""Test modules as tests: a ``unittest.TestCase`` class or pytest-style ``test_*`` functions give one
result per case, with the failing check's values and line, and the runner is as hard to fool as
the assert tests are."""

from __future__ import annotations

import textwrap

import pytest

from mucode.sandbox import TestStatus

from .helpers import Sandbox
from .test_sandbox_verdicts import FALSE_PASS_TRICKS

DOUBLE = "def double(x):\n    if not isinstance(x, int):\n        raise ValueError(x)\n    return 2 * x\n"
PLUS_TWO = "def double(x):\n    return x + 2\n"

UNITTEST = """\
import unittest


class TestDouble(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.calls = []

    def setUp(self):
        self.base = 2

    def test_base(self):
        self.assertEqual(double(self.base), 4)

    def test_three(self):
        self.assertEqual(double(3), 6)

    def test_rejects_text(self):
        with self.assertRaises(ValueError):
            double("x")


if __name__ == "__main__":
    unittest.main()
"""

# No `import pytest`: the stdlib-only sandbox has no pytest, and the runner strips fixture
# decorators before the module runs, so the name is never looked up.
PYTEST = """\
opened = []


@pytest.fixture
def base():
    opened.append(1)
    yield 2
    opened.pop()


@pytest.fixture()
def three():
    return 3


def test_base(base):
    assert double(base) == 4
    assert opened == [1]


def test_three(three, tmp_path):
    (tmp_path / "note").write_text("scratch space")
    assert double(three) == 6


def test_teardown_ran():
    assert opened == []
"""


def statuses(result: object) -> list[tuple[str, str, str]]:
    return [(r.test, r.kind, r.status.value) for r in result.results]  # type: ignore[attr-defined]


def test_a_unittest_class_reports_each_method_with_expected_and_actual(sandbox: Sandbox) -> None:
    passing = sandbox.run(DOUBLE, [UNITTEST])
    assert passing.passed, passing.feedback
    # unittest's own order: alphabetical
    assert statuses(passing) == [
        ("TestDouble.test_base", "unittest", "passed"),
        ("TestDouble.test_rejects_text", "unittest", "passed"),
        ("TestDouble.test_three", "unittest", "passed"),
    ]
    failing = sandbox.run(PLUS_TWO, [UNITTEST])
    assert [s for _, _, s in statuses(failing)] == ["passed", "error", "failed"]
    three = failing.results[2]
    assert three.message.startswith("AssertionError: 5 != 6")
    assert "at test line 16: self.assertEqual(double(3), 6)" in three.message
    assert failing.results[1].message.startswith("TestDouble.test_rejects_text raised TypeError")
    assert "Test FAILED: TestDouble.test_three" in failing.feedback
    assert "1 of 3 tests passed." in failing.feedback


def test_pytest_functions_with_fixtures_and_plain_asserts(sandbox: Sandbox) -> None:
    suite = PYTEST
    passing = sandbox.run(DOUBLE, [suite])
    assert passing.passed, passing.feedback
    assert statuses(passing) == [
        ("test_base", "pytest", "passed"),
        ("test_three", "pytest", "passed"),
        ("test_teardown_ran", "pytest", "passed"),
    ]
    failing = sandbox.run(PLUS_TWO, [suite])
    assert failing.results[1].status is TestStatus.failed
    assert failing.results[1].message == (
        "double(three) returned 5, expected 6\n  at test line 23: assert double(three) == 6"
    )


def test_setup_and_teardown_functions_and_test_classes(sandbox: Sandbox) -> None:
    suite = textwrap.dedent(
        """\
        log = []

        def setup_function(function):
            log.append(function.__name__)

        def teardown_function():
            log.append("down")

        def test_first():
            assert log == ["test_first"]

        class TestGroup:
            def test_method(self):
                assert double(1) == 2

        def test_second():
            assert log == ["test_first", "down", "test_second"]
        """
    )
    result = sandbox.run(DOUBLE, [suite])
    assert statuses(result) == [
        ("test_first", "pytest", "passed"),
        ("TestGroup.test_method", "pytest", "passed"),
        ("test_second", "pytest", "passed"),
    ]


def test_suites_mix_with_assert_tests_and_a_broken_module_names_every_case(sandbox: Sandbox) -> None:
    broken = "import no_such_module\n\ndef test_one():\n    assert True\n\ndef test_two():\n    assert True\n"
    result = sandbox.run(DOUBLE, ["assert double(1) == 2", broken, UNITTEST])
    assert [r.test for r in result.results][:3] == ["assert double(1) == 2", "test_one", "test_two"]
    assert [r.status for r in result.results[1:3]] == [TestStatus.error, TestStatus.error]
    assert "not run: the test module raised ModuleNotFoundError" in result.results[1].message
    assert result.passed_count == 4 and result.total == 6


def test_a_crash_in_one_case_stops_the_rest_and_says_so(sandbox: Sandbox) -> None:
    code = "import os\ndef double(x):\n    if x == 3:\n        os._exit(0)\n    return 2 * x\n"
    result = sandbox.run(code, [UNITTEST])
    assert [s for _, _, s in statuses(result)] == ["passed", "failed", "error"]
    assert result.results[2].message.startswith("this test ")


def test_a_skipped_case_does_not_pass(sandbox: Sandbox) -> None:
    code = "import unittest\ndef double(x):\n    raise unittest.SkipTest('no')\n"
    result = sandbox.run(code, [UNITTEST])
    assert not result.passed
    assert "skipped" in result.results[0].message


def _as_suites(test: str) -> list[str]:
    body = textwrap.indent(test, "        ")
    unittest_form = f"import unittest\n\nclass T(unittest.TestCase):\n    def test_it(self):\n{body}\n"
    pytest_form = "def test_it():\n" + textwrap.indent(test, "    ") + "\n"
    return [unittest_form, pytest_form]


UNITTEST_TRICKS = {
    "assertEqual patched at top level": (
        "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\ndef f(x): return 0\n"
    ),
    "assertEqual patched during the test": (
        "import unittest\ndef f(x):\n    unittest.TestCase.assertTrue = lambda *a, **k: None\n    return 0\n"
    ),
    "failureException replaced": (
        "import unittest\nunittest.TestCase.failureException = KeyboardInterrupt\ndef f(x): return 0\n"
    ),
    "lying __eq__ against assertEqual": (
        "class Any:\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
        "def f(x): return Any()\n"
    ),
    "a class that claims to be a library's": (
        "class Any:\n    __module__ = 'collections'\n    def __eq__(self, other): return True\n"
        "def f(x): return Any()\n"
    ),
}


@pytest.mark.parametrize("form", ["unittest", "pytest"])
@pytest.mark.parametrize("trick", sorted(FALSE_PASS_TRICKS))
def test_false_pass_tricks_fail_inside_suites(sandbox: Sandbox, trick: str, form: str) -> None:
    code, test = FALSE_PASS_TRICKS[trick]
    suite = _as_suites(test or "assert f(1) == 2")[form == "pytest"]
    result = sandbox.run(code, [suite])
    assert not result.passed, result.feedback
    assert result.results[0].status is not TestStatus.passed


@pytest.mark.parametrize("trick", sorted(UNITTEST_TRICKS))
def test_false_pass_tricks_against_unittest_checks_fail(sandbox: Sandbox, trick: str) -> None:
    suite = (
        "import unittest\n\nclass T(unittest.TestCase):\n"
        "    def test_equal(self):\n        self.assertEqual(f(1), 2)\n"
        "    def test_true(self):\n        self.assertTrue(f(1) == 2)\n"
    )
    result = sandbox.run(UNITTEST_TRICKS[trick], [suite])
    assert not result.passed, result.feedback
    assert all(r.status is not TestStatus.passed for r in result.results), result.feedback
