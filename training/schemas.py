"""The records training reads and writes, as JSONL (one model per line; ``datasets`` loads them
with ``load_dataset("json", ...)``). They reuse the engine's trace models, so a server trace and a
training rollout are one format."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Protocol, TypeVar

from pydantic import BaseModel, Field, ValidationError

from mucode.problems import iter_jsonl


class LabeledCode(BaseModel):
    """One program for a problem with its oracle label: what the verifier learns from."""

    problem_id: str
    prompt: str = Field(..., description="The problem text the verifier reads with the code.")
    code: str
    passed: bool = Field(..., description="Oracle: passes the public and the private tests.")
    iteration: int = Field(0, description="Expert-iteration round that produced it.")
    reference: bool = Field(
        False,
        description="The problem's reference solution, not a sample: trained on, never measured "
        "(references differ from samples in ways a random network's features already pick up).",
    )


class Pair(BaseModel):
    """A correct and an incorrect program of the same problem (Bradley–Terry training)."""

    problem_id: str
    prompt: str
    chosen: str
    rejected: str


M = TypeVar("M", bound=BaseModel)


class OfProblem(Protocol):
    problem_id: str


R = TypeVar("R", bound=OfProblem)


def split_by_problem(records: list[R], holdout: float, seed: int) -> tuple[list[R], list[R]]:
    """(train, held out): a seeded share of the problems is held out whole, never trained on."""
    problems = sorted({r.problem_id for r in records})
    random.Random(seed).shuffle(problems)
    held = set(problems[: round(len(problems) * holdout)])
    return [r for r in records if r.problem_id not in held], [r for r in records if r.problem_id in held]


def read_jsonl(path: str | Path, model: type[M]) -> list[M]:
    """Records of one model from a JSONL file; a bad line is an error naming the file and line."""
    records = []
    for number, row in iter_jsonl(Path(path)):
        try:
            records.append(model.model_validate(row))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "record"
            raise ValueError(
                f"{path}:{number}: not a valid {model.__name__}: {where}: {first['msg']}"
            ) from exc
    return records
