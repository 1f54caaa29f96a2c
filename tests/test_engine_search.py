"""The search loop with a scripted generator around the real sandbox."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import ValidationError

from mucode.engine import prompts, search
from mucode.engine.checkpoint import Manifest, write_manifest
from mucode.engine.generators.base import Completion, SamplingParams
from mucode.engine.generators.scripted import ScriptedGenerator
from mucode.engine.loading import configured_prompt
from mucode.engine.options import SolveOptions
from mucode.engine.prompts import PROMPT_VERSION
from mucode.engine.search import REFILL_SEED_OFFSET, REFILL_TEMPERATURE, SearchEngine, SearchEvent, turn_seed
from mucode.engine.settings import EngineSettings
from mucode.engine.shape import shape
from mucode.engine.trace import Candidate, ChatMessage, SolveResult
from mucode.engine.verifier import LIKELIHOOD, LikelihoodVerifier, Verifier, load_code_verifier, load_verifier
from mucode.problems import ContextMessage, Problem
from mucode.sandbox import ExecutionRequest, ExecutionResult, IOTest, SandboxPool
from mucode.training.evaluate import explain, summary

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

    async def score(self, problem: Problem, candidates: list[Candidate]) -> list[float | None]:
        self.calls = getattr(self, "calls", 0) + 1
        return [float(len(c.code or "")) for c in candidates]


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


def test_the_likelihood_verifier_ranks_by_the_generators_own_log_probabilities(sandbox: Sandbox) -> None:
    """The scripted generator reports -1 per character as an answer's log-probability; the
    verifier's score is that over the answer's tokens (words, for the script)."""
    longer_wrong = "```python\ndef double(x):\n    # adds two\n    return x + 2\n```"
    answers = [WORSE, longer_wrong, RIGHT]
    verifier = load_verifier(LIKELIHOOD)
    assert isinstance(verifier, LikelihoodVerifier)
    result = solve(sandbox, ScriptedGenerator([answers]), verifier, n=3, turns=1, selection="lv")
    candidates = result.turns[0].candidates
    means = [-len(text) / len(text.split()) for text in answers]
    assert [c.logprob for c in candidates] == [-float(len(text)) for text in answers]
    assert [c.verifier_score for c in candidates] == pytest.approx(means)
    assert result.turns[0].selected == means.index(max(means))
    assert result.verifier == "likelihood"
    with pytest.raises(ValueError, match="as they are sampled"):
        load_code_verifier(LIKELIHOOD)  # relabelling and held-out scoring read programs, not answers


def test_a_turns_seed_depends_on_the_problem_so_no_slot_draws_alike_everywhere() -> None:
    other = PROBLEM.model_copy(update={"id": "triple", "prompt": 'def triple(x):\n    """Thrice x."""\n'})
    renamed = PROBLEM.model_copy(update={"id": "chat-1234"})  # a chat's problem id is random
    assert turn_seed(0, 1, PROBLEM) == turn_seed(0, 1, renamed)
    seeds = {turn_seed(seed, turn, p) for seed in (0, 1) for turn in (1, 2, 3) for p in (PROBLEM, other)}
    assert len(seeds) == 12
    assert all(s >= 0 and s + REFILL_SEED_OFFSET + 64 < 2**31 for s in seeds)


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
            for cand in turn["candidates"] + turn["replaced"]:
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
    result = solve(
        sandbox, paper, n=3, turns=2, temperature=0.7, greedy_candidate=False, refill_repeats=False
    )
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
        ("generating", 1),
        ("candidates_written", 1),
        ("candidate_ran", 1),
        ("turn_finished", 1),
        ("turn_started", 2),
        ("generating", 2),
        ("candidates_written", 2),
        ("candidate_ran", 2),
        ("turn_finished", 2),
    ]
    ran = [e for e in events if e.kind == "candidate_ran"]
    assert [(e.candidate, e.passed, e.total, e.turns) for e in ran] == [(0, 1, 2, 3), (0, 2, 2, 3)]
    # The scripted backend reports half its 8 "tokens" (words), then all 8 at once: the second
    # report comes within PROGRESS_INTERVAL_S, so only the first goes out.
    assert [e.tokens for e in events if e.kind == "generating"] == [[4], [4]]
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


# ---------------------------------------------------------------------------- repeats and refills
WRONG_AGAIN = "```python\ndef double(x):\n    # add two, as before\n    return x + 2\n```"  # WRONG's tree


class TwoPromptGenerator(ScriptedGenerator):
    """Answers the first-turn prompt and the repair prompt from two queues, in order, and records
    which prompt every request was for."""

    def __init__(self, first: list[str], repair: list[str]) -> None:
        super().__init__([first])
        self.queues = {"first": list(first), "repair": list(repair)}
        self.requests: list[tuple[str, SamplingParams]] = []
        self.in_flight = self.most_in_flight = 0

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        kind = "repair" if any(m.role == "assistant" for m in messages) else "first"
        self.requests.append((kind, params))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0)  # a request another one is sent beside is still out here
        self.in_flight -= 1
        return [
            Completion(text=self.queues[kind].pop(0), prompt_tokens=10, completion_tokens=5)
            for _ in range(params.n)
        ]


class CountingPool:
    """The real sandbox, counting the programs that reach it."""

    def __init__(self, pool: SandboxPool) -> None:
        self.pool = pool
        self.codes: list[str] = []

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        self.codes.append(request.code)
        return await self.pool.execute(request)


def counted_solve(
    sandbox: Sandbox, generator: ScriptedGenerator, **options: Any
) -> tuple[SolveResult, list[str]]:
    pool = CountingPool(sandbox.pool)
    engine = SearchEngine(generator, cast(SandboxPool, pool))
    return sandbox.loop.run(engine.solve(PROBLEM, SolveOptions(**options))), pool.codes


def test_a_repeated_program_is_refilled_from_the_first_turn_and_never_runs_twice(sandbox: Sandbox) -> None:
    generator = TwoPromptGenerator(first=[WRONG, RIGHT], repair=[WRONG_AGAIN])
    result, ran = counted_solve(sandbox, generator, n=1, turns=3, temperature=0.0)
    second = result.turns[1]
    assert [c.text for c in second.replaced] == [WRONG_AGAIN]
    assert second.replaced[0].repeat_of_turn == 1
    assert second.replaced[0].execution == result.turns[0].candidates[0].execution  # its earlier result
    assert second.candidates[0].refill and second.candidates[0].text == RIGHT
    assert second.refill_messages == result.turns[0].messages  # the first turn's prompt again
    assert result.turns[0].refill_messages is None
    assert result.public_all_passed and result.stop_reason == "passed" and len(result.turns) == 2
    assert sandbox.loop.run(explain(sandbox.pool, PROBLEM, result))["passed_by_refill"] is True
    assert [shape(code) for code in ran] == [shape(WRONG[10:-3]), shape(RIGHT[10:-3])]
    # The refill is sampled (a greedy one would be turn 1's answer again), on a seed of its own.
    kinds = [(kind, p.n, p.temperature, p.seed) for kind, p in generator.requests]
    assert kinds == [
        ("first", 1, 0.0, turn_seed(0, 1, PROBLEM)),
        ("repair", 1, 0.0, turn_seed(0, 2, PROBLEM)),
        ("first", 1, REFILL_TEMPERATURE, turn_seed(0, 2, PROBLEM) + REFILL_SEED_OFFSET),
    ]
    # Every sample the model wrote is paid for, the replaced one too; two prompts on turn 2.
    assert second.usage.completion_tokens == 10
    assert second.usage.prompt_tokens == 20


def test_without_refills_a_repeat_keeps_its_slot_but_does_not_run_again(sandbox: Sandbox) -> None:
    generator = TwoPromptGenerator(first=[WRONG], repair=[WRONG_AGAIN, RIGHT])
    result, ran = counted_solve(sandbox, generator, n=1, turns=3, temperature=0.0, refill_repeats=False)
    repeat = result.turns[1].candidates[0]
    assert repeat.text == WRONG_AGAIN and repeat.repeat_of_turn == 1 and not repeat.refill
    assert result.turns[1].replaced == []
    assert result.public_all_passed and len(result.turns) == 3
    assert len(ran) == 2  # WRONG once, RIGHT once
    assert [kind for kind, _ in generator.requests] == ["first", "repair", "repair"]


def test_a_refill_that_repeats_too_stays_marked_and_is_not_refilled_again(sandbox: Sandbox) -> None:
    generator = TwoPromptGenerator(first=[WRONG, WRONG_AGAIN], repair=[WRONG, RIGHT])
    result, ran = counted_solve(sandbox, generator, n=1, turns=3, temperature=0.0)
    second = result.turns[1]
    assert second.candidates[0].refill and second.candidates[0].repeat_of_turn == 1
    assert [kind for kind, _ in generator.requests] == ["first", "repair", "first", "repair"]
    assert len(ran) == 2
    assert result.public_all_passed


def test_a_hinted_refill_sees_the_failed_answers_feedback_but_not_its_code(sandbox: Sandbox) -> None:
    generator = TwoPromptGenerator(first=[WRONG, RIGHT], repair=[WRONG_AGAIN])
    hinted = dataclasses.replace(prompts.CHAT_3, refill_turn=prompts.hinted_start)
    engine = SearchEngine(generator, sandbox.pool, prompt=hinted)
    options = SolveOptions(n=1, turns=3, temperature=0.0, greedy_candidate=False)
    result = sandbox.loop.run(engine.solve(PROBLEM, options))
    first, second = result.turns[0], result.turns[1]
    assert second.refill_messages is not None and second.candidates[0].refill
    *earlier, hint = second.refill_messages
    assert earlier == first.messages[:-1]  # the same system message
    assert hint.content.startswith(first.messages[-1].content)  # the task, then the hint
    assert "returned 2, expected 0" in hint.content  # WRONG's feedback: double(0)
    assert "x + 2" not in hint.content  # but not WRONG's code
    assert result.public_all_passed and second.chosen.text == RIGHT


THRICE = "```python\ndef double(x):\n    return 3 * x\n```"  # passes double(0) only, a new tree


def test_fresh_samples_take_the_last_slots_of_feedback_turns_only(sandbox: Sandbox) -> None:
    generator = TwoPromptGenerator(first=[WRONG, WORSE, RIGHT], repair=[THRICE])
    result, ran = counted_solve(sandbox, generator, n=2, turns=3, fresh_samples=1)
    first, second = result.turns
    assert not any(c.refill for c in first.candidates) and first.refill_messages is None
    assert [(c.text, c.refill) for c in second.candidates] == [(THRICE, False), (RIGHT, True)]
    assert second.replaced == [] and second.refill_messages == first.messages
    assert second.chosen.text == RIGHT and result.stop_reason == "passed"
    assert len(ran) == 4
    # Turn 2: the greedy answer to the feedback, and one fresh sample on the refills' seed.
    kinds = [(kind, p.n, p.temperature, p.seed) for kind, p in generator.requests]
    assert kinds == [
        ("first", 1, 0.0, turn_seed(0, 1, PROBLEM)),
        ("first", 1, 0.7, turn_seed(0, 1, PROBLEM)),
        ("repair", 1, 0.0, turn_seed(0, 2, PROBLEM)),
        ("first", 1, 0.7, turn_seed(0, 2, PROBLEM) + REFILL_SEED_OFFSET),
    ]
    report = sandbox.loop.run(explain(sandbox.pool, PROBLEM, result))
    assert report["passed_by_refill"] is True


def test_fresh_samples_go_out_with_the_answers_and_refills_of_repeats_after(sandbox: Sandbox) -> None:
    generator = TwoPromptGenerator(first=[WRONG, THRICE, WORSE, RIGHT], repair=[WRONG_AGAIN])
    result, ran = counted_solve(sandbox, generator, n=2, turns=2, temperature=0.0, fresh_samples=1)
    second = result.turns[1]
    assert [c.text for c in second.replaced] == [WRONG_AGAIN]
    assert [(c.index, c.text, c.refill) for c in second.candidates] == [(0, RIGHT, True), (1, WORSE, True)]
    # The fresh sample needs nothing from the answer, so both requests go out together; the
    # repeat's refill follows on the next seed, a sample the fresh one did not draw.
    seed = turn_seed(0, 2, PROBLEM) + REFILL_SEED_OFFSET
    requests = [(kind, p.n, p.seed) for kind, p in generator.requests]
    assert requests[1:] == [
        ("repair", 1, turn_seed(0, 2, PROBLEM)),
        ("first", 1, seed),
        ("first", 1, seed + 1),
    ]
    assert result.public_all_passed and len(ran) == 4


def test_every_slot_reports_its_tokens_whichever_request_writes_it(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "PROGRESS_INTERVAL_S", 0.0)  # every report goes out
    generator = TwoPromptGenerator(first=[WRONG, THRICE, WORSE, RIGHT], repair=[WRONG_AGAIN])
    engine = SearchEngine(generator, sandbox.pool)
    events: list[SearchEvent] = []
    options = SolveOptions(n=2, turns=2, temperature=0.0, fresh_samples=1)
    sandbox.loop.run(engine.solve(PROBLEM, options, on_event=events.append))
    second = [e.tokens for e in events if e.kind == "generating" and e.turn == 2]
    # Each request reports half of its answers' 5 tokens, then all: the feedback answer (slot 0),
    # the fresh sample beside it (slot 1), then the refill of the answer, a repeat, in slot 0.
    assert second == [[2, 0], [5, 0], [5, 2], [5, 5], [2, 5], [5, 5]]


def test_all_fresh_samples_never_show_the_feedback_and_more_than_n_is_refused(sandbox: Sandbox) -> None:
    generator = TwoPromptGenerator(first=[WRONG, WORSE, RIGHT], repair=[])
    result, _ = counted_solve(sandbox, generator, n=1, turns=3, temperature=0.0, fresh_samples=1)
    assert [kind for kind, _ in generator.requests] == ["first", "first", "first"]
    assert result.public_all_passed and len(result.turns) == 3
    with pytest.raises(ValidationError, match="cannot exceed n"):
        SolveOptions(n=2, fresh_samples=3)


# ---------------------------------------------------------------------------- prompt formats
def test_the_conversation_comes_before_the_task_in_the_first_turn() -> None:
    """mucode-chat-3: the conversation's system notes join the system message and its earlier
    turns (a file an IDE sent, the answer a follow-up refers to) precede the task."""
    problem = PROBLEM.model_copy(
        update={
            "context": [
                ContextMessage(role="system", content="Keep answers short."),
                ContextMessage(role="user", content="Here is utils.py:\n```python\nSCALE = 3\n```"),
                ContextMessage(role="assistant", content="Got it."),
            ]
        }
    )
    system, file, reply, task = prompts.CHAT_3.first_turn(problem)
    assert system.content == prompts.SYSTEM_2 + "\n\nKeep answers short."
    assert (file.role, reply.role, task.role) == ("user", "assistant", "user")
    assert "SCALE = 3" in file.content
    assert task == prompts.CHAT_2.first_turn(PROBLEM)[1]


def test_prompt_version_is_recorded_and_old_versions_keep_their_text(sandbox: Sandbox) -> None:
    result = solve(sandbox, ScriptedGenerator([[RIGHT]]), n=1, turns=1)
    assert result.prompt_version == PROMPT_VERSION == prompts.DEFAULT.version == "mucode-chat-3"
    assert result.turns[0].messages[0].content == prompts.SYSTEM_2
    assert "Can you complete the following Python function?" in result.turns[0].messages[1].content
    # Without a conversation, mucode-chat-3 is mucode-chat-2 word for word.
    assert prompts.CHAT_3.first_turn(PROBLEM) == prompts.CHAT_2.first_turn(PROBLEM)
    old = SearchEngine(ScriptedGenerator([[WRONG], [RIGHT]]), sandbox.pool, prompt=prompts.CHAT_1)
    result = sandbox.loop.run(old.solve(PROBLEM, SolveOptions(n=1, turns=2)))
    assert result.prompt_version == "mucode-chat-1"
    first, repair = result.turns[0].messages, result.turns[1].messages
    assert first[1].content.startswith("Solve the following problem in Python.")
    assert repair[-1].content.endswith("containing the complete corrected solution.")
    with pytest.raises(ValueError, match="unknown prompt version"):
        prompts.prompt_format("mucode-chat-0")


def test_prefilled_answers_are_reopened_closed_and_cut_at_the_fence(sandbox: Sandbox) -> None:
    chatty = RIGHT + "\n\nThis doubles x. Let me know if you need more help!"
    generator = ScriptedGenerator([[chatty]], prefill=True)
    engine = SearchEngine(generator, sandbox.pool)
    result = sandbox.loop.run(engine.solve(PROBLEM, SolveOptions(n=1, turns=1)))
    (candidate,) = result.turns[0].candidates
    assert candidate.text == RIGHT  # what followed the closing fence was never generated
    assert candidate.extraction == "fenced"
    assert result.public_all_passed
    # A backend that cannot be prefilled gets the plain chat and answers in free form.
    plain = ScriptedGenerator([[chatty]])
    result = solve(sandbox, plain, n=1, turns=1)
    assert result.turns[0].candidates[0].text == chatty and result.public_all_passed
    # An answer cut by the token limit stays open: extraction calls it truncated.
    fmt = prompts.DEFAULT
    assert (
        fmt.answer_text("def f():\n    return 1\n", "stop", True) == "```python\ndef f():\n    return 1\n```"
    )
    assert fmt.answer_text("def f():\n    ret", "length", True) == "```python\ndef f():\n    ret"


def test_a_checkpoint_is_prompted_with_the_format_it_was_trained_on(tmp_path: Path) -> None:
    write_manifest(
        tmp_path, Manifest(base_model="bundled", generator="generator", prompt_version="mucode-chat-1")
    )
    assert configured_prompt(EngineSettings(checkpoint=str(tmp_path))) is prompts.CHAT_1
    verifier_only = tmp_path / "verifier-only"
    verifier_only.mkdir()
    write_manifest(
        verifier_only, Manifest(base_model="bundled", verifier="verifier", prompt_version="mucode-chat-1")
    )
    # Its generator is the default one, prompted as the default is.
    assert configured_prompt(EngineSettings(checkpoint=str(verifier_only))) is prompts.DEFAULT
    assert configured_prompt(EngineSettings(checkpoint="none")) is prompts.DEFAULT
    chosen = EngineSettings(checkpoint=str(tmp_path), prompt_version="mucode-chat-2")
    assert configured_prompt(chosen) is prompts.CHAT_2  # an explicit setting wins
    with pytest.raises(ValidationError, match="unknown prompt version"):
        EngineSettings(prompt_version="mucode-chat-9")


def test_an_evaluation_explains_a_known_search(sandbox: Sandbox) -> None:
    """training/evaluate's columns on two searches whose story is known."""
    # Turn 2 repeats turn 1 (in other words) and so does its refill; turn 3 is right.
    repaired = TwoPromptGenerator(first=[WRONG, WRONG_AGAIN], repair=[WRONG_AGAIN, RIGHT])
    first, _ = counted_solve(sandbox, repaired, n=1, turns=3, temperature=0.0)
    a = sandbox.loop.run(explain(sandbox.pool, PROBLEM, first))
    assert (a["passed"], a["passed_by_turn"], a["covered"]) == (True, [False, False, True], True)
    assert a["passed_by_refill"] is False  # turn 3's answer was the model's repair
    assert (a["feedback_samples"], a["feedback_repeats"], a["feedback_improves"]) == (2, 1, 1)
    assert (a["feedback_slots"], a["feedback_slot_repeats"]) == (2, 1)
    # A right candidate was there, and the verifier chose the wrong one: a selection loss.
    engine = SearchEngine(ScriptedGenerator([[RIGHT, WRONG_AGAIN]]), sandbox.pool, LengthVerifier())
    options = SolveOptions(n=2, turns=1, selection="lv", greedy_candidate=False)
    second = sandbox.loop.run(engine.solve(PROBLEM, options))
    b = sandbox.loop.run(explain(sandbox.pool, PROBLEM, second))
    assert (b["passed"], b["covered"], b["feedback_samples"]) == (False, True, 0)
    costs = (
        {"completion_tokens": 30, "seconds": 3.0, "turns": 3},
        {"completion_tokens": 10, "seconds": 1.0, "turns": 1},
    )
    rows = [a | costs[0], b | costs[1] | {"passed_by_turn": [False] * 3}]
    s = summary("mixed", SolveOptions(n=1, turns=3), rows)
    assert (s["passed"], s["solved_after_feedback"], s["coverage"], s["selection_losses"]) == (1, 1, 2, 1)
    assert s["solved_by_refills"] == 0
    # A first answer right by the private tests but not the public ones, then a refill: not a
    # problem solved after feedback, nor by a refill.
    early = a | costs[0] | {"passed_by_turn": [True, True, True], "passed_by_refill": True}
    e = summary("early", SolveOptions(n=1, turns=3), [early])
    assert (e["solved_after_feedback"], e["solved_by_refills"]) == (0, 0)
    assert (s["repeat_share"], s["improve_share"], s["slot_repeat_share"]) == (0.5, 0.5, 0.5)
    assert (s["tokens_per_solved"], s["seconds_per_solved"]) == (40, 4.0)
    assert s["pass_rate_by_turn"] == [0.0, 0.0, 50.0]


def test_chat_2_lists_only_the_tests_the_prompt_does_not_already_show() -> None:
    shown = Problem(
        id="shown",
        prompt='def double(x):\n    """Return twice x.\n    >>> double( 2 )\n    4\n    """\n',
        entry_point="double",
        public_tests=["assert double(2) == 4", "assert double(0) == 0"],
        public_io_tests=[IOTest(input="", output="x\n"), IOTest(input="4", output="4\n")],
    )
    task = prompts.CHAT_2.first_turn(shown)[1].content
    assert task.startswith("Can you complete the following Python function?\n```python\ndef double(x):")
    assert "assert double(0) == 0" in task and "assert double(2) == 4" not in task
    assert "Example 1 input" in task and "Example 2" not in task  # "4" and "4" are in the prompt
    listed = prompts.CHAT_1.first_turn(shown)[1].content  # the old format lists everything
    assert "assert double(2) == 4" in listed and "Example 2 input" in listed
    prose = Problem(
        id="p", prompt="Reverse a string.", entry_point="rev", public_tests=["assert rev('ab') == 'ba'"]
    )
    assert prompts.CHAT_2.first_turn(prose)[1].content.startswith(
        "Can you write the Python function `rev` for the following problem?\n\nReverse a string."
    )
    stdin = Problem(
        id="s", prompt="Print the sum of two numbers.", public_io_tests=[IOTest(input="1 2", output="3")]
    )
    assert "reads standard input" in prompts.CHAT_2.first_turn(stdin)[1].content
