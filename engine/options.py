"""Search options: how many samples, how many turns, how to choose, how to sample."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Selection = Literal["auto", "pt+lv", "pt", "lv", "random", "agree"]


class SolveOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(5, ge=1, le=64, description="Candidates sampled per turn (Best-of-N).")
    turns: int = Field(3, ge=1, le=10, description="Most turns of fix-and-rerank.")
    selection: Selection = Field(
        "auto",
        description="`auto`: `pt+lv` when the problem has public tests, `agree` when it has none; "
        "`pt+lv`: most public tests passed, verifier breaks ties; `pt`: public tests, random "
        "tie-break; `lv`: verifier only; `random`; `agree`: the generator writes calls of the "
        "function, every candidate runs them, and the largest group of candidates that behave alike "
        "wins (after the public tests, when there are any).",
    )
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    greedy_candidate: bool = Field(
        True,
        description="When sampling n > 1 at a temperature above 0, candidate 0 of every turn is the "
        "greedy (temperature 0) answer and the other n-1 are sampled: a small model's greedy answer "
        "beats any one of its samples, and Best-of-N should not throw it away. Off: all n sampled, "
        "as in the paper.",
    )
    refill_repeats: bool = Field(
        True,
        description="On a feedback turn, a candidate whose program (same syntax tree) was already run "
        "in this search is not run again: its slot is refilled with a fresh sample of the first-turn "
        "prompt (at `temperature`, or 0.7 when that is 0), so that every turn tries something new. "
        "Off: repeats are kept, as in the paper.",
    )
    fresh_samples: int = Field(
        0,
        ge=0,
        le=64,
        description="On a feedback turn, this many of the n slots (the last ones) are fresh samples "
        "of the first-turn prompt, like refills, instead of answers to the feedback: for a generator "
        "whose first answers are worth more than its repairs. At most n.",
    )
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(768, ge=16, le=32768, description="Tokens per candidate.")
    seed: int = Field(0, description="Seeds sampling and tie-breaks: the same seed gives the same trace.")
    stop: list[str] = Field(default_factory=list, description="Extra stop strings for the generator.")

    @model_validator(mode="after")
    def _fresh_samples_fit(self) -> SolveOptions:
        if self.fresh_samples > self.n:
            raise ValueError(f"fresh_samples ({self.fresh_samples}) cannot exceed n ({self.n})")
        return self
