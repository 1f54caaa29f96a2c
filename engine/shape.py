"""Programs compared by what they do as written: their syntax tree without comments, docstrings
or layout. Two answers with the same shape are the same attempt, however they are formatted."""

from __future__ import annotations

import ast


def shape(code: str | None) -> str | None:
    """The program's syntax tree with docstrings dropped (comments and layout never reach it);
    text that does not parse is compared as it stands."""
    if code is None:
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code.strip()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree)
