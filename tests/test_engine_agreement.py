"""Selection `agree`: written test calls, candidates grouped by behaviour, and the rule between
groups — with a scripted generator around the real sandbox."""

from __future__ import annotations

from typing import Any

from mucode.engine import agreement
from mucode.engine.generators.scripted import ScriptedGenerator
from mucode.engine.options import SolveOptions
from mucode.engine.search import SearchEngine
from mucode.engine.trace import AgreementGroup, SolveResult, WrittenTest
from mucode.problems import Problem

from .helpers import Sandbox

BARE = Problem(id="bare", prompt='def double(x):\n    """Return twice x."""\n', entry_point="double")
WRITTEN = "```python\nassert double(2) == 4\nassert double(5) == 10\nassert double(0) == 0\n```"


def fn(body: str) -> str:
    return f"```python\ndef double(x):\n{body}\n```"


RIGHT = fn("    return 2 * x")
RIGHT_TOO = fn("    return x + x")
PLUS_TWO = fn("    return x + 2")  # meets double(2) == 4 only
SQUARE = fn("    return x * x")  # meets double(2) == 4 and double(0) == 0
CRASH_AT_0 = fn("    return 2 * x if x else 1 / 0")
CRASH_AT_5 = fn("    if x == 5:\n        raise ValueError(x)\n    return 2 * x")


def solve(
    sandbox: Sandbox, answers: list[list[str]], problem: Problem = BARE, tests: str = WRITTEN, **options: Any
) -> tuple[SolveResult, ScriptedGenerator]:
    generator = ScriptedGenerator(answers, tests=tests)
    options.setdefault("greedy_candidate", False)
    result = sandbox.loop.run(SearchEngine(generator, sandbox.pool).solve(problem, SolveOptions(**options)))
    return result, generator


def test_the_largest_group_wins_even_against_a_right_minority(sandbox: Sandbox) -> None:
    """The documented rule (DEFAULT_RULE): size times (1 + expectations met). Three agreeing wrong
    answers meeting one expectation (3 x 2) outvote one right answer meeting all three (1 x 4)."""
    result, _ = solve(sandbox, [[PLUS_TWO, RIGHT, PLUS_TWO, PLUS_TWO]], n=4, turns=1)
    agreed = result.turns[0].agreement
    assert agreed is not None and agreed.used
    assert [t.call for t in agreed.tests] == ["double(2)", "double(5)", "double(0)"]
    assert [g.members for g in agreed.groups] == [[0, 2, 3], [1]]
    assert [g.matched for g in agreed.groups] == [1, 3]
    assert agreed.groups[0].outputs == ["= 4", "= 7", "= 2"]
    assert result.turns[0].selected == 0
    assert result.stop_reason == "no_tests" and not result.public_all_passed
    assert agreed.describe(4) == (
        "no tests given: chosen by agreement of 3 of 4 candidates on 3 generated inputs, "
        "1 of 3 written expectations met"
    )


def test_two_right_answers_written_differently_agree_and_win(sandbox: Sandbox) -> None:
    result, _ = solve(sandbox, [[PLUS_TWO, SQUARE, RIGHT, RIGHT_TOO]], n=4, turns=1)
    agreed = result.turns[0].agreement
    assert agreed is not None
    assert agreed.groups[0].members == [2, 3]  # different code, the same behaviour
    assert result.turns[0].selected == 2
    assert "return 2 * x" in (result.final_code or "")


def test_candidates_that_crash_where_others_return_lose(sandbox: Sandbox) -> None:
    result, _ = solve(sandbox, [[CRASH_AT_0, CRASH_AT_0, CRASH_AT_0, RIGHT]], n=4, turns=1)
    agreed = result.turns[0].agreement
    assert agreed is not None
    crashing = next(g for g in agreed.groups if 0 in g.members)
    assert crashing.crashes == 1 and crashing.outputs[2] == "raises ZeroDivisionError"
    assert result.turns[0].selected == 3


def test_a_chosen_program_that_crashes_gets_the_crash_as_feedback(sandbox: Sandbox) -> None:
    """Every group crashes somewhere: the choice crashes, and the next turn is told where."""
    result, generator = solve(sandbox, [[CRASH_AT_0, CRASH_AT_5], [RIGHT]], n=2, turns=3)
    first = result.turns[0].agreement
    assert first is not None and first.valid == [True, True, True]
    assert [g.crashes for g in first.groups] == [1, 1]
    assert result.turns[0].selected == 0  # a tie: the earliest candidate
    turn_two = next(call for call in generator.calls if len(call) == 4)
    assert "`double(0)` raised ZeroDivisionError" in turn_two[3].content
    assert len(result.turns) == 2 and result.stop_reason == "no_tests"
    assert "return 2 * x" in (result.final_code or "")


def test_calls_every_candidate_raises_on_are_invalid_and_ignored(sandbox: Sandbox) -> None:
    written = WRITTEN.replace("assert double(0) == 0", "assert double('a', 'b') == 1")
    result, _ = solve(sandbox, [[RIGHT, RIGHT_TOO]], tests=written, n=2, turns=1)
    agreed = result.turns[0].agreement
    assert agreed is not None and agreed.valid == [True, True, False]
    assert [g.members for g in agreed.groups] == [[0, 1]] and agreed.groups[0].crashes == 0


def test_a_hanging_or_flooding_call_costs_one_call_not_the_request(sandbox: Sandbox) -> None:
    hangs = fn("    while x == 5:\n        pass\n    return 2 * x")
    floods = fn("    if x == 5:\n        while True:\n            print('y' * 10000)\n    return 2 * x")
    result, _ = solve(sandbox, [[hangs, floods, RIGHT]], n=3, turns=1)
    agreed = result.turns[0].agreement
    assert agreed is not None
    outputs = {tuple(g.members): g.outputs for g in agreed.groups}
    assert outputs[(0,)] == ["= 4", "timeout", "= 0"]
    assert outputs[(1,)][1].startswith("timeout")
    assert result.turns[0].selected == 2
    assert result.timings.total_ms < 10_000


def test_a_problem_with_tests_is_judged_by_its_tests_never_by_written_ones(sandbox: Sandbox) -> None:
    tested = BARE.model_copy(update={"public_tests": ["assert double(5) == 10"]})
    answers = [[PLUS_TWO, PLUS_TWO, PLUS_TWO, RIGHT]]
    # The default (`auto`) with tests: public tests, and no test calls are even asked for.
    result, generator = solve(sandbox, answers, problem=tested, n=4, turns=1)
    assert result.turns[0].agreement is None
    assert all(call[0].content != agreement.SYSTEM for call in generator.calls)
    assert result.turns[0].selected == 3 and result.stop_reason == "passed"
    # `agree` asked for with tests: the written calls only rank among the best by the tests.
    result, _ = solve(sandbox, answers, problem=tested, n=4, turns=1, selection="agree")
    agreed = result.turns[0].agreement
    assert agreed is not None and agreed.groups[0].members == [0, 1, 2]
    assert result.turns[0].selected == 3 and result.public_all_passed


def test_without_usable_calls_the_choice_falls_back_and_says_why(sandbox: Sandbox) -> None:
    result, _ = solve(sandbox, [[PLUS_TWO, RIGHT]], tests="I cannot write tests.", n=2, turns=1)
    agreed = result.turns[0].agreement
    assert agreed is not None and not agreed.used
    assert agreed.note == "the generator wrote no usable calls of `double`"
    assert result.turns[0].selected == 0
    assert "agreement could not be used" in agreed.describe(2)


def test_a_problem_that_names_no_function_takes_the_one_the_candidates_define(sandbox: Sandbox) -> None:
    chat = Problem(id="chat", prompt="Write a function that doubles a number.")
    result, generator = solve(sandbox, [[PLUS_TWO, RIGHT, RIGHT_TOO]], problem=chat, n=3, turns=1)
    agreed = result.turns[0].agreement
    assert agreed is not None and agreed.function == "double"
    asked = next(call for call in generator.calls if call[0].content == agreement.SYSTEM)
    assert "def double(x):" in asked[1].content
    assert result.turns[0].selected == 1


def test_written_asserts_are_read_in_every_common_form() -> None:
    text = (
        "```python\nassert f(1) == 2\nassert f(1) == 3\nassert f([1, 2]) is None\n"
        "assert f(0)\nassert not f(-1)\nassert abs(f(0.5) - 1.0) < 1e-9\nassert g(1) == 1\n"
        "print(f(9))\nassert f(2) != 5\n```"
    )
    assert agreement.parse_tests(text, "f") == [
        WrittenTest(call="f(1)", expected="2"),
        WrittenTest(call="f([1, 2])", expected="None"),
        WrittenTest(call="f(0)", expected="True"),
        WrittenTest(call="f(-1)", expected="False"),
        WrittenTest(call="f(0.5)", expected=None),
        WrittenTest(call="f(2)", expected=None),
    ]
    # A broken line does not lose the others.
    assert [
        t.call for t in agreement.parse_tests("assert f(1) == 2\nassert f(2 ==\nassert f(3) == 4", "f")
    ] == [
        "f(1)",
        "f(3)",
    ]


def test_the_rules_rank_groups_as_documented() -> None:
    majority = AgreementGroup(members=[1, 2, 3], outputs=[], matched=0, crashes=0)
    right = AgreementGroup(members=[0], outputs=[], matched=3, crashes=0)
    crashing = AgreementGroup(members=[4, 5, 6, 7], outputs=[], matched=3, crashes=1)
    groups = [majority, right, crashing]
    assert agreement.rank_groups(groups, "size")[0] is crashing
    assert agreement.rank_groups(groups, "codet")[0] is crashing
    assert agreement.rank_groups(groups, "no-crash,size")[0] is majority
    assert agreement.rank_groups(groups, "no-crash,size+1")[0] is right  # 1 x 4 > 3 x 1
    tie = AgreementGroup(members=[5], outputs=[], matched=3, crashes=0, score=2.0)
    assert agreement.rank_groups([right, tie])[0] is tie  # the verifier breaks a tie
