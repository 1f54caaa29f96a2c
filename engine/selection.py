"""Choosing one candidate per turn (the paper's selection rules).

* ``pt+lv`` (default): most public tests passed; the verifier breaks ties and ranks failures.
* ``pt``: most public tests passed; ties broken at random (seeded).
* ``lv``: highest verifier score.
* ``random``: any candidate (seeded).

Without a verifier every score is 0, so ``pt+lv`` falls back to public tests with a deterministic
tie-break: a candidate with code first, then the earliest sample.
"""

from __future__ import annotations

import random

from .options import Selection
from .trace import Candidate


def select(candidates: list[Candidate], rule: Selection, rng: random.Random) -> int:
    if not candidates:
        raise ValueError("no candidates to select from")
    if rule == "random":
        return rng.randrange(len(candidates))
    if rule == "lv":
        return max(candidates, key=lambda c: (_score(c), c.code is not None, -c.index)).index
    best = max(c.public_passed_count for c in candidates)
    top = [c for c in candidates if c.public_passed_count == best]
    if rule == "pt":
        with_code = [c for c in top if c.code is not None] or top
        return rng.choice(with_code).index
    return max(top, key=lambda c: (_score(c), c.code is not None, -c.index)).index


def _score(candidate: Candidate) -> float:
    return candidate.verifier_score if candidate.verifier_score is not None else float("-inf")


def rank(candidates: list[Candidate]) -> list[int]:
    """All candidates, best first, by the ``pt+lv`` order (deterministic)."""
    ordered = sorted(
        candidates,
        key=lambda c: (c.public_passed_count, _score(c), c.code is not None, -c.index),
        reverse=True,
    )
    return [c.index for c in ordered]
