"""Choosing an answer when the problem has no tests: execution agreement on written inputs.

The generator writes calls of the function with the results it expects (``assert f(2) == 4``);
every candidate program runs those calls in the sandbox (one run per program, each call under its
own time limit); candidates that behave alike on every call — the same values (floats to 9
significant digits), the same printed output, the same exceptions — form a group; the answer
comes from the best-supported group (``RULES``; CodeT and MBR-exec are the ideas). A written
expectation is only a vote: the small model's own expected values are often wrong, so a group's
size counts as well as the expectations its outputs meet.

Calls on which every candidate raises are taken for invalid inputs and ignored; a group that
raises where another returns a value "crashes" there, which the rule counts against it and the
search shows the model as feedback.
"""

from __future__ import annotations

import ast
import asyncio
import json
import secrets
from collections.abc import Callable

from .extract import extract_code
from .generators.base import Generator, SamplingParams
from .trace import AgreementGroup, Candidate, ChatMessage, Usage, WrittenTest

MAX_TESTS = 8
CALL_LIMIT_S = 1.0  # per call: one hanging input costs a second of one run, not the request
TESTS_MAX_TOKENS = 400
PREVIEW = 120  # characters of a value kept in the trace

# The test-writing prompt: bump trace.TESTS_VERSION whenever its text changes.
SYSTEM = "You are an expert Python programmer who writes precise unit tests."


# A group's rank: the first key that differs decides; ties go to the verifier's best score in the
# group, then to the group holding the earliest candidate (with ``greedy_candidate``, candidate 0
# is the greedy answer). Compared on HumanEval fold 0 and confirmed on fold 1 (docs/benchmarks.md,
# bench/agreement_rules.py).
RULES: dict[str, Callable[[AgreementGroup], tuple[float, ...]]] = {
    "size": lambda g: (len(g.members), g.matched),
    "codet": lambda g: (len(g.members) * g.matched, len(g.members)),
    "size+1": lambda g: (len(g.members) * (1 + g.matched), len(g.members)),
    "no-crash,size": lambda g: (-g.crashes, len(g.members), g.matched),
    "no-crash,size+1": lambda g: (-g.crashes, len(g.members) * (1 + g.matched), len(g.members)),
}
DEFAULT_RULE = "no-crash,size+1"


def rank_groups(groups: list[AgreementGroup], rule: str = DEFAULT_RULE) -> list[AgreementGroup]:
    key = RULES[rule]
    # Then the verifier, then the group holding the earliest candidate.
    return sorted(
        groups,
        key=lambda g: (*key(g), g.score if g.score is not None else float("-inf"), -min(g.members)),
        reverse=True,
    )


# ------------------------------------------------------------------ writing the tests


def tests_prompt(problem_text: str, function: str) -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content=SYSTEM),
        ChatMessage(
            role="user",
            content=(
                f"Write {MAX_TESTS} different test cases for the Python function `{function}` "
                "described below: typical inputs and edge cases that the description allows, each "
                "with the exact value the function must return.\n"
                f"```python\n{problem_text.strip()}\n```\n"
                f"Answer with one ```python code block of `assert {function}(...) == ...` lines only."
            ),
        ),
    ]


def parse_tests(text: str, function: str) -> list[WrittenTest]:
    """The distinct calls of ``function`` in the written asserts, with their expected values
    where the assert states one; anything else in the answer is ignored."""
    code = extract_code(text, None).code or text
    try:
        statements = ast.parse(code).body
    except SyntaxError:
        statements = []
        for line in code.splitlines():
            try:
                statements += ast.parse(line.strip()).body
            except SyntaxError:
                continue
    tests: list[WrittenTest] = []
    seen: set[str] = set()
    for statement in statements:
        if not isinstance(statement, ast.Assert):
            continue
        found = _call_and_expected(statement.test, function)
        if found is None:
            continue
        call, expected = found
        if call not in seen:
            seen.add(call)
            tests.append(WrittenTest(call=call, expected=expected))
    return tests[:MAX_TESTS]


def _is_call(node: ast.expr, function: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == function


def _call_and_expected(test: ast.expr, function: str) -> tuple[str, str | None] | None:
    if _is_call(test, function):
        return ast.unparse(test), "True"
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and _is_call(test.operand, function):
        return ast.unparse(test.operand), "False"
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and _is_call(test.left, function):
        if isinstance(test.ops[0], ast.Eq | ast.Is):
            return ast.unparse(test.left), ast.unparse(test.comparators[0])
        return ast.unparse(test.left), None
    # Any other check (``abs(f(x) - 1) < 1e-9``): the input is still worth running.
    call = next((n for n in ast.walk(test) if isinstance(n, ast.expr) and _is_call(n, function)), None)
    return (ast.unparse(call), None) if call is not None else None


async def write_tests(
    generator: Generator, problem_text: str, function: str, seed: int, prefill: bool
) -> tuple[list[WrittenTest], Usage]:
    """The generator's test calls for ``function`` (greedy, one answer)."""
    opening = f"```python\nassert {function}("
    params = SamplingParams(
        n=1,
        temperature=0.0,
        max_tokens=TESTS_MAX_TOKENS,
        seed=seed,
        stop=["\n```"] if prefill else [],
        prefill=opening if prefill else "",
    )
    (completion,) = await generator.sample(tests_prompt(problem_text, function), params)
    text = (opening if prefill else "") + completion.text
    usage = Usage(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens)
    return parse_tests(text, function), usage


class TestWriter:
    """A search's written test calls: asked for once, as soon as the function is known, so that
    writing them overlaps the first turn's sampling when the problem names its function."""

    def __init__(self, generator: Generator, problem_text: str, seed: int, prefill: bool) -> None:
        self.generator, self.problem_text, self.seed, self.prefill = generator, problem_text, seed, prefill
        self.function: str | None = None
        self._task: asyncio.Task[tuple[list[WrittenTest], Usage]] | None = None
        self._counted = False

    def start(self, function: str, signature: str = "") -> None:
        if self._task is None:
            self.function = function
            text = self.problem_text if not signature else f"{self.problem_text.strip()}\n\n{signature}"
            self._task = asyncio.create_task(
                write_tests(self.generator, text, function, self.seed, self.prefill)
            )

    async def tests(self) -> tuple[list[WrittenTest], Usage]:
        """The calls, and the tokens they cost the first time they are asked for (zero after)."""
        assert self._task is not None, "start() first"
        tests, usage = await asyncio.shield(self._task)
        counted, self._counted = self._counted, True
        return tests, Usage() if counted else usage

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


def function_of(candidates: list[Candidate]) -> tuple[str, str] | None:
    """For a problem that names no function: the name most candidates define last (their answer)
    and one candidate's ``def`` line for it."""
    votes: dict[str, list[str]] = {}
    for candidate in candidates:
        if candidate.code is None:
            continue
        try:
            body = ast.parse(candidate.code).body
        except SyntaxError:
            continue
        defs = [n for n in body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        if defs:
            line = candidate.code.splitlines()[defs[-1].lineno - 1].strip()
            votes.setdefault(defs[-1].name, []).append(line)
    if not votes:
        return None
    name = max(votes, key=lambda n: len(votes[n]))
    return name, votes[name][0]


# ------------------------------------------------------------------ running the calls

_PROBE = """

def _mucode_probe(_tests, _mark, _limit):
    import json as _json, math as _math, signal as _signal, contextlib as _contextlib

    def canon(x):
        if isinstance(x, float):
            return float(format(x, ".9g")) if _math.isfinite(x) else repr(x)
        if isinstance(x, (list, tuple)):
            return [canon(v) for v in x] if isinstance(x, list) else tuple(canon(v) for v in x)
        if isinstance(x, dict):
            return {canon(k): canon(v) for k, v in x.items()}
        if isinstance(x, (set, frozenset)):
            return sorted((canon(v) for v in x), key=repr)
        return x

    def hang(*_):
        raise TimeoutError

    class Tail:  # what a call prints: its end only, so a flood costs no memory
        text = ""

        def write(self, piece):
            self.text = (self.text + piece)[-200:]
            return len(piece)

        def flush(self):
            pass

    _signal.signal(_signal.SIGALRM, hang)
    for index, (call, expected) in enumerate(_tests):
        printed = Tail()
        value, out, match = None, "", None
        try:
            _signal.setitimer(_signal.ITIMER_REAL, _limit)
            try:
                with _contextlib.redirect_stdout(printed):
                    value = eval(call, globals())
            finally:
                _signal.setitimer(_signal.ITIMER_REAL, 0)
            out = "= " + repr(canon(value))
            if expected is not None:
                try:
                    match = bool(canon(value) == canon(eval(expected, globals())))
                except BaseException:
                    match = None
        except TimeoutError:
            out = "timeout"
        except BaseException as exc:
            out = "raises " + type(exc).__name__
        if printed.text:
            out += " (prints " + repr(printed.text) + ")"
        print(_mark + _json.dumps([index, out, match]), flush=True)
"""


def probe_program(code: str, tests: list[WrittenTest], mark: str) -> str:
    """``code`` followed by the calls, each result printed on a line that starts with ``mark``."""
    pairs = [(t.call, t.expected) for t in tests]
    return f"{code.rstrip()}{_PROBE}\n_mucode_probe({pairs!r}, {mark!r}, {CALL_LIMIT_S!r})\n"


def new_mark() -> str:
    # Unguessable, so a program cannot print a line that passes for a result.
    return f"\x1emucode-probe-{secrets.token_hex(8)}\x1e"


NO_RESULT = "no result"  # the program did not load, or was stopped before the call


def read_probe(stdout: str, mark: str, count: int) -> tuple[list[str], list[bool | None]]:
    """Per call: the output, and whether it met the written expectation (None: none written, or
    no value to compare)."""
    outputs: list[str] = [NO_RESULT] * count
    matches: list[bool | None] = [None] * count
    for line in stdout.split("\n"):  # not splitlines(): it splits at the mark's \x1e too
        if not line.startswith(mark):
            continue
        try:
            index, out, match = json.loads(line[len(mark) :])
        except ValueError:
            continue
        if isinstance(index, int) and 0 <= index < count:
            outputs[index], matches[index] = str(out), match if isinstance(match, bool) else None
    return outputs, matches


def group(
    behaviours: dict[int, tuple[list[str], list[bool | None]]],
    tests: list[WrittenTest],
    scores: dict[int, float],
) -> tuple[list[bool], list[AgreementGroup]]:
    """Candidates grouped by identical outputs, ranked best first. ``behaviours`` maps a
    candidate index to its outputs and matches; ``scores`` holds verifier scores, if any."""
    valid = [
        any(outputs[k].startswith("= ") for outputs, _ in behaviours.values()) for k in range(len(tests))
    ]
    by_outputs: dict[tuple[str, ...], AgreementGroup] = {}
    for index, (outputs, matches) in sorted(behaviours.items()):
        # Outputs on invalid calls (every candidate raised) do not split groups.
        key = tuple(o if v else "" for o, v in zip(outputs, valid, strict=True))
        found = by_outputs.get(key)
        if found is None:
            by_outputs[key] = AgreementGroup(
                members=[index],
                outputs=[_preview(o) for o in outputs],
                matched=sum(bool(m) for m, v in zip(matches, valid, strict=True) if v),
                crashes=sum(v and not o.startswith("= ") for o, v in zip(outputs, valid, strict=True)),
            )
        else:
            found.members.append(index)
    for g in by_outputs.values():
        g.score = max((scores[i] for i in g.members if i in scores), default=None)
    return valid, rank_groups(list(by_outputs.values()))


def _preview(output: str) -> str:
    return output if len(output) <= PREVIEW else output[: PREVIEW - 1] + "…"


def crash_feedback(function: str, tests: list[WrittenTest], outputs: list[str], valid: list[bool]) -> str:
    """What the next turn is told about a chosen program that raises where others return."""

    def what(output: str) -> str:
        if output.startswith("timeout"):
            return "took too long"
        if output == NO_RESULT:
            return "gave no result (the program did not load, or was stopped)"
        return output.replace("raises", "raised", 1)

    lines = [
        f"`{t.call}` {what(o)}"
        for t, o, v in zip(tests, outputs, valid, strict=True)
        if v and not o.startswith("= ")
    ]
    return (
        f"Your `{function}` fails on inputs that other solutions handle:\n"
        + "\n".join(f"- {line}" for line in lines)
        + "\nFix it and answer with the complete corrected code in one ```python code block."
    )
