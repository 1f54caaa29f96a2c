"""The model's own test code, taken out of its answer before the answer runs.

Small models often end a function with the public tests copied as top-level statements (asserts,
``print(f(...))``, an ``if __name__ == "__main__":`` block, ``doctest.testmod()``). When the
function is wrong, that code raises while the module is imported, every real test is reported
"not run", and the feedback the next turn reads is a bare AssertionError at the model's own line
instead of ``f(x) returned 5, expected 4`` per test. So for function problems (those with an entry
point) such statements are removed; everything a program may need at top level stays: imports,
definitions, constants and tables (even computed with the function), and other calls
(``sys.setrecursionlimit(...)``).

A copied ``unittest.TestCase`` class goes too (without its ``import unittest`` it raises at import),
and an answer cut off by the token limit inside such trailing test code keeps what came before.
"""

from __future__ import annotations

import ast
import re

# Calls that only run tests, as dotted names.
TEST_RUNNERS = {"doctest.testmod", "unittest.main", "pytest.main", "print"}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _is_main_guard(node: ast.If) -> bool:
    test = node.test
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    constants = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and constants == ["__main__"]


def _is_test_statement(node: ast.stmt, entry_point: str) -> bool:
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.If) and _is_main_guard(node):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        name = _dotted(node.value.func)
        return name in TEST_RUNNERS or name == entry_point or name.startswith(("test", "check"))
    if isinstance(node, ast.ClassDef) and any(_dotted(b).endswith("TestCase") for b in node.bases):
        return True
    if isinstance(node, (ast.For, ast.While)) and not node.orelse:
        # A loop over test cases: nothing in it but test statements.
        return all(_is_test_statement(child, entry_point) for child in node.body)
    return False


def strip_test_code(code: str, entry_point: str) -> str:
    """``code`` without its top-level test statements; unchanged if it does not parse or if
    nothing but test code would be left."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        code = _before_trailing_tests(code)
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError):
            return code
    drop = [node for node in tree.body if _is_test_statement(node, entry_point)]
    if not drop or len(drop) == len(tree.body):
        return code
    lines = code.splitlines(keepends=True)
    for node in reversed(drop):
        start = node.lineno - 1
        end = node.end_lineno or node.lineno
        del lines[start:end]
    return "".join(lines).rstrip() + "\n"


# Where an answer's own test section starts: a test class, a main guard, an `import unittest`.
_TEST_SECTION = re.compile(r"^(?:class \w*Test\w*\b|if __name__|import unittest\b|# ?[Tt]est)", re.M)


def _before_trailing_tests(code: str) -> str:
    """For code that does not parse: the part before its first test section, when that parses
    (the answer ran out of tokens while copying the tests); else the code as it was."""
    found = _TEST_SECTION.search(code)
    if found is None or found.start() == 0:
        return code
    head = code[: found.start()].rstrip() + "\n"
    try:
        ast.parse(head)
    except (SyntaxError, ValueError):
        return code
    return head
