"""Stage 1, rollouts: multi-turn episodes of a generator on training problems, through the very
search engine the server runs (one candidate per turn: a trajectory). Every program is then
labelled by the oracle — public and private tests — which never reaches the engine: the model
sees only public tests and their feedback, and only public tests end an episode.

Rows are appended as they finish; a rerun skips the (problem, index) pairs already written, so a
crash costs at most the episode in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, Field

from mucode.engine.generators.base import Generator
from mucode.engine.options import SolveOptions
from mucode.engine.search import SearchEngine
from mucode.engine.trace import SolveResult
from mucode.problems import Problem
from mucode.sandbox import ExecutionRequest, SandboxPool

from .schemas import LabeledCode, read_jsonl

Progress = Callable[[str, int, int], None]


class Rollout(BaseModel):
    problem_id: str
    iteration: int
    index: int = Field(..., description="Which rollout of this problem in this iteration (seeds it).")
    trace: SolveResult = Field(..., description="The episode, exactly as the server would record it.")
    labels: list[list[bool]] = Field(..., description="Oracle label of every candidate, per turn.")
    success: bool = Field(..., description="The episode's final code passes the public and private tests.")


class Oracle:
    """Public + private tests in the sandbox, each distinct program once."""

    def __init__(self, pool: SandboxPool) -> None:
        self.pool = pool
        self.seen: dict[tuple[str, str], bool] = {}

    async def label(self, problem: Problem, code: str | None) -> bool:
        if not code:
            return False
        key = (problem.id, code)
        if key not in self.seen:
            request = ExecutionRequest(
                code=code,
                tests=problem.public_tests + problem.private_tests,
                io_tests=problem.public_io_tests + problem.private_io_tests,
            )
            self.seen[key] = (await self.pool.execute(request)).passed
        return self.seen[key]


LABEL_CONCURRENCY = 32  # programs handed to the sandbox at once: well inside its queue (256)


async def label_traces(
    traces: list[SolveResult], problems: dict[str, Problem], pool: SandboxPool
) -> list[LabeledCode]:
    """Every distinct program of search traces (an evaluation's, the server's) with its oracle
    label: the candidates a verifier has to rank in practice, e.g. as a held-out set."""
    oracle = Oracle(pool)
    programs = list(
        dict.fromkeys(
            (trace.problem_id, c.code)
            for trace in traces
            for turn in trace.turns
            for c in turn.candidates
            if c.code
        )
    )
    slots = asyncio.Semaphore(LABEL_CONCURRENCY)

    async def label(pid: str, code: str) -> bool:
        async with slots:
            return await oracle.label(problems[pid], code)

    labels = await asyncio.gather(*(label(pid, code) for pid, code in programs))
    return [
        LabeledCode(problem_id=pid, prompt=problems[pid].prompt, code=code, passed=label)
        for (pid, code), label in zip(programs, labels, strict=True)
    ]


async def collect_rollouts(
    problems: list[Problem],
    engine: SearchEngine,
    pool: SandboxPool,
    options: SolveOptions,
    per_problem: int,
    path: Path,
    iteration: int,
    progress: Progress | None = None,
    concurrency: int = 1,
) -> list[Rollout]:
    """``concurrency`` episodes in flight (a batching backend such as vLLM serves them together);
    each is seeded by (iteration, index), so the order they finish in changes nothing."""
    done = {(r.problem_id, r.index): r for r in read_jsonl(path, Rollout)} if path.exists() else {}
    oracle = Oracle(pool)
    total = len(problems) * per_problem
    slots = asyncio.Semaphore(concurrency)

    async def episode(problem: Problem, index: int, out: TextIO) -> None:
        public_only = problem.model_copy(update={"private_tests": [], "private_io_tests": []})
        seed = options.seed + 7919 * iteration + 104729 * index
        async with slots:
            trace = await engine.solve(public_only, options.model_copy(update={"seed": seed}))
            labels = [[await oracle.label(problem, c.code) for c in turn.candidates] for turn in trace.turns]
            success = await oracle.label(problem, trace.final_code)
        rollout = Rollout(
            problem_id=problem.id,
            iteration=iteration,
            index=index,
            trace=trace,
            labels=labels,
            success=success,
        )
        out.write(rollout.model_dump_json() + "\n")
        out.flush()
        done[(problem.id, index)] = rollout
        if progress:
            progress("rollouts", len(done), total)

    todo = [(p, i) for p in problems for i in range(per_problem) if (p.id, i) not in done]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        await asyncio.gather(*(episode(p, i, out) for p, i in todo))
    return [done[(p.id, i)] for p in problems for i in range(per_problem)]


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` as (K, N), 0 ≤ K < N; a ValueError that says what is wrong otherwise."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise ValueError(f"--shard {text!r}: expected K/N with 0 <= K < N, e.g. 0/4")
    return int(index), int(count)


def rollout_options(
    turns: int = 3, temperature: float = 0.7, max_tokens: int = 768, seed: int = 0
) -> SolveOptions:
    """One candidate per turn: each episode is one trajectory of the policy (paper defaults). No
    refills: a later turn is the policy's answer to the feedback, which is what training learns
    from, even when it repeats itself."""
    return SolveOptions(
        n=1,
        turns=turns,
        selection="random",
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        refill_repeats=False,
    )


async def rollout_stage(
    problems: list[Problem],
    generator: Generator,
    path: Path,
    *,
    iteration: int,
    per_problem: int,
    options: SolveOptions,
    progress: Progress | None = None,
    concurrency: int = 1,
) -> list[Rollout]:
    """The stage on its own sandbox; closes the generator when done."""
    async with SandboxPool() as pool:
        try:
            engine = SearchEngine(generator, pool)
            return await collect_rollouts(
                problems, engine, pool, options, per_problem, path, iteration, progress, concurrency
            )
        finally:
            await generator.close()
