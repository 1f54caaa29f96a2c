"""The record of one solve: every turn, every candidate, what ran, what scored, what was chosen.

The same models are what training stores as rollouts, so a server trace and a training rollout
are one format.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field

from mucode.sandbox import ExecutionResult

from .extract import Extraction
from .options import SolveOptions


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class Timings(BaseModel):
    generation_ms: float = 0.0
    sandbox_ms: float = 0.0
    verifier_ms: float = 0.0
    agreement_ms: float = Field(
        0.0, description="Waiting for the written test calls and running them (selection `agree`)."
    )
    total_ms: float = 0.0

    def add(self, other: Timings) -> Timings:
        return Timings(
            generation_ms=self.generation_ms + other.generation_ms,
            sandbox_ms=self.sandbox_ms + other.sandbox_ms,
            verifier_ms=self.verifier_ms + other.verifier_ms,
            agreement_ms=self.agreement_ms + other.agreement_ms,
            total_ms=self.total_ms + other.total_ms,
        )


class Candidate(BaseModel):
    index: int = Field(..., description="Position among the turn's samples.")
    text: str = Field(..., description="The model's raw answer.")
    code: str | None = Field(None, description="The program extracted from the answer, if any.")
    extraction: Extraction = Field(
        ..., description="How the code was found: fenced, plain, truncated, none, or given (/v1/score)."
    )
    finish_reason: str = "stop"
    usage: Usage = Field(default_factory=Usage)
    logprob: float | None = Field(
        None,
        description="Sum of the answer's token log-probabilities under the generator's own "
        "distribution, where the backend reports it (what the `likelihood` verifier reads).",
    )
    duplicate_of: int | None = Field(
        None, description="Index of an identical candidate that was run instead."
    )
    execution: ExecutionResult | None = Field(None, description="Public-test result.")
    verifier_score: float | None = None
    repeat_of_turn: int | None = Field(
        None,
        description="The program (same syntax tree) already ran in this earlier turn: it was not run "
        "again, its result then is shown.",
    )
    refill: bool = Field(
        False, description="Sampled from the first-turn prompt in place of a candidate that repeated."
    )

    @property
    def public_passed_count(self) -> int:
        """How many public tests this candidate's program passed."""
        return self.execution.passed_count if self.execution else 0

    @property
    def public_all_passed(self) -> bool:
        """It has code, the code ran, and no public test failed (with no tests: it ran cleanly)."""
        return bool(self.execution and self.execution.passed and self.code is not None)


TESTS_VERSION = "mucode-tests-1"  # the prompt that writes test calls (engine/agreement.py)


class WrittenTest(BaseModel):
    call: str = Field(..., description="A call of the function, as Python source.")
    expected: str | None = Field(None, description="The result the generator expects, as Python source.")


class AgreementGroup(BaseModel):
    members: list[int] = Field(..., description="Candidate indices that behave alike.")
    outputs: list[str] = Field(..., description="Per written call: `= value`, `raises E` or `timeout`.")
    matched: int = Field(0, description="Written expectations these outputs meet.")
    crashes: int = Field(0, description="Calls where this group raises or hangs while another returns.")
    score: float | None = Field(None, description="The verifier's best score in the group, if loaded.")


class Agreement(BaseModel):
    """How an answer was chosen without user tests (one per turn that used it)."""

    tests_version: str = Field(TESTS_VERSION, description="The prompt that wrote the calls.")
    function: str | None = Field(None, description="The function the written calls call.")
    tests: list[WrittenTest] = Field(default_factory=list, description="The calls the generator wrote.")
    valid: list[bool] = Field(
        default_factory=list, description="Per call: some candidate returned without raising."
    )
    groups: list[AgreementGroup] = Field(default_factory=list, description="Best first, by `rule`.")
    rule: str = ""
    note: str = Field("", description="Why agreement could not decide, when it could not.")
    summary: str = Field(
        "", description="How the answer was chosen, in words (the verdict when no tests were given)."
    )

    @property
    def used(self) -> bool:
        return bool(self.groups) and any(self.valid)

    def describe(self, candidates: int) -> str:
        """The verdict in words, for a chat answer."""
        if not self.used:
            return f"no tests given, and agreement could not be used ({self.note})"
        best = self.groups[0]
        valid = sum(self.valid)
        text = (
            f"no tests given: chosen by agreement of {len(best.members)} of {candidates} candidates "
            f"on {valid} generated input{'s' if valid != 1 else ''}"
        )
        written = sum(t.expected is not None for t, v in zip(self.tests, self.valid, strict=True) if v)
        if written:
            text += f", {best.matched} of {written} written expectations met"
        if best.crashes:
            text += f"; it still raises on {best.crashes} of them"
        return text


class TurnRecord(BaseModel):
    turn: int = Field(..., description="1-based turn number.")
    messages: list[ChatMessage] = Field(..., description="The conversation the generator saw this turn.")
    refill_messages: list[ChatMessage] | None = Field(
        None, description="What the refills of this turn were sampled from (none: no refills)."
    )
    candidates: list[Candidate]
    selected: int = Field(..., description="Index of the chosen candidate.")
    replaced: list[Candidate] = Field(
        default_factory=list,
        description="Samples that repeated a program tried in an earlier turn and were replaced by "
        "refills (`SolveOptions.refill_repeats`); never run.",
    )
    usage: Usage
    timings: Timings
    cached: bool = Field(False, description="Served from the cache of deterministic solves.")
    agreement: Agreement | None = Field(
        None, description="Selection `agree`: the written calls, the groups and how the choice was made."
    )

    @property
    def chosen(self) -> Candidate:
        return self.candidates[self.selected]


StopReason = Literal["passed", "max_turns", "no_tests"]


class SolveResult(BaseModel):
    problem_id: str
    prompt_version: str
    generator: str = Field(..., description="Generator backend and model.")
    verifier: str = Field(..., description="Verifier model, or `none`.")
    options: SolveOptions
    turns: list[TurnRecord]
    final_code: str | None = Field(
        None,
        description="The answer: the first chosen candidate passing the public "
        "tests, else the last chosen one.",
    )
    public_all_passed: bool = Field(
        ..., description="The answer passes every public test; false when there were no tests to run."
    )
    public_passed_count: int = Field(..., description="Public tests the answer passes.")
    public_total: int = Field(..., description="Public tests given (asserts and stdin/stdout pairs).")
    stop_reason: StopReason = Field(
        ...,
        description="Why the search ended: `passed` (the answer passes every public test), "
        "`max_turns` (no turn's choice passed; the answer is the last choice) or `no_tests` (no "
        "public tests were given: nothing the user wrote was checked; with selection `agree` the "
        "turn's `agreement` says how the answer was chosen).",
    )
    usage: Usage
    timings: Timings
    cached: bool = Field(False, description="Served from the cache of deterministic solves.")
    context_messages: int = Field(
        0, description="Messages of the conversation before the request that the first turn showed."
    )
    context_dropped: int = Field(
        0, description="Older messages of the conversation left out to fit the context budget."
    )
