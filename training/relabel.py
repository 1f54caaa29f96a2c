"""Stage 3, relabel: the local expert of each problem and the SFT rows it yields.

For every problem, the expert is the best program seen in any rollout under
β_O·oracle + β_L·verifier (default 100 and 1: a correct program always wins, the verifier breaks
ties, and when nothing is correct it picks its favourite). Optionally the problems' reference
solutions join the candidates (``reference_codes``): the oracle knows them to be right. Every
state of a failed trajectory is relabelled with the expert's code; every state of a successful
trajectory keeps the trajectory's own final code. Given only the programs the oracle passed, a
problem nothing solved has no expert and gives rows only from its successful trajectories. A row
is (the conversation up to that state) -> the target answer; a row already made (the first turn
of two failed episodes of a problem, say) is made once, as training on it twice teaches nothing
new and costs a pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from mucode.engine import prompts
from mucode.engine.trace import ChatMessage
from mucode.problems import Problem

from .rollouts import Rollout
from .schemas import LabeledCode

ScoreFn = Callable[[str, list[str]], list[float]]  # (problem prompt, codes) -> verifier scores


class SFTRow(BaseModel):
    problem_id: str
    iteration: int
    messages: list[ChatMessage]
    target: str
    source: Literal["own", "expert"]

    def conversation(self) -> list[dict[str, str]]:
        return [m.model_dump() for m in self.messages] + [{"role": "assistant", "content": self.target}]


def labeled_codes(rollouts: list[Rollout], prompts: dict[str, str]) -> list[LabeledCode]:
    """Every distinct program of the rollouts with its oracle label (the verifier's data), with
    the problem text the server's verifier reads (``prompts``: problem id -> prompt)."""
    seen: dict[tuple[str, str], LabeledCode] = {}
    for r in rollouts:
        prompt = prompts[r.problem_id]
        for turn, labels in zip(r.trace.turns, r.labels, strict=True):
            for candidate, label in zip(turn.candidates, labels, strict=True):
                if candidate.code and (r.problem_id, candidate.code) not in seen:
                    seen[(r.problem_id, candidate.code)] = LabeledCode(
                        problem_id=r.problem_id,
                        prompt=prompt,
                        code=candidate.code,
                        passed=label,
                        iteration=r.iteration,
                    )
    return list(seen.values())


def reference_codes(problems: list[Problem]) -> list[LabeledCode]:
    """The problems' reference solutions as programs the oracle knows to be right: with them among
    the candidates, every problem has a correct expert even where no rollout solved it."""
    return [
        LabeledCode(
            problem_id=p.id,
            prompt=p.prompt,
            code=p.reference_solution,
            passed=True,
            iteration=0,
            reference=True,
        )
        for p in problems
        if p.reference_solution
    ]


def experts(
    codes: list[LabeledCode], score: ScoreFn | None, beta_oracle: float = 100.0, beta_verifier: float = 1.0
) -> dict[str, str]:
    by_problem: dict[str, list[LabeledCode]] = defaultdict(list)
    for c in codes:
        by_problem[c.problem_id].append(c)
    chosen = {}
    for problem_id, group in by_problem.items():
        scores = score(group[0].prompt, [c.code for c in group]) if score else [0.0] * len(group)
        best = max(
            range(len(group)), key=lambda k: (beta_oracle * group[k].passed + beta_verifier * scores[k], -k)
        )
        chosen[problem_id] = group[best].code
    return chosen


def relabel(rollouts: list[Rollout], expert: dict[str, str]) -> list[SFTRow]:
    rows = []
    made: set[tuple[str, ...]] = set()
    for r in rollouts:
        own = r.success and r.trace.final_code
        target = r.trace.final_code if own else expert.get(r.problem_id)
        if not target:
            continue  # no program at all was seen for this problem
        for turn in r.trace.turns:
            row = (r.problem_id, target, *(f"{m.role}:{m.content}" for m in turn.messages))
            if row in made:
                continue
            made.add(row)
            rows.append(
                SFTRow(
                    problem_id=r.problem_id,
                    iteration=r.iteration,
                    messages=turn.messages,
                    target=prompts.answer(target, "").content,
                    source="own" if own else "expert",
                )
            )
    return rows
