"""Which first-turn prompt gets the default model closest to its published HumanEval score?

Single-turn greedy (the published figure's setting) with each prompt variant, on one HumanEval
fold (tune) and then the other (confirm), with the default backend:

    .venv/bin/python bench/prompt_variants.py --fold 0 \
        --variants chat-2-listed,chat-1,qwen-exact,chat-2-free,chat-2
    .venv/bin/python bench/prompt_variants.py --fold 1 --variants chat-2,chat-1

Variants:
  chat-1       mucode-chat-1: mucode's own wording, tests listed, free-form answer
  chat-2       mucode-chat-2: Qwen's evaluation wording, the public tests the prompt does not
               already show listed (on HumanEval: those of 12 problems whose docstrings give
               examples in prose), answer prefilled with a python fence and cut at the closing one
  chat-2-listed  chat-2 listing every public test
  qwen-exact   Qwen's evaluation prompt exactly: chat-2 listing no tests
  chat-2-free  chat-2-listed with a free-form answer (no prefill, no stop)
  chat-2-attempt  chat-2 whose feedback turns show the failed attempt inside a fresh first-turn
               message instead of replaying it as the model's own answer
  chat-2-hint  chat-2 whose refills (slots whose repair repeated a program) sample the task with
               the failed answer's execution feedback but not its code, instead of the task alone

Repair designs are compared with multi-turn configurations (greedy-3 against greedy-3-repeats,
bon5-pt against bon5-pt-repeats: refills on and off), e.g.
    --variants chat-2,chat-2-attempt --configs greedy-1,greedy-3,greedy-3-repeats

Rows resume like every evaluation (OUT/VARIANT.greedy-1.jsonl).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from functools import partial
from pathlib import Path
from typing import Any

from mucode.engine import prompts
from mucode.engine.loading import load_generator
from mucode.engine.settings import EngineSettings
from mucode.problems import Problem
from mucode.training.evaluate import evaluate
from mucode.training.problems import humaneval_folds


def _no_tests(problem: Problem) -> Problem:
    return problem.model_copy(update={"public_tests": [], "public_io_tests": []})


def _variant(name: str, base: prompts.PromptFormat = prompts.CHAT_2, **changes: Any) -> prompts.PromptFormat:
    return dataclasses.replace(base, version=name, **changes)


LISTED = _variant("chat-2-listed", first_turn=partial(prompts.first_turn_2, listed=lambda p: p))
VARIANTS = {
    "chat-1": prompts.CHAT_1,
    "chat-2": prompts.CHAT_2,
    "chat-2-listed": LISTED,
    "qwen-exact": _variant("qwen-exact", first_turn=partial(prompts.first_turn_2, listed=_no_tests)),
    "chat-2-free": _variant("chat-2-free", LISTED, fenced_answer=False),
    "chat-2-attempt": _variant("chat-2-attempt", next_turn=prompts.attempt_turn),
    "chat-2-hint": _variant("chat-2-hint", refill_turn=prompts.hinted_start),
}


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fold", type=int, choices=(0, 1), required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--configs", default="greedy-1")
    parser.add_argument("--out", type=Path, default=Path("prompt-variants"))
    parser.add_argument(
        "--concurrency", type=int, default=1, help="problems in flight (llama.cpp and vLLM batch them)"
    )
    args = parser.parse_args()

    problems = humaneval_folds()[args.fold]
    generator = load_generator(EngineSettings())
    try:
        for name in args.variants.split(","):
            await evaluate(
                problems,
                generator,
                None,
                args.configs.split(","),
                args.out / f"fold{args.fold}" / f"{name}.json",
                problem_set=f"HumanEval fold {args.fold}, prompt {name}",
                prompt=VARIANTS[name],
                concurrency=args.concurrency,
            )
    finally:
        await generator.close()


if __name__ == "__main__":
    asyncio.run(main())
