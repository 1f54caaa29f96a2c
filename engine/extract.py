"""Code from a model's answer, without ever taking prose or an empty block for code.

Order of preference: fenced blocks tagged as Python or untagged (closed, or cut off by the token
limit), and among several the last complete one that defines the entry point; then an answer that
is itself a Python program. Anything else is "no code", which the search turns into a failing
candidate whose feedback says so.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Literal

from .toplevel import strip_test_code

# Changes whenever the same answer could give other code (cached searches must not outlive it).
EXTRACTION_VERSION = "2"  # 2: a function answer's own top-level test code is stripped

FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*$", re.MULTILINE)
PYTHON_TAGS = {"", "python", "py", "python3", "py3", "python2"}


Extraction = Literal["fenced", "truncated", "plain", "none", "given"]
"""How the code was found: a closed fence, a fence cut off by the token limit, an answer that is
itself a program, no code at all, or `given` as a program by the caller (``/v1/score``)."""


@dataclass(frozen=True)
class Extracted:
    code: str | None
    how: Extraction
    note: str = ""


@dataclass(frozen=True)
class _Block:
    code: str
    closed: bool


def _blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    matches = list(FENCE.finditer(text))
    i = 0
    while i < len(matches):
        opening = matches[i]
        fence, tag = opening.group(1), opening.group(2).lower()
        closing = next(
            (
                m
                for m in matches[i + 1 :]
                if m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2)
            ),
            None,
        )
        end = closing.start() if closing else len(text)
        body = text[opening.end() + 1 : end] if opening.end() < len(text) else ""
        if tag in PYTHON_TAGS and body.strip():
            blocks.append(_Block(body.rstrip() + "\n", closed=closing is not None))
        if closing is None:
            break
        i = matches.index(closing) + 1
    return blocks


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return re.search(rf"^\s*(async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name
        for node in ast.walk(tree)
    )


def _is_program(text: str) -> bool:
    """Parses as Python and does more than name things (a sentence like `Hello` parses too)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    substantive = (
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.ClassDef,
        ast.Import,
        ast.ImportFrom,
        ast.Assign,
        ast.For,
        ast.While,
        ast.If,
    )
    return any(isinstance(node, substantive) for node in tree.body)


def extract_code(text: str, entry_point: str | None = None) -> Extracted:
    """The answer's program; for a function problem (``entry_point``), without the top-level test
    code the model added (``toplevel.strip_test_code``)."""
    found = _extract(text, entry_point)
    if found.code is not None and entry_point:
        return Extracted(strip_test_code(found.code, entry_point), found.how, found.note)
    return found


def _extract(text: str, entry_point: str | None) -> Extracted:
    blocks = _blocks(text)
    if blocks:
        if entry_point:
            defining = [b for b in blocks if _defines(b.code, entry_point)]
            if defining:
                closed = [b for b in defining if b.closed]
                chosen = closed[-1] if closed else defining[-1]
                return Extracted(
                    chosen.code,
                    "fenced" if chosen.closed else "truncated",
                    "" if chosen.closed else "the answer was cut off inside its code block",
                )
        complete = [b for b in blocks if b.closed]
        chosen = max(complete or blocks, key=lambda b: len(b.code))
        return Extracted(
            chosen.code,
            "fenced" if chosen.closed else "truncated",
            "" if chosen.closed else "the answer was cut off inside its code block",
        )
    if _is_program(text):
        return Extracted(text.strip() + "\n", "plain")
    return Extracted(None, "none", "the answer contains no Python code block")
