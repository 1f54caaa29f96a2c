"""The search loop with a scripted generator around the real sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from mucode.engine.generators.base import Completion, SamplingParams
from mucode.engine.generators.scripted import ScriptedGenerator
from mucode.engine.options import SolveOptions
from mucode.engine.prompts import PROMPT_VERSION
from mucode.engine.search import SearchEngine, SearchEvent
from mucode.engine.trace import ChatMessage, SolveResult
from mucode.engine.verifier import Verifier
from mucode.problems import Problem

from .helpers import Sandbox

PROBLEM = Problem(
    id="double",
    prompt='def double(x):\n    """Return twice x."""\n',
    entry_point="double",
    public_tests=["assert double(2) == 4", "assert double(0) == 0"],
    private_tests=["assert double(-3) == -6"],
)

WRONG = "```python\ndef double(x):\n    return x + 2\n```"  # passes double(2) only
WORSE = "```python\ndef double(x):\n    return x\n```"  # passes double(0) only
RIGHT = "```python\ndef double(x):\n    return 2 * x\n```"
PROSE = "I am not sure how to do this."


class LengthVerifier(Verifier):
    """Prefers longer code: deterministic and easy to reason about in tests."""

    name = "length"

    async def score(self, problem: Problem, codes: list[str]) -> list[float]:
        self.calls = getattr(self, "calls", 0) + 1
        return [float(len(code)) for code in codes]


def solve(
    sandbox: Sandbox,
    generator: ScriptedGenerator,
    verifier: Verifier | None = None,
    problem: Problem = PROBLEM,
    **options: Any,
) -> SolveResult:
    """The scripted turns are the candidates in order: every one sampled (no greedy candidate 0)
    unless a test asks for it."""
    engine = SearchEngine(generator, sandbox.pool, verifier)
    options.setdefault("greedy_candidate", False)
    return sandbox.loop.run(engine.solve(problem, SolveOptions(**options)))


def test_fails_turn_one_passes_turn_two(sandbox: Sandbox) -> None:
    generator = ScriptedGenerator([[WRONG, WORSE, PROSE], [RIGHT, WRONG, WRONG]])
    result = solve(sandbox, generator, n=3, turns=3)
    assert result.stop_reason == "passed"
    assert result.public_all_passed
    assert len(result.turns) == 2
    assert result.final_code == "def double(x):\n    return 2 * x\n"
    assert result.prompt_version == PROMPT_VERSION
    first = result.turns[0]
    assert first.chosen.text == WRONG  # 1 of 2 passed; WORSE too, but WRONG is the earlier sample
    assert first.candidates[2].code is None
    assert first.candidates[2].extraction == "none"
    # Turn 2 saw the chosen code and its feedback.
    turn_two = generator.calls[1]
    assert [m.role for m in turn_two] == ["system", "user", "assistant", "user"]
    assert "return x + 2" in turn_two[2].content
    assert "double(0) returned 2, expected 0" in turn_two[3].content
    # Private tests never reach the model.
    assert all("-6" not in m.content for call in generator.calls for m in call)


def test_identical_code_runs_once(sandbox: Sandbox) -> None:
    before = sandbox.pool.stats().executions
    result = solve(sandbox, ScriptedGenerator([[WRONG, WRONG, f"Sure.\n{WRONG}", WORSE]]), n=4, turns=1)
    assert sandbox.pool.stats().executions - before == 2
    dupes = [c.duplicate_of for c in result.turns[0].candidates]
    assert dupes == [None, 0, 0, None]
    assert all(c.execution is not None for c in result.turns[0].candidates)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("pt+lv", 1),  # both pass 1 test; the verifier prefers the longer code
        ("lv", 2),  # verifier only: the longest code, though it passes nothing
        ("pt", None),  # one of the two best, by seeded chance
        ("random", None),
    ],
)
def test_selection_rules(sandbox: Sandbox, rule: str, expected: int | None) -> None:
    longer_wrong = "```python\ndef double(x):\n    # adds two\n    return x + 2\n```"
    longest_failing = (
        "```python\ndef double(x):\n    # a long comment that makes it long\n    return x + 3\n```"
    )
    answers = [WORSE, longer_wrong, longest_failing]
    result = solve(sandbox, ScriptedGenerator([answers]), LengthVerifier(), n=3, turns=1, selection=rule)
    chosen = result.turns[0].selected
    if expected is not None:
        assert chosen == expected
    elif rule == "pt":
        assert chosen in (0, 1)
    scores = [c.verifier_score for c in result.turns[0].candidates]
    assert all(s is not None for s in scores)


def test_seeds_reproduce(sandbox: Sandbox) -> None:
    script = [[WRONG, WORSE, WRONG, WORSE], [WORSE, WRONG]]
    runs = [
        solve(sandbox, ScriptedGenerator(script), n=4, turns=2, selection="random", seed=s) for s in (7, 7, 8)
    ]
    picks = [[t.selected for t in r.turns] for r in runs]
    assert picks[0] == picks[1]
    strip = [r.model_dump(exclude={"timings": True, "turns": {"__all__": {"timings"}}}) for r in runs[:2]]
    for run in strip:
        for turn in run["turns"]:
            for cand in turn["candidates"]:
                cand["execution"].pop("duration_ms")
                for test in cand["execution"]["results"]:
                    test.pop("duration_ms")
    assert strip[0] == strip[1]


def test_gives_up_after_max_turns_with_last_choice(sandbox: Sandbox) -> None:
    result = solve(sandbox, ScriptedGenerator([[WRONG], [WORSE], [PROSE]]), n=1, turns=3)
    assert result.stop_reason == "max_turns"
    assert not result.public_all_passed
    assert len(result.turns) == 3
    assert result.final_code is None  # the last chosen answer had no code
    assert "no Python code block" in result.turns[2].chosen.execution.feedback  # type: ignore[union-attr]


class TemperatureGenerator(ScriptedGenerator):
    """A model whose greedy answer is right and whose samples are wrong (a small model at 0.7)."""

    def __init__(self) -> None:
        super().__init__([[RIGHT]])
        self.params: list[SamplingParams] = []

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        self.params.append(params)
        text = RIGHT if params.temperature == 0 else WRONG
        return [Completion(text=text, prompt_tokens=10, completion_tokens=5)] * params.n


def test_greedy_candidate_joins_the_samples(sandbox: Sandbox) -> None:
    generator = TemperatureGenerator()
    result = solve(sandbox, generator, n=3, turns=2, temperature=0.7, seed=4, greedy_candidate=True)
    assert [c.text for c in result.turns[0].candidates] == [RIGHT, WRONG, WRONG]
    assert [c.index for c in result.turns[0].candidates] == [0, 1, 2]
    assert result.public_all_passed
    assert result.turns[0].selected == 0
    greedy, sampled = sorted(generator.params, key=lambda p: p.temperature)
    assert (greedy.n, greedy.temperature, sampled.n, sampled.temperature) == (1, 0.0, 2, 0.7)
    assert greedy.seed == sampled.seed  # the same turn seed: the trace reproduces
    assert result.usage.prompt_tokens == 10  # one prompt per turn, however many requests

    paper = TemperatureGenerator()  # all n sampled: the right greedy answer is never seen
    result = solve(sandbox, paper, n=3, turns=2, temperature=0.7, greedy_candidate=False)
    assert not result.public_all_passed
    assert [(p.n, p.temperature) for p in paper.params] == [(3, 0.7)] * 2
    singles: list[dict[str, Any]] = [{"n": 1, "temperature": 0.7}, {"n": 3, "temperature": 0.0}]
    for single in singles:
        plain = TemperatureGenerator()
        solve(sandbox, plain, turns=1, greedy_candidate=True, **single)
        assert len(plain.params) == 1  # nothing to split


def test_usage_counts_every_candidate_and_turn(sandbox: Sandbox) -> None:
    result = solve(sandbox, ScriptedGenerator([[WRONG, WORSE], [RIGHT]]), n=2, turns=2)
    per_candidate = sum(c.usage.completion_tokens for t in result.turns for c in t.candidates)
    assert result.usage.completion_tokens == per_candidate > 0
    # The n samples of a turn share their prompt: counted once per turn.
    assert result.usage.prompt_tokens == sum(t.candidates[0].usage.prompt_tokens for t in result.turns)
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_events_and_lv_needs_a_verifier(sandbox: Sandbox) -> None:
    events: list[SearchEvent] = []
    engine = SearchEngine(ScriptedGenerator([[WRONG], [RIGHT]]), sandbox.pool)
    sandbox.loop.run(engine.solve(PROBLEM, SolveOptions(n=1, turns=3), on_event=events.append))
    assert [(e.kind, e.turn) for e in events] == [
        ("turn_started", 1),
        ("turn_finished", 1),
        ("turn_started", 2),
        ("turn_finished", 2),
    ]
    with pytest.raises(ValueError, match="needs a verifier"):
        sandbox.loop.run(engine.solve(PROBLEM, SolveOptions(selection="lv")))


def test_problem_without_tests_stops_after_one_turn_and_never_reports_passed(sandbox: Sandbox) -> None:
    bare = Problem(id="bare", prompt="Write double(x).", entry_point="double")
    result = solve(sandbox, ScriptedGenerator([[WRONG, WRONG]]), problem=bare, n=2, turns=3)
    assert len(result.turns) == 1
    assert result.stop_reason == "no_tests"
    assert result.public_all_passed is False
    assert result.public_total == 0


def test_feedback_survives_the_answers_own_asserts(sandbox: Sandbox) -> None:
    """A wrong function followed by the model's copy of the tests: each public test still runs
    and says what the function returned, and that is what the next turn reads."""
    wrong_with_tests = (
        "```python\ndef double(x):\n    return x + 2\n\n"
        "assert double(2) == 4\nassert double(0) == 0\nprint(double(3))\n```"
    )
    result = solve(sandbox, ScriptedGenerator([[wrong_with_tests], [RIGHT]]), n=1, turns=2)
    first = result.turns[0].chosen
    assert first.execution is not None
    assert [r.status.value for r in first.execution.results] == ["passed", "failed"]
    assert "returned 2, expected 0" in first.execution.feedback
    assert "returned 2, expected 0" in result.turns[1].messages[-1].content
    assert result.public_all_passed
