"""Code from a model's answer, without ever taking prose or an empty block for code.

Order of preference: fenced blocks tagged as Python or untagged (closed, or cut off by the token
limit), and among several the last complete one that defines the entry point; then an answer that
is itself a Python program. Anything else is "no code", which the search turns into a failing
candidate whose feedback says so.
"""

from __future__ import annotations

import ast
import builtins
import functools
import re
from dataclasses import dataclass
from typing import Literal

from .toplevel import strip_test_code

# Changes whenever the same answer could give other code (cached searches must not outlive it).
# 2: a function answer's own top-level test code is stripped; 3: imports it uses but lacks are added
EXTRACTION_VERSION = "3"

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


def extract_code(text: str, entry_point: str | None = None, stub: str = "") -> Extracted:
    """The answer's program; for a function problem (``entry_point``), without the top-level test
    code the model added (``toplevel.strip_test_code``), and with the imports of the problem's own
    code (``stub``) and the common ones it uses but never wrote (``with_missing_imports``)."""
    found = _extract(text, entry_point)
    if found.code is not None and entry_point:
        code = with_missing_imports(strip_test_code(found.code, entry_point), stub)
        return Extracted(code, found.how, found.note)
    return found


# Names small models use without importing them, and the import each one needs.
COMMON_IMPORTS = {
    **{n: f"from collections import {n}" for n in ("Counter", "defaultdict", "deque", "OrderedDict")},
    **{
        n: f"from itertools import {n}"
        for n in ("product", "permutations", "combinations", "accumulate", "chain")
    },
    **{n: f"from functools import {n}" for n in ("reduce", "lru_cache", "cache")},
    **{n: f"from typing import {n}" for n in ("List", "Dict", "Tuple", "Optional", "Any", "Set", "Union")},
    **{
        n: f"import {n}"
        for n in ("math", "re", "random", "itertools", "collections", "heapq", "string", "json")
    },
    "np": "import numpy as np",
    "pd": "import pandas as pd",
    "plt": "import matplotlib.pyplot as plt",
}


def with_missing_imports(code: str, stub: str = "") -> str:
    """``code`` with the imports it uses but never wrote: those of the problem's given code
    (``stub``: a program, or prose with python code blocks) first, then ``COMMON_IMPORTS``.
    Answers often rewrite the given function without the imports above it, or reach for
    `Counter` or `np` without importing them, and die on a NameError that says nothing about
    their logic. A name the code binds anywhere itself is never imported over."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    bound = {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
    wanted = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - bound
    wanted -= set(dir(builtins))
    if not wanted:  # nearly every answer: no need to read the stub
        return code
    missing: list[str] = []
    for names, line in _given_imports(stub):
        if names & wanted:
            missing.append(line)
            wanted -= names
    missing += sorted(COMMON_IMPORTS[n] for n in wanted if n in COMMON_IMPORTS)
    return "\n".join([*missing, code]) if missing else code


@functools.lru_cache(maxsize=256)  # one stub serves every candidate of a search
def _given_imports(stub: str) -> tuple[tuple[frozenset[str], str], ...]:
    """The top-level imports of the given code, as (names bound, source line): the stub itself
    when it is a program, else its closed python blocks."""
    found = []
    for node in (n for tree in _programs(stub) for n in tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = frozenset(a.asname or a.name.split(".")[0] for a in node.names if a.name != "*")
            found.append((names, ast.unparse(node)))
    return tuple(found)


def _programs(text: str) -> list[ast.Module]:
    """``text`` parsed, or when it is not Python (prose around code), its closed python blocks."""
    try:
        return [ast.parse(text)]
    except (SyntaxError, ValueError):
        pass
    trees = []
    for block in (b for b in _blocks(text) if b.closed):
        try:
            trees.append(ast.parse(block.code))
        except (SyntaxError, ValueError):
            continue
    return trees


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
