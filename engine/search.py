"""The µCode search: multi-turn Best-of-N with execution feedback and a learned verifier.

Each turn: sample N candidates, extract their code, run every distinct program on the public
tests in the sandbox (in parallel; identical code runs once), score with the verifier, choose one
(``selection``), and stop if it passes the public tests; otherwise show the model the chosen code
and its feedback and go on. A program already run in an earlier turn (same syntax tree) is never
run again, and with ``refill_repeats`` its slot gets a fresh sample of the first-turn prompt: the
default small model answers feedback with the program it was given nearly every time; with
``fresh_samples`` the last slots of a feedback turn are such fresh samples from the start. Private
tests never enter here: they only grade, elsewhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import BaseModel, Field

from mucode.problems import Problem
from mucode.sandbox import ExecutionRequest, ExecutionResult, SandboxPool, TestResult, TestStatus

from . import agreement, prompts
from .extract import extract_code
from .generators.base import Completion, Generator, SamplingParams, TokenProgress
from .options import SolveOptions
from .selection import select
from .shape import shape
from .trace import (
    Agreement,
    AgreementGroup,
    Candidate,
    ChatMessage,
    SolveResult,
    StopReason,
    Timings,
    TurnRecord,
    Usage,
)
from .verifier import Verifier


class SearchEvent(BaseModel):
    """Progress of a solve, for live displays and streaming: a turn starts; its candidates are
    being written (tokens so far, every ``PROGRESS_INTERVAL_S`` at most); they are written (how
    many, how many distinct programs will run); each program's public-test result as it lands;
    the turn's record."""

    kind: Literal["turn_started", "generating", "candidates_written", "candidate_ran", "turn_finished"]
    turn: int
    turns: int
    record: TurnRecord | None = None
    tokens: list[int] | None = Field(
        None, description="generating: tokens each candidate has written so far (backends that tell)."
    )
    candidates: int | None = Field(None, description="candidates_written: candidates this turn.")
    programs: int | None = Field(None, description="candidates_written: distinct programs to run.")
    candidate: int | None = Field(None, description="candidate_ran: the candidate's index.")
    passed: int | None = Field(None, description="candidate_ran: public tests it passes.")
    total: int | None = Field(None, description="candidate_ran: public tests.")


EventCallback = Callable[[SearchEvent], None]


def no_code_result(problem: Problem, note: str) -> ExecutionResult:
    tests = [(t, "assert") for t in problem.public_tests]
    tests += [(f"stdin #{k + 1}", "io") for k in range(len(problem.public_io_tests))]
    return ExecutionResult(
        passed=False,
        results=[
            TestResult(test=t, kind=kind, status=TestStatus.error, message="not run: " + note)
            for t, kind in tests
        ],
        passed_count=0,
        duration_ms=0.0,
        feedback=f"Your answer could not be run: {note}. Answer with one ```python code block.",
        isolation="none",
    )


def share_duplicates(candidates: list[Candidate]) -> None:
    """A duplicate shows the result and score of the candidate that ran in its place."""
    for candidate in candidates:
        if candidate.duplicate_of is not None:
            original = candidates[candidate.duplicate_of]
            candidate.execution, candidate.verifier_score = original.execution, original.verifier_score


def turn_seed(seed: int, turn: int, problem: Problem) -> int:
    """The sampling seed of a turn: the same for the same seed, turn and problem statement (a
    seeded solve reproduces), different across problems. With one seed for every problem, a
    sample slot draws the same random numbers in all of them — llama.cpp's seed 1 draws 0.997,
    0.933, 0.128, 0.999 for its first tokens, the tail of the nucleus — and the first sampled
    candidate of every HumanEval search passed 38 % of the time against 50-52 % for the others
    (docs/benchmarks.md). Room is left below 2**31 for the per-sample and refill offsets."""
    key = hashlib.blake2b(f"{seed}/{turn}/{problem.prompt}".encode(), digest_size=4).digest()
    return int.from_bytes(key, "big") % (2**31 - 2**16)


REFILL_SEED_OFFSET = 500  # refills of turn t sample with turn_seed + 500: not the samples' seeds
TESTS_TURN = 900  # the written test calls sample with turn_seed(seed, 900, problem)
REFILL_TEMPERATURE = 0.7  # refills of a greedy search: a greedy refill would be turn 1's answer
PROGRESS_INTERVAL_S = 2.0  # between two `generating` events of a turn: a line each in a chat pane


class TurnProgress:
    """Tokens written so far in each of a turn's n slots, whichever request writes them (the
    answers, fresh samples, refills of repeats), told as `generating` events at most every
    ``PROGRESS_INTERVAL_S``."""

    def __init__(self, n: int, tell: EventCallback) -> None:
        self.written = [0] * n
        self.tell = tell
        self.last = float("-inf")  # the first report goes out at once

    def watch(self, slots: list[int]) -> TokenProgress:
        def report(tokens: list[int]) -> None:
            for slot, count in zip(slots, tokens, strict=True):
                self.written[slot] = count
            if time.monotonic() - self.last >= PROGRESS_INTERVAL_S:
                self.last = time.monotonic()
                self.tell(SearchEvent(kind="generating", turn=0, turns=0, tokens=list(self.written)))

        return report


class Tried:
    """The programs a search has run, by shape (``shape.shape``), with the turn that ran them:
    a program is never run (or scored) twice in one search."""

    def __init__(self) -> None:
        self.runs: dict[str | None, tuple[int, Candidate]] = {}

    def add(self, turn: int, candidates: list[Candidate]) -> None:
        for c in candidates:
            if c.code is not None and c.execution is not None:
                self.runs.setdefault(shape(c.code), (turn, c))

    def mark_repeat(self, candidate: Candidate) -> bool:
        """Gives a candidate that repeats an earlier program that program's turn, result and score."""
        found = None if candidate.code is None else self.runs.get(shape(candidate.code))
        if found is None:
            return False
        turn, earlier = found
        candidate.repeat_of_turn, candidate.execution = turn, earlier.execution
        candidate.verifier_score = earlier.verifier_score
        return True


class SearchEngine:
    def __init__(
        self,
        generator: Generator,
        sandbox: SandboxPool,
        verifier: Verifier | None = None,
        prompt: prompts.PromptFormat = prompts.DEFAULT,
    ) -> None:
        self.generator = generator
        self.sandbox = sandbox
        self.verifier = verifier
        self.prompt = prompt
        # A generator that cannot be prefilled answers in free form; extraction copes with both.
        self.prefilled = prompt.fenced_answer and generator.supports_prefill

    @property
    def verifier_name(self) -> str:
        return self.verifier.name if self.verifier else "none"

    async def solve(
        self, problem: Problem, options: SolveOptions, on_event: EventCallback | None = None
    ) -> SolveResult:
        if options.selection == "lv" and self.verifier is None:
            raise ValueError("selection 'lv' needs a verifier; use 'pt+lv', 'pt' or 'random'")
        started = time.perf_counter()
        first = messages = refill_from = self.prompt.first_turn(problem)
        tried = Tried()
        records: list[TurnRecord] = []
        final: Candidate | None = None
        stop: StopReason = "max_turns"
        has_tests = bool(problem.public_tests or problem.public_io_tests)
        writer = None
        # One candidate a turn has nothing to agree with.
        if options.n > 1 and (
            options.selection == "agree" or (options.selection == "auto" and not has_tests)
        ):
            writer = agreement.TestWriter(
                self.generator, problem.prompt, turn_seed(options.seed, TESTS_TURN, problem), self.prefilled
            )
            if problem.entry_point:
                writer.start(problem.entry_point)
        try:
            for turn in range(1, options.turns + 1):
                if on_event:
                    on_event(SearchEvent(kind="turn_started", turn=turn, turns=options.turns))
                record = await self._turn(
                    problem, messages, refill_from, options, turn, tried, writer, on_event
                )
                tried.add(turn, record.candidates)
                records.append(record)
                if on_event:
                    on_event(SearchEvent(kind="turn_finished", turn=turn, turns=options.turns, record=record))
                chosen = record.chosen
                final = chosen
                if not has_tests:
                    stop = "no_tests"
                    # Without tests a clean run proves nothing: only a crash on written calls that
                    # other candidates handle is feedback worth a turn.
                    crashed = record.agreement and _group_of(record.agreement, record.selected)
                    if not (crashed and crashed.crashes):
                        break
                elif chosen.public_all_passed:
                    stop = "passed"
                    break
                messages = self.prompt.next_turn(problem, messages, chosen)
                refill_from = self.prompt.refill_turn(problem, first, chosen)
        finally:
            if writer is not None:
                writer.cancel()
        assert final is not None
        execution = final.execution
        usage, timings = Usage(), Timings()
        for record in records:
            usage, timings = usage.add(record.usage), timings.add(record.timings)
        timings.total_ms = (time.perf_counter() - started) * 1000
        return SolveResult(
            problem_id=problem.id,
            prompt_version=self.prompt.version,
            generator=self.generator.describe(first),
            verifier=self.verifier_name,
            options=options,
            turns=records,
            final_code=final.code,
            public_all_passed=has_tests and final.public_all_passed,
            public_passed_count=execution.passed_count if execution else 0,
            public_total=len(problem.public_tests) + len(problem.public_io_tests),
            stop_reason=stop,
            usage=usage,
            timings=timings,
            context_messages=len(problem.context),
            context_dropped=problem.context_dropped,
        )

    @staticmethod
    def _reporter(on_event: EventCallback | None, turn: int, turns: int) -> EventCallback | None:
        if on_event is None:
            return None
        return lambda event: on_event(event.model_copy(update={"turn": turn, "turns": turns}))

    async def execute(
        self, problem: Problem, candidates: list[Candidate], on_event: EventCallback | None = None
    ) -> list[Candidate]:
        """Runs every distinct program on the public tests, in parallel; identical code runs once
        (the others get ``duplicate_of``). Returns the candidates that ran. ``on_event`` hears
        how many will run, then each result as it lands (``turn`` left for the caller to fill)."""
        first_of: dict[str, int] = {}
        for candidate in candidates:
            if candidate.code is None or candidate.execution is not None:  # no code, or a repeat
                continue
            if candidate.code in first_of:
                candidate.duplicate_of = first_of[candidate.code]
            else:
                first_of[candidate.code] = candidate.index
        distinct = [candidates[i] for i in first_of.values()]
        if on_event is not None:
            on_event(
                SearchEvent(
                    kind="candidates_written",
                    turn=0,
                    turns=0,
                    candidates=len(candidates),
                    programs=len(distinct),
                )
            )

        async def run(candidate: Candidate) -> ExecutionResult:
            request = ExecutionRequest(
                code=candidate.code or "", tests=problem.public_tests, io_tests=problem.public_io_tests
            )
            result = await self.sandbox.execute(request)
            if on_event is not None:
                on_event(
                    SearchEvent(
                        kind="candidate_ran",
                        turn=0,
                        turns=0,
                        candidate=candidate.index,
                        passed=result.passed_count,
                        total=result.total,
                    )
                )
            return result

        results = await asyncio.gather(*(run(c) for c in distinct))
        for candidate, result in zip(distinct, results, strict=True):
            if candidate.extraction == "truncated" and not result.passed:
                result = result.model_copy(
                    update={
                        "feedback": result.feedback + "\nNote: your answer was cut "
                        "off (too long); write a shorter solution."
                    }
                )
            candidate.execution = result
        return distinct

    async def score(self, problem: Problem, candidates: list[Candidate]) -> None:
        """The verifier's score for each candidate (nothing without a verifier)."""
        if self.verifier is not None and candidates:
            scores = await self.verifier.score(problem, candidates)
            for candidate, value in zip(candidates, scores, strict=True):
                candidate.verifier_score = value

    async def agree(
        self, problem: Problem, candidates: list[Candidate], writer: agreement.TestWriter
    ) -> tuple[Agreement, Usage]:
        """Every distinct program runs the written calls; candidates are grouped by what they do."""
        if writer.function is None:
            found = agreement.function_of(candidates)
            if found is None:
                return Agreement(note="no candidate defines a function to call"), Usage()
            writer.start(*found)
        codes = list(dict.fromkeys(c.code for c in candidates if c.code is not None))
        if len(codes) < 2:
            return Agreement(function=writer.function, note="the candidates wrote one program"), Usage()
        tests, usage = await writer.tests()
        function = writer.function
        if not tests:
            note = f"the generator wrote no usable calls of `{function}`"
            return Agreement(function=function, note=note), usage
        mark = agreement.new_mark()
        runs = await asyncio.gather(
            *(
                self.sandbox.execute(ExecutionRequest(code=agreement.probe_program(code, tests, mark)))
                for code in codes
            )
        )
        seen = {
            code: agreement.read_probe(run.stdout, mark, len(tests))
            for code, run in zip(codes, runs, strict=True)
        }
        behaviours = {c.index: seen[c.code] for c in candidates if c.code is not None}
        scores = {c.index: c.verifier_score for c in candidates if c.verifier_score is not None}
        valid, groups = agreement.group(behaviours, tests, scores)
        note = "" if any(valid) else "every candidate raised on every written call"
        return (
            Agreement(
                function=function,
                tests=tests,
                valid=valid,
                groups=groups,
                rule=agreement.DEFAULT_RULE,
                note=note,
            ),
            usage,
        )

    def _request(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        slots: list[int],
        progress: TurnProgress | None,
    ) -> Awaitable[list[Completion]]:
        if progress is None:  # nobody watches (rollouts, evaluations): no progress to relay
            return self.generator.sample(messages, params)
        return self.generator.sample_watched(messages, params, progress.watch(slots))

    async def _sample(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        greedy_candidate: bool,
        progress: TurnProgress | None,
    ) -> list[Completion]:
        """The turn's first n completions; with ``greedy_candidate`` the first is the greedy
        answer. Both requests go out together, so a batching backend decodes them as one batch."""
        if params.n == 0:
            return []
        if not greedy_candidate or params.temperature == 0:
            return await self._request(messages, params, list(range(params.n)), progress)
        greedy_params = params.model_copy(update={"n": 1, "temperature": 0.0})
        if params.n == 1:
            return await self._request(messages, greedy_params, [0], progress)
        sampled = params.model_copy(update={"n": params.n - 1})
        greedy, rest = await asyncio.gather(
            self._request(messages, greedy_params, [0], progress),
            self._request(messages, sampled, list(range(1, params.n)), progress),
        )
        return [*greedy, *rest]

    def _candidate(self, problem: Problem, index: int, completion: Completion) -> Candidate:
        text = self.prompt.answer_text(completion.text, completion.finish_reason, self.prefilled)
        extracted = extract_code(text, problem.entry_point, problem.prompt)
        candidate = Candidate(
            index=index,
            text=text,
            code=extracted.code,
            extraction=extracted.how,
            finish_reason=completion.finish_reason,
            usage=Usage(
                prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens
            ),
            logprob=completion.logprob,
        )
        if extracted.code is None:
            candidate.execution = no_code_result(problem, extracted.note)
        return candidate

    async def _refill(
        self,
        problem: Problem,
        refill_from: list[ChatMessage],
        slots: list[int],
        params: SamplingParams,
        tried: Tried,
        progress: TurnProgress | None,
        first_sample: int = 0,
    ) -> list[Candidate]:
        """Fresh samples of ``refill_from`` (the prompt format's ``refill_turn``) for ``slots``. One
        round: a refill that repeats too stays, marked as a repeat. ``first_sample`` shifts the
        seed past samples of the same prompt already drawn this turn (backends seed sample k with
        seed + k)."""
        if not slots:
            return []
        refill = params.model_copy(
            update={
                "n": len(slots),
                "temperature": params.temperature or REFILL_TEMPERATURE,
                "seed": (params.seed or 0) + REFILL_SEED_OFFSET + first_sample,
            }
        )
        refills = []
        completions = await self._request(refill_from, refill, slots, progress)
        for slot, completion in zip(slots, completions, strict=True):
            fresh = self._candidate(problem, slot, completion)
            fresh.refill = True
            tried.mark_repeat(fresh)
            refills.append(fresh)
        return refills

    async def _turn(
        self,
        problem: Problem,
        messages: list[ChatMessage],
        refill_from: list[ChatMessage],
        options: SolveOptions,
        turn: int,
        tried: Tried,
        writer: agreement.TestWriter | None,
        on_event: EventCallback | None = None,
    ) -> TurnRecord:
        t0 = time.perf_counter()
        params = SamplingParams(
            n=options.n,
            temperature=options.temperature,
            top_p=options.top_p,
            max_tokens=options.max_tokens,
            seed=turn_seed(options.seed, turn, problem),
            stop=[*options.stop, *self.prompt.stop] if self.prefilled else options.stop,
            prefill=self.prompt.prefill if self.prefilled else "",
        )
        reporter = self._reporter(on_event, turn, options.turns)
        progress = None if reporter is None else TurnProgress(options.n, reporter)
        # The last `fresh_samples` slots of a feedback turn never see the feedback; they need
        # nothing from the answers, so they are sampled beside them, in the same batch.
        answers = options.n - (options.fresh_samples if turn > 1 else 0)
        fresh_slots = list(range(answers, options.n))
        completions, fresh = await asyncio.gather(
            self._sample(
                messages,
                params.model_copy(update={"n": answers}),
                options.greedy_candidate and options.n > 1,
                progress,
            ),
            self._refill(problem, refill_from, fresh_slots, params, tried, progress),
        )
        candidates = [self._candidate(problem, i, c) for i, c in enumerate(completions)]
        repeats = [c for c in candidates if tried.mark_repeat(c)]
        replaced = repeats if options.refill_repeats else []
        refills = await self._refill(
            problem, refill_from, [c.index for c in replaced], params, tried, progress, len(fresh_slots)
        )
        if fresh or refills:
            by_slot = {c.index: c for c in [*candidates, *fresh, *refills]}
            candidates = [by_slot[i] for i in range(options.n)]
        t1 = time.perf_counter()
        distinct = await self.execute(problem, candidates, reporter)
        t2 = time.perf_counter()
        await self.score(problem, distinct)
        t3 = time.perf_counter()
        share_duplicates(candidates)
        agreed, agreed_usage = (
            (None, Usage()) if writer is None else await self.agree(problem, candidates, writer)
        )
        t4 = time.perf_counter()
        has_tests = bool(problem.public_tests or problem.public_io_tests)
        if agreed is not None and not has_tests:
            agreed.summary = agreed.describe(len(candidates))
        if agreed is not None and agreed.used:
            selected = _by_agreement(candidates, agreed, has_tests)
            crashed = _group_of(agreed, selected)
            if not has_tests and crashed is not None and crashed.crashes:
                chosen = candidates[selected]
                assert chosen.execution is not None  # it has code, so it ran
                feedback = agreement.crash_feedback(
                    agreed.function or "", agreed.tests, crashed.outputs, agreed.valid
                )
                chosen.execution = chosen.execution.model_copy(update={"feedback": feedback})
        else:
            rule = options.selection if options.selection not in ("auto", "agree") else "pt+lv"
            selected = select(candidates, rule, _tie_break(problem, options, turn))
        # The n samples share one prompt: it counts once per turn (as OpenAI counts it for n > 1),
        # and the refills' prompt once more.
        sampled = [*replaced, *(c for c in candidates if not c.refill)]
        refills = [c for c in candidates if c.refill]
        usage = Usage(
            prompt_tokens=sum(
                max((c.usage.prompt_tokens for c in cs), default=0) for cs in (sampled, refills)
            ),
            completion_tokens=sum(c.usage.completion_tokens for c in [*replaced, *candidates]),
        ).add(agreed_usage)
        return TurnRecord(
            turn=turn,
            messages=list(messages),
            refill_messages=list(refill_from) if fresh or refills else None,
            candidates=candidates,
            replaced=replaced,
            selected=selected,
            usage=usage,
            timings=Timings(
                generation_ms=(t1 - t0) * 1000,
                sandbox_ms=(t2 - t1) * 1000,
                verifier_ms=(t3 - t2) * 1000,
                agreement_ms=(t4 - t3) * 1000,
                total_ms=(time.perf_counter() - t0) * 1000,
            ),
            agreement=agreed,
        )


def _group_of(agreed: Agreement, index: int) -> AgreementGroup | None:
    return next((g for g in agreed.groups if index in g.members), None)


def _tie_break(problem: Problem, options: SolveOptions, turn: int) -> random.Random:
    """The seeded chance of `random` and of `pt`'s ties: the same for the same problem, seed and
    turn (traces reproduce), different across problems (a seed alone would pick the same slot in
    every problem of an evaluation)."""
    return random.Random(f"{problem.id}/{options.seed}/{turn}")


def _by_agreement(candidates: list[Candidate], agreed: Agreement, has_tests: bool) -> int:
    """The earliest member of the best group; with public tests, only among the candidates that
    pass the most of them (written calls never outvote a user's tests)."""
    best = max(c.public_passed_count for c in candidates) if has_tests else 0
    allowed = {c.index for c in candidates if c.public_passed_count == best or not has_tests}
    for g in agreed.groups:
        members = [i for i in g.members if i in allowed]
        if members:
            return members[0]
    return select(candidates, "pt+lv", random.Random(0))
