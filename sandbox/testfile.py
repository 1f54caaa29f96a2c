"""Reading tests from a file: one test per top-level ``assert``.

Statements that are not asserts (imports, helper functions, setup) join the next assert, so
``def check(candidate): ...`` followed by ``check(f)`` is one test, and a file of plain asserts is
one test per line.
"""

from __future__ import annotations

import ast


def split_tests(source: str) -> list[str]:
    """Split a Python test file into test statements; raises ``SyntaxError`` if it does not parse."""
    tree = ast.parse(source)
    lines = source.splitlines()
    tests: list[str] = []
    pending: list[str] = []
    for node in tree.body:
        start = node.lineno - 1
        if getattr(node, "decorator_list", None):
            start = min(d.lineno for d in node.decorator_list) - 1  # type: ignore[attr-defined]
        end = node.end_lineno or node.lineno
        pending.append("\n".join(lines[start:end]))
        if isinstance(node, ast.Assert):
            tests.append("\n".join(pending))
            pending = []
    if pending:
        tests.append("\n".join(pending))
    return tests
