"""The program that runs *inside* the sandbox: a warm zygote plus the test runner.

Standard library only, and never imported by the server: the host reads this file as text and
starts it with ``python -c`` inside bubblewrap. The zygote imports common modules once, then for
every job forks a child that applies the rlimits, runs the candidate and its tests, and reports
each test over a private pipe. A test counts as passed only when that report says so, so exiting,
crashing, killing the harness or lying about equality can only lose results, never invent them.

Wire format with the host: a 4-byte big-endian length, then a UTF-8 JSON object, both ways.
"""

from __future__ import annotations

import ast
import builtins
import gc
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import time
import traceback
import unittest
from collections.abc import Callable
from types import CodeType
from typing import Any, NoReturn

# The harness's own name lookups go to a private copy of the builtins, taken before any candidate
# runs: code that patches the builtins module cannot change how the harness judges it.
globals()["__builtins__"] = dict(vars(builtins))

Job = dict[str, Any]  # one execution, as sent by the host
Outcome = tuple[str, str, float]  # (status, message, milliseconds) of one test

# Imported once here so that each forked child starts with them loaded (copy-on-write).
PRELOAD = [
    "array",
    "bisect",
    "cmath",
    "collections",
    "copy",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "itertools",
    "json",
    "math",
    "numbers",
    "operator",
    "random",
    "re",
    "statistics",
    "string",
    "textwrap",
    "typing",
    "unicodedata",
    "unittest",
]
# Module attributes that a candidate must not replace while tests run (checked by identity).
GUARDED = (
    "builtins",
    "math",
    "cmath",
    "operator",
    "functools",
    "itertools",
    "collections",
    "heapq",
    "bisect",
    "re",
    "string",
    "statistics",
    "fractions",
    "unittest",
)
# Classes whose methods a candidate must not replace (a no-op assertEqual would pass anything).
GUARDED_CLASSES = (("unittest", "TestCase"),)

SOLUTION = "solution.py"
MAX_REPR = 300
MAX_MESSAGE = 2000
MAX_RECORD_BYTES = 4 * 1024 * 1024
TEST_CACHE_SIZE = 4096
ENVIRONMENT_MANIFEST = "mucode-sandbox.json"  # written by mucode.sandbox.environment
REPORT_FD = 1000  # where the child's report pipe lives, out of the way of the candidate's files

# Everything the checks use is bound here, before candidate code can patch builtins.
_type, _isinstance, _issubclass, _repr, _len, _str = type, isinstance, issubclass, repr, len, str
_bool, _list, _tuple, _dict, _set, _frozenset = bool, list, tuple, dict, set, frozenset
_int, _float, _complex, _bytes = int, float, complex, bytes
_os_write, _json_dumps, _getattr, _id = os.write, json.dumps, getattr, id
_BaseException, _SystemExit, _AssertionError = BaseException, SystemExit, AssertionError
_SkipTest, _TestCase = unittest.SkipTest, unittest.TestCase
# Builtin C types whose comparison the candidate cannot patch; their values are taken as they are.
_EXACT = (type(None), bool, int, float, complex, str, bytes, bytearray, range, slice, type(...))
_DICT_VIEWS = {type({}.keys()): "keys", type({}.values()): "values", type({}.items()): "items"}


class _Verdict(BaseException):
    """Raised by the assert helpers; BaseException so that test code's `except Exception` keeps out."""


class _NotPlain(Exception):
    pass


def _short(text: str, limit: int = MAX_REPR) -> str:
    return text if _len(text) <= limit else text[: limit - 15] + "...<truncated>"


# ---------------------------------------------------------------------------- plain values
def _plain(value: Any, depth: int = 0, keep: bool = False) -> Any:
    """Convert to builtin data without calling any method the candidate could have defined.

    Equality is then decided by builtin comparison of plain values, so an object whose __eq__
    always returns True (or whose class was patched) cannot pass for the expected value. With
    ``keep``, objects of library classes (a DataFrame, ``pytest.approx``) stay as they are: only
    the candidate's own classes are refused.
    """
    t = _type(value)
    if t in _EXACT:
        return value
    if depth > 100:
        raise _NotPlain("a structure nested more than 100 levels deep")
    d = depth + 1
    if t is _list:
        return [_plain(x, d, keep) for x in value]
    if t is _tuple:
        return _tuple(_plain(x, d, keep) for x in value)
    if t is _dict:
        return {_plain(k, d, keep): _plain(v, d, keep) for k, v in _dict.items(value)}
    if t is _set or t is _frozenset:
        return t(_plain(x, d, keep) for x in value)
    view = _DICT_VIEWS.get(t)
    if view is not None:
        items = [_plain(x, d, keep) for x in value]
        return items if view == "values" else _set(items)
    for base, convert in _SUBCLASS_CONVERTERS:
        if _issubclass(t, base):
            return _plain(convert(value), d, keep)
    for adapt in _ADAPTERS:
        converted = adapt(t, value)
        if converted is not _NO:
            return _plain(converted, d, keep)
    if keep and _library_type(t):
        return value
    raise _NotPlain("a " + _describe_type(t) + " object")


def _library_type(t: type) -> bool:
    """A class that an imported module really exports under its own name: a library's (pandas,
    numpy, pytest), never one the candidate defined, even one that claims another __module__."""
    module = sys.modules.get(_getattr(t, "__module__", None) or "")
    if module is None or _getattr(module, "__name__", None) in ("solution", "__main__"):
        return False
    found: Any = module
    for part in _str(_getattr(t, "__qualname__", "")).split("."):
        found = _getattr(found, part, None)
    return found is t


_NO = object()
_SUBCLASS_CONVERTERS = (
    (bool, _bool.__bool__),
    (int, _int.__int__),
    (float, _float.__float__),
    (complex, _complex.__complex__),
    (str, _str.__str__),
    (bytes, lambda v: _bytes.__getitem__(v, slice(None))),
    (list, lambda v: _list(_list.__iter__(v))),
    (tuple, lambda v: _tuple(_tuple.__iter__(v))),
    (dict, lambda v: _dict(_dict.items(v))),
    (frozenset, lambda v: _frozenset(_frozenset.__iter__(v))),
    (set, lambda v: _set(_set.__iter__(v))),
)


def _adapt_stdlib(t: type, value: Any) -> Any:
    # Decimal is an immutable C type, so its comparison cannot be patched; Fraction is pure Python.
    import decimal
    import fractions

    if t is decimal.Decimal:
        return (
            value
            if value.is_nan()
            else (_int(value) if value == value.to_integral_value() else _float(value))
        )
    if t is fractions.Fraction:
        num, den = fractions.Fraction.numerator.__get__(value), fractions.Fraction.denominator.__get__(value)
        return num if den == 1 else num / den
    return _NO


def _adapt_numpy(t: type, value: Any) -> Any:
    np = sys.modules.get("numpy")
    if np is None:
        return _NO
    if _issubclass(t, np.ndarray):
        return np.ndarray.tolist(value)
    if _issubclass(t, np.generic):
        return np.generic.item(value)
    return _NO


_ADAPTERS = (_adapt_stdlib, _adapt_numpy)


def _describe_type(t: type) -> str:
    module = _getattr(t, "__module__", "")
    name = _getattr(t, "__qualname__", "?")
    return name if module in ("builtins", "solution", "__main__", "") else module + "." + name


def _show(value: Any) -> str:
    """repr of a value, without running candidate code for non-plain objects."""
    try:
        return _short(_repr(_plain(value)))
    except _NotPlain:
        pass
    if _library_type(_type(value)):
        try:
            return _short(_repr(value))
        except _BaseException:
            pass
    return "<" + _describe_type(_type(value)) + " object>"


# ---------------------------------------------------------------------------- assert helpers
class _Checks:
    """The functions rewritten asserts call. `last` keeps the details of the latest comparison."""

    def __init__(self) -> None:
        self.last: tuple[str, str, str, Any, Any, bool] | None = None
        self.last_truth: tuple[str, Any] | None = None

    def compare(
        self,
        left_fn: Callable[[], Any],
        ops: list[str],
        right_fns: list[Callable[[], Any]],
        sources: list[tuple[str, str]],
    ) -> bool:
        """Chained comparison a op1 b op2 c..., each operand evaluated once, left to right."""
        left = left_fn()
        for op, right_fn, (lsrc, rsrc) in zip(ops, right_fns, sources):
            right = right_fn()
            ok = self._compare_one(left, op, right)
            self.last = (lsrc, op, rsrc, left, right, ok)
            if not ok:
                return False
            left = right
        return True

    @staticmethod
    def _compare_one(left: Any, op: str, right: Any) -> bool:
        if op == "is":
            return left is right
        if op == "is not":
            return left is not right
        try:
            a, b = _plain(left, keep=True), _plain(right, keep=True)
        except _NotPlain:
            a = b = None
            plain = False
        else:
            plain = True
        if not plain:
            left_plain, right_plain = _is_plain(left), _is_plain(right)
            if left_plain != right_plain:
                other = left if not left_plain else right
                raise _Verdict(
                    "got " + _show(other) + ", which is not a plain value (int, str, list, dict, ...); "
                    "compare or return builtin values"
                )
            # Two objects of the candidate's own classes: only their own comparison can decide.
            a, b = left, right
        result = _OPS[op](a, b)
        try:
            return _bool(_plain(result))
        except _NotPlain:
            raise _Verdict("comparison returned " + _show(result) + " instead of a bool") from None

    def truth(self, value: Any, src: str) -> bool:
        try:
            result = _bool(_plain(value, keep=True))
        except _NotPlain:
            raise _Verdict(src + " returned " + _show(value) + ", which is not a plain value") from None
        self.last_truth = (src, value)
        return result

    def all_of(self, fns: list[Callable[[], bool]]) -> bool:
        return all(f() for f in fns)

    def any_of(self, fns: list[Callable[[], bool]]) -> bool:
        return any(f() for f in fns)

    def check(self, ok: bool, src: str, kind: str, msg_fn: Callable[[], Any] | None) -> None:
        """The assert itself: ``kind`` is 'compare', 'truth' or 'not'."""
        if ok:
            self.last = self.last_truth = None
            return
        message = self._explain(src, kind)
        if msg_fn is not None:
            try:
                message += " (assert message: " + _short(_str(msg_fn())) + ")"
            except _BaseException:
                pass
        self.last = self.last_truth = None
        raise _Verdict(message)

    def _explain(self, src: str, kind: str) -> str:
        last = self.last
        if kind == "compare" and last is not None:
            lsrc, op, rsrc, left, right, _ = last
            if _is_literal(lsrc) and not _is_literal(rsrc):  # `assert 4 == f(2)`
                lsrc, rsrc, left, right = rsrc, lsrc, right, left
                op = _FLIPPED.get(op, op)
            verb = _verb(lsrc)
            if op in ("==", "is"):
                return lsrc + verb + _show(left) + ", expected " + _show(right)
            if op == "is not":
                return lsrc + verb + _show(left) + ", expected anything but " + _show(right)
            return (
                lsrc
                + verb
                + _show(left)
                + ", expected it to be "
                + op
                + " "
                + _show(right)
                + ("" if _is_literal(rsrc) else " (" + rsrc + ")")
            )
        truth = self.last_truth
        if kind == "not" and truth is not None:
            return truth[0] + _verb(truth[0]) + _show(truth[1]) + ", expected a false value"
        if kind == "truth" and truth is not None:
            return truth[0] + _verb(truth[0]) + _show(truth[1]) + ", expected a true value"
        if last is not None and kind == "truth_compare":
            lsrc, op, rsrc, left, right, _ = last
            return (
                "assertion failed: "
                + src
                + "; "
                + lsrc
                + " = "
                + _show(left)
                + ", "
                + rsrc
                + " = "
                + _show(right)
            )
        return "assertion failed: " + src + " is false"


def _verb(src: str) -> str:
    return " returned " if src.rstrip().endswith(")") else " is "


def _is_plain(value: Any) -> bool:
    """Plain, or an object of a library class (whose comparison the candidate did not write)."""
    try:
        _plain(value, keep=True)
        return True
    except _NotPlain:
        return False


def _is_literal(src: str) -> bool:
    try:
        ast.literal_eval(src)
        return True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}
_FLIPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
_OP_NAMES = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
H = "__mucode_checks__"
TEST_FILE = "<test>"


class _AssertRewriter(ast.NodeTransformer):
    """Turns every ``assert`` in test code into calls of _Checks, so the harness judges the values."""

    def __init__(self, source: str) -> None:
        self.source = source

    def _src(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source, node) or ast.unparse(node)

    def _call(self, method: str, args: list[ast.expr]) -> ast.Call:
        func = ast.Attribute(value=ast.Name(id=H, ctx=ast.Load()), attr=method, ctx=ast.Load())
        return ast.Call(func=func, args=args, keywords=[])

    @staticmethod
    def _thunk(expr: ast.expr) -> ast.Lambda:
        return ast.Lambda(
            args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]), body=expr
        )

    def strict(self, node: ast.expr) -> ast.expr:
        """An expression that evaluates ``node`` to a bool through the strict helpers."""
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            srcs = [(self._src(a), self._src(b)) for a, b in zip(operands, operands[1:])]
            return self._call(
                "compare",
                [
                    self._thunk(self.visit(node.left)),
                    ast.List(elts=[ast.Constant(_OP_NAMES[type(op)]) for op in node.ops], ctx=ast.Load()),
                    ast.List(elts=[self._thunk(self.visit(c)) for c in node.comparators], ctx=ast.Load()),
                    ast.List(
                        elts=[
                            ast.Tuple(elts=[ast.Constant(a), ast.Constant(b)], ctx=ast.Load())
                            for a, b in srcs
                        ],
                        ctx=ast.Load(),
                    ),
                ],
            )
        if isinstance(node, ast.BoolOp):
            method = "all_of" if isinstance(node.op, ast.And) else "any_of"
            return self._call(
                method, [ast.List(elts=[self._thunk(self.strict(v)) for v in node.values], ctx=ast.Load())]
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ast.UnaryOp(op=ast.Not(), operand=self.strict(node.operand))
        return self._call("truth", [self.visit(node), ast.Constant(self._src(node))])

    def visit_Call(self, node: ast.Call) -> Any:
        """``self.assertTrue(f(x) == 2)``: the comparison is the test's own, so it goes through the
        strict helpers too (unittest only sees the bool it gave)."""
        self.generic_visit(node)
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ("assertTrue", "assertFalse")
            and node.args
            and isinstance(node.args[0], (ast.Compare, ast.BoolOp, ast.UnaryOp))
        ):
            node.args[0] = self.strict(node.args[0])
        return node

    def visit_Assert(self, node: ast.Assert) -> Any:
        test = node.test
        if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) and node.msg is None:
            # `assert a and b` is `assert a; assert b`: each part gets its own precise message.
            parts = [ast.copy_location(ast.Assert(test=v, msg=None), node) for v in test.values]
            return [self.visit_Assert(p) for p in parts]
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            kind = "compare"
        elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            kind = "not"
        elif isinstance(test, (ast.Compare, ast.BoolOp)):
            kind = "truth_compare"
        else:
            kind = "truth"
        msg = self._thunk(self.visit(node.msg)) if node.msg is not None else ast.Constant(None)
        call = self._call(
            "check", [self.strict(test), ast.Constant(self._src(test)), ast.Constant(kind), msg]
        )
        return ast.copy_location(ast.Expr(value=call), node)


def compile_test(source: str) -> tuple[CodeType, Suite | None]:
    tree = ast.parse(source, filename=TEST_FILE)
    suite = find_suite(tree)  # before compiling: it strips the fixture decorators
    tree = ast.fix_missing_locations(_AssertRewriter(source).visit(tree))
    return compile(tree, TEST_FILE, "exec"), suite


# ---------------------------------------------------------------------------- test suites
class Suite:
    """What a test module defines: ``unittest.TestCase`` classes (their ``test*`` methods, in
    unittest's alphabetical order) or pytest-style ``test*`` functions and ``Test*`` classes (in
    source order) with their fixtures. Found from the source alone, so that cases a crash kept
    from running can still be named."""

    __slots__ = ("autouse", "cases", "fixtures", "kind")

    def __init__(self, kind: str, cases: list[tuple[str, str | None, str]]) -> None:
        self.kind = kind
        self.cases = cases  # (label, class or None, function or method)
        self.fixtures: set[str] = set()
        self.autouse: list[str] = []


def _dotted(node: ast.expr) -> str:
    return ast.unparse(node.func if isinstance(node, ast.Call) else node)


def find_suite(tree: ast.Module) -> Suite | None:
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}

    def bases(node: ast.ClassDef) -> list[str]:
        return [_dotted(base).rsplit(".", 1)[-1] for base in node.bases]

    def is_case(node: ast.ClassDef, seen: frozenset[str]) -> bool:
        return any(
            base == "TestCase"
            or (base in classes and base not in seen and is_case(classes[base], seen | {base}))
            for base in bases(node)
        )

    def methods(node: ast.ClassDef, seen: frozenset[str]) -> set[str]:
        names = {m.name for m in node.body if isinstance(m, ast.FunctionDef) and m.name.startswith("test")}
        for base in bases(node):
            if base in classes and base not in seen:
                names |= methods(classes[base], seen | {base})
        return names

    cases: list[tuple[str, str | None, str]] = [
        (name + "." + method, name, method)
        for name, node in classes.items()
        if is_case(node, frozenset({name}))
        for method in sorted(methods(node, frozenset({name})))
    ]
    if cases:
        return Suite("unittest", cases)
    suite = Suite("pytest", [])
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            marks = [d for d in node.decorator_list if _dotted(d).rsplit(".", 1)[-1] == "fixture"]
            if marks:
                # A fixture stays a plain function here; the runner calls it by parameter name.
                node.decorator_list = [d for d in node.decorator_list if d not in marks]
                suite.fixtures.add(node.name)
                if any(
                    k.arg == "autouse" and isinstance(k.value, ast.Constant) and k.value.value is True
                    for d in marks
                    if isinstance(d, ast.Call)
                    for k in d.keywords
                ):
                    suite.autouse.append(node.name)
            elif node.name.startswith("test"):
                suite.cases.append((node.name, None, node.name))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            suite.cases += [
                (node.name + "." + m.name, node.name, m.name)
                for m in node.body
                if isinstance(m, ast.FunctionDef) and m.name.startswith("test")
            ]
    return suite if suite.cases else None


def _parameters(function: Any) -> list[str]:
    """Names a pytest test or fixture asks for (``self`` of a bound method left out)."""
    code = _getattr(_getattr(function, "__func__", function), "__code__", None)
    if code is None:
        return []
    names = _list(code.co_varnames[: code.co_argcount])
    return names[1:] if _getattr(function, "__self__", None) is not None else names


class _CaseRun:
    """One pytest case's fixtures: each computed once, torn down in reverse order."""

    def __init__(self, suite: Suite, namespace: dict[str, Any], workdir: str) -> None:
        self.suite, self.namespace, self.workdir = suite, namespace, workdir
        self.values: dict[str, Any] = {}
        self.generators: list[Any] = []

    def fixture(self, name: str, asking: tuple[str, ...] = ()) -> Any:
        if name in self.values:
            return self.values[name]
        if name == "tmp_path":
            import pathlib
            import tempfile

            value: Any = pathlib.Path(tempfile.mkdtemp(dir=self.workdir))
        elif name in self.suite.fixtures and name not in asking:
            function = self.namespace[name]
            value = function(**self.arguments(function, (*asking, name)))
            if _getattr(value, "__next__", None) is not None and _getattr(value, "gi_code", None) is not None:
                self.generators.append(value)
                value = next(value)
        else:
            raise LookupError(
                "fixture %r not found (fixtures of this module and tmp_path are available)" % name
            )
        self.values[name] = value
        return value

    def arguments(self, function: Any, asking: tuple[str, ...] = ()) -> dict[str, Any]:
        return {name: self.fixture(name, asking) for name in _parameters(function)}

    def teardown(self) -> None:
        while self.generators:
            next(self.generators.pop(), None)


def run_suite(
    index: int,
    test: CompiledTest,
    test_globals: dict[str, Any],
    checks: _Checks,
    code_lines: list[str],
    reporter: Reporter,
    guard: Guard,
) -> None:
    """Child process: define the suite's classes and functions, then run and report each case."""
    suite = test.suite
    assert suite is not None and test.code is not None
    test_lines = test.source.splitlines()
    test_globals[H] = checks
    try:
        exec(test.code, test_globals)
    except _BaseException as exc:
        message = "not run: the test module raised " + describe_exception(exc, code_lines, test_lines)
        for k in range(_len(suite.cases)):
            reporter.send(
                e="result", i=index, c=k, status="error", message=_short(message, MAX_MESSAGE), ms=0.0
            )
        return
    class_errors: dict[str, str] = {}
    for k, (label, owner, name) in enumerate(suite.cases):
        reporter.send(e="start", i=index, c=k)
        started = time.perf_counter()
        test_globals[H] = checks
        checks.last = checks.last_truth = None
        try:
            if suite.kind == "unittest":
                _run_unittest_case(test_globals, owner or "", name, class_errors)
            else:
                _run_pytest_case(suite, test_globals, owner, name)
        except _Verdict as verdict:
            status, message = "failed", _str(verdict.args[0]) + _test_line(verdict, test_lines)
        except _AssertionError as exc:
            status, message = "failed", describe_exception(exc, code_lines, test_lines)
        except _SkipTest as exc:
            status, message = "error", "skipped (a skipped test does not pass): " + _short(_str(exc))
        except _BaseException as exc:
            status, message = "error", label + " raised " + describe_exception(exc, code_lines, test_lines)
        else:
            status, message = "passed", ""
        status, message = _after_test(test, test_globals, checks, guard, status, message)
        ms = (time.perf_counter() - started) * 1000
        reporter.send(e="result", i=index, c=k, status=status, message=_short(message, MAX_MESSAGE), ms=ms)


def _run_unittest_case(
    namespace: dict[str, Any], owner: str, name: str, class_errors: dict[str, str]
) -> None:
    cls: Any = namespace.get(owner)
    if not (_isinstance(cls, _type) and _issubclass(cls, _TestCase)):
        raise TypeError("%s is not a unittest.TestCase class when the tests run" % owner)
    if owner not in class_errors:
        class_errors[owner] = ""
        try:
            cls.setUpClass()
        except _BaseException as exc:
            class_errors[owner] = "setUpClass raised " + describe_exception(exc, [])
    if class_errors[owner]:
        raise RuntimeError(class_errors[owner])
    case = cls(name)
    case.setUp()
    try:
        _getattr(case, name)()
    finally:
        try:
            case.tearDown()
        finally:
            case.doCleanups()


def _run_pytest_case(suite: Suite, namespace: dict[str, Any], owner: str | None, name: str) -> None:
    function = namespace[name] if owner is None else _getattr(namespace[owner](), name)
    run = _CaseRun(suite, namespace, os.getcwd())
    try:
        for fixture in suite.autouse:
            run.fixture(fixture)
        setup, teardown = namespace.get("setup_function"), namespace.get("teardown_function")
        if callable(setup) and owner is None:
            setup(*([function] if _parameters(setup) else []))
        try:
            function(**run.arguments(function))
        finally:
            if callable(teardown) and owner is None:
                teardown(*([function] if _parameters(teardown) else []))
    finally:
        run.teardown()


# unittest's checks that compare values, and how many leading arguments are values to compare.
_VETTED_ASSERTS = {
    **dict.fromkeys(("assertTrue", "assertFalse"), 1),
    **dict.fromkeys(
        (
            "assertEqual", "assertNotEqual", "assertIn", "assertNotIn", "assertAlmostEqual",
            "assertNotAlmostEqual", "assertGreater", "assertGreaterEqual", "assertLess",
            "assertLessEqual", "assertCountEqual", "assertListEqual", "assertTupleEqual",
            "assertDictEqual", "assertSetEqual", "assertSequenceEqual", "assertMultiLineEqual",
        ),
        2,
    ),
}  # fmt: skip
_VALUE_KEYWORDS = ("first", "second", "expr", "member", "container", "a", "b", "list1", "list2")


def _vetted(value: Any) -> Any:
    """A value unittest may compare: builtin data, or an object of a library class. An object of
    the candidate's own class (an __eq__ that always says yes) is refused, as in asserts."""
    try:
        return _plain(value, keep=True)
    except _NotPlain:
        raise _AssertionError(
            "got " + _show(value) + ", which is not a plain value (int, str, list, dict, ...) "
            "nor a library object; return builtin values"
        ) from None


def _harden_unittest() -> None:
    """TestCase's comparing checks vet their values first (installed in the zygote, before the
    Guard snapshots TestCase, so a candidate's changes to them are undone and caught)."""
    for name, count in _VETTED_ASSERTS.items():
        original = vars(_TestCase)[name]

        def vetted(
            self: Any, *args: Any, __original: Any = original, __count: int = count, **kwargs: Any
        ) -> Any:
            args = _tuple(_vetted(a) if k < __count else a for k, a in enumerate(args))
            kwargs = {k: _vetted(v) if k in _VALUE_KEYWORDS else v for k, v in kwargs.items()}
            return __original(self, *args, **kwargs)

        _type.__setattr__(_TestCase, name, vetted)


def _test_line(exc: BaseException, test_lines: list[str]) -> str:
    """Where in the test code the failure happened: the last frame in the test module."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == TEST_FILE]
    if not frames or not frames[-1].lineno or not 0 < frames[-1].lineno <= _len(test_lines):
        return ""
    line = frames[-1].lineno
    return "\n  at test line %d: %s" % (line, _short(test_lines[line - 1].strip(), 200))


# ---------------------------------------------------------------------------- error text
def describe_exception(exc: BaseException, code_lines: list[str], test_lines: list[str] | None = None) -> str:
    """One line naming the exception, then a traceback trimmed to the candidate's own lines (and,
    for suites, where in the test code it happened)."""
    if isinstance(exc, SyntaxError) and exc.filename == SOLUTION:
        head = "%s: %s at line %s" % (_type(exc).__name__, exc.msg, exc.lineno)
        text = (exc.text or "").rstrip("\n")
        if text and exc.offset:
            indent = len(text) - len(text.lstrip())
            head += "\n    " + text.strip() + "\n    " + " " * max(exc.offset - 1 - indent, 0) + "^"
        return head
    summary = _exception_summary(exc)
    head = summary or _short("".join(traceback.format_exception_only(_type(exc), exc)).strip(), 600)
    if test_lines is not None:
        head += _test_line(exc, test_lines)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == SOLUTION]
    if not frames:
        return head
    lines = [head, "Traceback (candidate's code, most recent call last):"]
    shown = frames if len(frames) <= 8 else [*frames[:3], None, *frames[-4:]]
    for f in shown:
        if f is None:
            lines.append("  ... %d more frames ..." % (len(frames) - 7))
            continue
        text = code_lines[f.lineno - 1].strip() if f.lineno and 0 < f.lineno <= len(code_lines) else ""
        lines.append('  File "%s", line %s, in %s' % (SOLUTION, f.lineno, f.name))
        if text:
            lines.append("    " + _short(text, 200))
    return "\n".join(lines)


def _exception_summary(exc: BaseException) -> str | None:
    if isinstance(exc, _SystemExit):
        return "SystemExit(%r): the program called exit() instead of returning" % (exc.code,)
    if isinstance(exc, MemoryError):
        return "MemoryError: the memory limit was reached"
    if isinstance(exc, RecursionError):
        return "RecursionError: " + _short(_str(exc), 200)
    return None


# ---------------------------------------------------------------------------- child side
class Reporter:
    """Writes records to the zygote over a pipe the candidate never needs to touch."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, **record: Any) -> None:
        data = (_json_dumps(record) + "\n").encode("utf-8", "replace")
        view = memoryview(data)
        while view:
            view = view[_os_write(self.fd, view) :]


class Guard:
    """Snapshots of builtins and of the GUARDED modules, taken in the zygote before any candidate
    runs. Checking touches every guarded value (a copy-on-write page fault each in a forked child),
    so a test only checks builtins and the guarded modules its source names."""

    def __init__(self) -> None:
        self.modules = {name: sys.modules[name] for name in GUARDED if name in sys.modules}
        self.snapshots = {name: _dict(vars(module)) for name, module in self.modules.items()}
        self.pristine_builtins = _dict(vars(builtins))
        self.classes = {
            module: [(cls, _dict(vars(cls))) for cls in [_getattr(self.modules[module], attr)]]
            for module, attr in GUARDED_CLASSES
            if module in self.modules
        }

    def modules_for(self, source: str) -> tuple[str, ...]:
        return tuple(name for name in self.snapshots if name in source)

    def rebind(self, namespace: dict[str, Any]) -> None:
        """Names of guarded modules in the tests' namespace point at the real modules."""
        for name, module in self.modules.items():
            if name in namespace and namespace[name] is not module:
                namespace[name] = module

    def restore(self, names: tuple[str, ...]) -> list[str]:
        """Names of guarded attributes changed since the snapshot; puts the originals back."""
        changed = []
        for name in names:
            module = self.modules[name]
            if sys.modules.get(name) is not module:
                changed.append("sys.modules[%r]" % name)
                sys.modules[name] = module
            current = vars(module)
            for key, value in self.snapshots[name].items():
                if current.get(key, _NO) is not value:
                    changed.append(name + "." + key)
                    current[key] = value
            for cls, snapshot in self.classes.get(name, ()):
                now = vars(cls)
                for key in [k for k in now if k not in snapshot]:
                    changed.append(cls.__qualname__ + "." + key)
                    _type.__delattr__(cls, key)
                for key, value in snapshot.items():
                    if now.get(key, _NO) is not value:
                        changed.append(cls.__qualname__ + "." + key)
                        _type.__setattr__(cls, key, value)
        return changed


class CompiledTest:
    """A test compiled once in the zygote (and cached there): forked children only run it."""

    __slots__ = ("code", "error", "guarded", "source", "suite")

    def __init__(self, source: str, guard: Guard) -> None:
        self.source = source
        self.guarded = guard.modules_for(source)
        self.code: CodeType | None = None
        self.suite: Suite | None = None
        self.error = ""
        try:
            self.code, self.suite = compile_test(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            self.error = "the test itself does not compile: " + _short(_str(exc), 300)


def run_assert_tests(job: Job, reporter: Reporter, tests: list[CompiledTest], guard: Guard) -> None:
    """Child process: load the candidate once, then run every test and report each one."""
    code = job["code"]
    code_lines = code.splitlines()
    namespace = {"__name__": "solution", "__file__": SOLUTION, "__builtins__": builtins}
    try:
        program = compile(code, SOLUTION, "exec")
    except (SyntaxError, ValueError) as exc:
        reporter.send(
            e="load_error", message="the code does not compile: " + describe_exception(exc, code_lines)
        )
        return
    try:
        exec(program, namespace)
    except _BaseException as exc:
        reporter.send(
            e="load_error",
            message="running the code's top level raised " + describe_exception(exc, code_lines),
        )
        return
    guard.restore(tuple({name for test in tests for name in test.guarded}))
    checks = _Checks()
    test_globals = _dict(namespace)
    test_globals["__builtins__"] = guard.pristine_builtins
    test_globals["__name__"] = "__tests__"
    guard.rebind(test_globals)
    reporter.send(e="loaded")
    for index, test in enumerate(tests):
        if test.suite is not None:
            run_suite(index, test, test_globals, checks, code_lines, reporter, guard)
            continue
        reporter.send(e="start", i=index)
        started = time.perf_counter()
        status, message = _run_one(test, test_globals, checks, code_lines)
        status, message = _after_test(test, test_globals, checks, guard, status, message)
        reporter.send(
            e="result",
            i=index,
            status=status,
            message=_short(message, MAX_MESSAGE),
            ms=(time.perf_counter() - started) * 1000,
        )


def _after_test(
    test: CompiledTest, test_globals: dict[str, Any], checks: _Checks, guard: Guard, status: str, message: str
) -> tuple[str, str]:
    """A pass stands only if the code left the judging machinery as it found it."""
    changed = guard.restore(test.guarded)
    if test_globals.get(H) is not checks:
        return "failed", "the test's checking helper was replaced"
    if status == "passed" and changed:
        return "failed", "the code replaced " + ", ".join(changed[:5]) + " while the test ran"
    return status, message


def _run_one(
    test: CompiledTest, test_globals: dict[str, Any], checks: _Checks, code_lines: list[str]
) -> tuple[str, str]:
    if test.code is None:
        return "error", test.error
    test_globals[H] = checks
    checks.last = checks.last_truth = None
    try:
        exec(test.code, test_globals)
    except _Verdict as verdict:
        return "failed", _str(verdict.args[0])
    except _BaseException as exc:
        return "error", _short(_headline(test.source), 200) + " raised " + describe_exception(exc, code_lines)
    return "passed", ""


def _headline(source: str) -> str:
    lines = [line for line in source.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else source


def run_program(job: Job, reporter: Reporter) -> None:
    """Child process for a stdin/stdout test: the code runs as __main__ with the input on stdin."""
    code = job["code"]
    code_lines = code.splitlines()
    namespace = {"__name__": "__main__", "__file__": SOLUTION, "__builtins__": builtins}
    try:
        program = compile(code, SOLUTION, "exec")
        exec(program, namespace)
    except _SystemExit as exc:
        if exc.code not in (None, 0):
            reporter.send(e="exit", status="error", message="the program exited with status %r" % (exc.code,))
            return
    except _BaseException as exc:
        reporter.send(
            e="exit", status="error", message="the program raised " + describe_exception(exc, code_lines)
        )
        return
    reporter.send(e="exit", status="ok", message="")


# ---------------------------------------------------------------------------- zygote side
class Zygote:
    def __init__(
        self,
        channel_in: int,
        channel_out: int,
        isolated: bool,
        workroot: str,
        preloaded: list[str],
        preload_bytes: int,
    ) -> None:
        self.channel_in, self.channel_out = channel_in, channel_out
        self.preloaded, self.preload_bytes = preloaded, preload_bytes
        self.isolated = isolated  # inside bubblewrap's PID namespace: kill(-1) reaches only our processes
        self.workroot = workroot
        self.counter = 0
        self.guard = Guard()
        self.compiled: dict[str, CompiledTest] = {}

    def compile_tests(self, sources: list[str]) -> list[CompiledTest]:
        """Tests repeat across executions (N candidates, T turns): compile each source once."""
        tests = []
        for source in sources:
            test = self.compiled.pop(source, None) or CompiledTest(source, self.guard)
            self.compiled[source] = test  # most recently used last
            tests.append(test)
        while len(self.compiled) > TEST_CACHE_SIZE:
            del self.compiled[next(iter(self.compiled))]
        return tests

    # -- wire
    def read_message(self) -> Job | None:
        header = self._read_exact(4)
        if header is None:
            return None
        (size,) = struct.unpack(">I", header)
        body = self._read_exact(size)
        if body is None:
            return None
        job: Job = json.loads(body.decode("utf-8"))
        return job

    def _read_exact(self, size: int) -> bytes | None:
        chunks, remaining = [], size
        while remaining:
            chunk = os.read(self.channel_in, remaining)
            if not chunk:
                return None
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def write_message(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode("utf-8")
        data = struct.pack(">I", len(data)) + data
        while data:
            data = data[os.write(self.channel_out, data) :]

    # -- one job: prepare, run, cleanup (always)
    def run_job(self, job: Job) -> dict[str, Any]:
        started = time.monotonic()
        deadline = started + job["timeout_s"]
        self.counter += 1
        workdir = os.path.join(self.workroot, "run%d" % self.counter)
        os.makedirs(workdir)
        try:
            outcome = self._run_phases(job, workdir, deadline)
        finally:
            self._kill_strays()
            self._cleanup(workdir)
        outcome["duration_ms"] = (time.monotonic() - started) * 1000
        return outcome

    def _run_phases(self, job: Job, workdir: str, deadline: float) -> dict[str, Any]:
        results: dict[int, Any] = {}  # an Outcome, or for a suite {"suite": kind, "cases": [...]}
        stdout: list[str] = []
        stderr: list[str] = []
        notes: list[str] = []
        out_truncated = err_truncated = False
        tests = job["tests"]
        if tests or not job["io_tests"]:
            compiled = self.compile_tests(tests)
            run = self._fork(job, workdir, deadline, None, compiled)
            out, err, ot, et = run["stdout"], run["stderr"], run["stdout_truncated"], run["stderr_truncated"]
            stdout.append(out)
            stderr.append(err)
            out_truncated, err_truncated = ot, et
            self._assert_results(compiled, run, results, notes)
        for k, io_test in enumerate(job["io_tests"]):
            index = len(tests) + k
            if time.monotonic() >= deadline:
                results[index] = ("error", "not run: the time limit was reached by an earlier test", 0.0)
                continue
            run = self._fork(job, workdir, deadline, io_test["input"], [])
            stdout.append(run["stdout"])
            stderr.append(run["stderr"])
            out_truncated |= run["stdout_truncated"]
            err_truncated |= run["stderr_truncated"]
            results[index] = self._io_result(io_test, run)
        return {
            "results": [results[i] for i in range(len(tests) + len(job["io_tests"]))],
            "stdout": "".join(stdout),
            "stderr": "".join(stderr),
            "stdout_truncated": out_truncated,
            "stderr_truncated": err_truncated,
            "notes": notes,
        }

    def _assert_results(
        self, tests: list[CompiledTest], run: dict[str, Any], results: dict[int, Any], notes: list[str]
    ) -> None:
        """One outcome per test, one per case of a suite (keyed (test, case); case None for an
        assert test): reported ones as reported, the rest with why they never finished."""
        records = run["records"]
        load_error = next((r for r in records if r.get("e") == "load_error"), None)
        loaded = any(r.get("e") == "loaded" for r in records)
        done = {
            (r["i"], r.get("c")): (r["status"], r["message"], r["ms"])
            for r in records
            if r.get("e") == "result"
        }
        started = [(r["i"], r.get("c")) for r in records if r.get("e") == "start"]
        interrupted = started[-1] if started and started[-1] not in done else None
        ending = run["ending"]
        if load_error is not None:
            notes.append(load_error["message"])
        elif not loaded and ending:
            notes.append("loading the code " + ending["text"])

        def outcome(key: tuple[int, int | None]) -> Outcome:
            if load_error is not None:
                return ("error", "not run: " + load_error["message"].split("\n")[0], 0.0)
            if key in done:
                return done[key]
            if key == interrupted:
                return (ending["status"], "this test " + ending["text"], ending.get("ms", 0.0))
            if not loaded:
                return (
                    ending["status"] if ending else "error",
                    "not run: loading the code " + (ending["text"] if ending else "failed"),
                    0.0,
                )
            return ("error", "not run: the program stopped during an earlier test", 0.0)

        for i, test in enumerate(tests):
            if test.suite is None:
                results[i] = outcome((i, None))
            else:
                cases = [[label, *outcome((i, k))] for k, (label, _, _) in enumerate(test.suite.cases)]
                results[i] = {"suite": test.suite.kind, "cases": cases}
        if tests == [] and ending:
            notes.append("the program " + ending["text"])

    def _io_result(self, io_test: dict[str, str], run: dict[str, Any]) -> Outcome:
        exit_record = next((r for r in run["records"] if r.get("e") == "exit"), None)
        ms = run["ms"]
        if run["ending"] and (exit_record is None or run["ending"]["status"] == "timeout"):
            return (run["ending"]["status"], "the program " + run["ending"]["text"], ms)
        if exit_record is None:
            return ("error", "the program ended without finishing", ms)
        if exit_record["status"] != "ok":
            return ("error", exit_record["message"], ms)
        if run["stdout_truncated"]:
            return ("failed", "the output was larger than the output limit", ms)
        actual, expected = normalise_output(run["stdout"]), normalise_output(io_test["output"])
        if actual == expected:
            return ("passed", "", ms)
        return ("failed", describe_output_mismatch(io_test["input"], expected, actual), ms)

    def _fork(
        self, job: Job, workdir: str, deadline: float, stdin_text: str | None, tests: list[CompiledTest]
    ) -> dict[str, Any]:
        """Run one child to completion or to the deadline; collect its records and output."""
        out_path, err_path = os.path.join(workdir, ".stdout"), os.path.join(workdir, ".stderr")
        in_path = os.path.join(workdir, ".stdin")
        if stdin_text is not None:
            with open(in_path, "w", encoding="utf-8") as handle:
                handle.write(stdin_text)
        # Everything that can be prepared before the fork is: work in the child after the fork
        # costs a copy-on-write page fault per page it touches.
        write_only = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        fds = [
            os.open(in_path if stdin_text is not None else os.devnull, os.O_RDONLY | os.O_CLOEXEC),
            os.open(out_path, write_only, 0o600),
            os.open(err_path, write_only, 0o600),
        ]
        read_fd, write_fd = os.pipe()
        limits = _limits(job, self.preload_bytes)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # child: never returns
            self._child(job, workdir, fds, write_fd, limits, stdin_text is not None, tests)
        for fd in (*fds, write_fd):
            os.close(fd)
        records, ending = self._collect(pid, read_fd, deadline, job)
        ms = (time.monotonic() - started) * 1000
        if ending is not None:
            ending["ms"] = ms
        cap = job["capture_bytes"]
        stdout, out_truncated = _read_capped(
            out_path, cap if stdin_text is None else job["output_limit_bytes"]
        )
        stderr, err_truncated = _read_capped(err_path, cap)
        return {
            "records": records,
            "ending": ending,
            "stdout": stdout,
            "stderr": stderr,
            "stdout_truncated": out_truncated,
            "stderr_truncated": err_truncated,
            "ms": ms,
        }

    def _collect(
        self, pid: int, read_fd: int, deadline: float, job: Job
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        records, buffer = [], b""
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        poller.register(read_fd, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        finished = timed_out = False
        open_pipe = True
        try:
            while not finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for fd, _ in poller.poll(remaining * 1000):
                    if fd == pidfd:
                        finished = True
                    elif open_pipe:
                        chunk = os.read(read_fd, 65536)
                        if not chunk:
                            open_pipe = False
                            poller.unregister(read_fd)
                        buffer += chunk
                        if len(buffer) > MAX_RECORD_BYTES:  # a flood of records is not a test run
                            os.kill(pid, signal.SIGKILL)
            if finished and open_pipe:  # drain what the child wrote before it exited
                os.set_blocking(read_fd, False)
                try:
                    while True:
                        chunk = os.read(read_fd, 65536)
                        if not chunk:
                            break
                        buffer += chunk
                except BlockingIOError:
                    pass
        finally:
            if timed_out:
                os.kill(pid, signal.SIGKILL)
            status = self._reap(pid)
            os.close(read_fd)
            os.close(pidfd)
        for line in buffer.split(b"\n"):
            if line:
                try:
                    record = json.loads(line.decode("utf-8", "replace"))
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append(record)
        clean_exit = status == 0 and any(r.get("e") == "done" for r in records)
        if timed_out:
            return records, {"status": "timeout", "text": "timed out (time limit %gs)" % job["timeout_s"]}
        if clean_exit:
            return records, None
        return records, _describe_status(status, job)

    @staticmethod
    def _reap(pid: int) -> int:
        _, status = os.waitpid(pid, 0)
        return status

    def _child(
        self,
        job: Job,
        workdir: str,
        fds: list[int],
        write_fd: int,
        limits: list[tuple[int, tuple[int, int]]],
        io_run: bool,
        tests: list[CompiledTest],
    ) -> NoReturn:
        code = 1
        try:
            os.chdir(workdir)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            report_fd = os.dup2(write_fd, REPORT_FD)
            os.closerange(3, REPORT_FD)  # the zygote's channel to the host among them
            os.closerange(REPORT_FD + 1, 65536)
            if not self.isolated:
                os.setsid()
            for which, value in limits:
                resource.setrlimit(which, value)
            # sys.std* of the zygote wrap fds 0-2, now the run's files: reusing them saves the
            # page faults of building new ones in every child. The zygote never writes to them.
            reporter = Reporter(report_fd)
            out, err = sys.stdout, sys.stderr
            if io_run:
                run_program(job, reporter)
            else:
                run_assert_tests(job, reporter, tests, self.guard)
            for stream in (out, err):
                try:
                    stream.flush()
                except _BaseException:
                    pass
            reporter.send(e="done")
            code = 0
        except _BaseException:
            code = 70
        finally:
            os._exit(code)  # no atexit handlers, no finalizers of candidate objects

    def _kill_strays(self) -> None:
        """Whatever the candidate left running (daemons, orphans) dies here."""
        if self.isolated:
            try:
                os.kill(-1, signal.SIGKILL)  # every process in this PID namespace but us and its init
            except ProcessLookupError:
                pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break

    def _cleanup(self, workdir: str) -> None:
        def unlock(function: Callable[[str], Any], path: str, _excinfo: Any) -> None:
            os.chmod(os.path.dirname(path), 0o700)
            function(path)

        if not self.isolated:  # outside a sandbox only the run's own folder is ours to remove
            shutil.rmtree(workdir, onerror=unlock)
            return
        # The candidate may have written anywhere it could (the run folder is under /tmp too):
        # every run starts with both empty.
        for root in ("/tmp", "/dev/shm"):
            for name in os.listdir(root):
                path = os.path.join(root, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, onerror=unlock)
                else:
                    os.unlink(path)

    def serve(self) -> None:
        self.write_message(
            {
                "ready": True,
                "python": sys.version.split()[0],
                "pid": os.getpid(),
                "preloaded": self.preloaded,
                "preload_mb": round(self.preload_bytes / 2**20, 1),
            }
        )
        while True:
            job = self.read_message()
            if job is None:
                return
            try:
                reply = self.run_job(job)
            except Exception as exc:  # a harness bug, reported as such rather than as a test failure
                reply = {
                    "harness_error": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                }
            self.write_message(reply)


def _limits(job: Job, preload_bytes: int) -> list[tuple[int, tuple[int, int]]]:
    """(resource, (soft, hard)) for the child; never above a hard limit the zygote already has.
    The memory limit is the program's own: what the preloaded modules take comes on top."""
    mb = 1024 * 1024
    cpu = int(job["timeout_s"]) + 1
    memory = job["memory_mb"] * mb + preload_bytes
    wanted = (
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_CPU, cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL at the hard one
        (resource.RLIMIT_NPROC, job["max_processes"], job["max_processes"]),
        (resource.RLIMIT_FSIZE, job["output_limit_bytes"], job["output_limit_bytes"]),
        (resource.RLIMIT_NOFILE, job["max_open_files"], job["max_open_files"]),
        (resource.RLIMIT_CORE, 0, 0),
    )
    limits = []
    for which, soft, hard in wanted:
        current = resource.getrlimit(which)[1]
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        limits.append((which, (soft, hard)))
    return limits


def _describe_status(status: int, job: Job) -> dict[str, Any]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig in (signal.SIGXCPU, signal.SIGKILL):
            return {
                "status": "timeout",
                "text": "was killed: CPU time limit (%ss) exceeded" % (int(job["timeout_s"]) + 1)
                if sig == signal.SIGXCPU
                else "was killed (SIGKILL; CPU or memory limit)",
            }
        return {"status": "error", "text": "crashed with signal %s" % signal.Signals(sig).name}
    code = os.WEXITSTATUS(status)
    return {"status": "error", "text": "exited with status %d (exit() or os._exit()) before finishing" % code}


def _read_capped(path: str, cap: int) -> tuple[str, bool]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(cap + 1)
    except FileNotFoundError:
        return "", False
    return data[:cap].decode("utf-8", "replace"), len(data) > cap


def normalise_output(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def describe_output_mismatch(stdin_text: str, expected: str, actual: str) -> str:
    exp_lines, act_lines = expected.split("\n"), actual.split("\n")
    line = next(
        (i for i, (a, b) in enumerate(zip(exp_lines, act_lines)) if a != b),
        min(len(exp_lines), len(act_lines)),
    )
    detail = "first difference at output line %d" % (line + 1)
    return "wrong output (%s)\ninput:\n%s\nexpected output:\n%s\nactual output:\n%s" % (
        detail,
        _short(stdin_text, 500),
        _short(expected, 500),
        _short(actual, 500) if actual else "(nothing)",
    )


def _address_space() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return _int(line.split()[1]) * 1024
    return 0


def _load_environment(workroot: str, preload: bool) -> tuple[list[str], int]:
    """The environment's heavy modules (its manifest's ``preload``), imported once here; returns
    those imported and the address space they took, which each run gets on top of its limit."""
    try:
        with open(os.path.join(sys.prefix, ENVIRONMENT_MANIFEST), encoding="utf-8") as handle:
            names = json.load(handle).get("preload", [])
    except (OSError, ValueError):
        return [], 0
    fonts = os.path.join(sys.prefix, "mplconfig")
    if os.path.isdir(fonts):  # matplotlib's font cache, built at setup; matplotlib wants it writable
        config = os.path.join(workroot, ".mplconfig")
        shutil.copytree(fonts, config, dirs_exist_ok=True)
        os.environ["MPLCONFIGDIR"] = config
    before = _address_space()
    loaded = []
    for name in names if preload else []:
        try:
            __import__(name)
            loaded.append(name)
        except Exception:  # a module the environment lacks costs its runs the import, nothing else
            pass
    return loaded, max(_address_space() - before, 0)


def main() -> None:
    isolated = sys.argv[1] == "isolated"
    workroot = sys.argv[2]
    preload = sys.argv[3] == "preload"
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    os.makedirs(workroot, exist_ok=True)
    channel_in, channel_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    preloaded, preload_bytes = _load_environment(workroot, preload)  # after: an import may print
    if isolated:
        import ctypes

        # Not dumpable: candidates (same uid) can neither ptrace the zygote nor read its memory.
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _harden_unittest()
    gc.freeze()  # the preloaded heap stays shared between forks instead of being touched by the GC
    Zygote(channel_in, channel_out, isolated, workroot, preloaded, preload_bytes).serve()


if __name__ == "__main__":
    main()
