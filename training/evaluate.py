"""Pass rates of the µCode search on a problem set, graded by the private tests the model never
sees: single-turn greedy, multi-turn greedy, and multi-turn Best-of-N with each selection rule,
with pass@1 after every turn (the answer had the search stopped there). One JSONL row per problem
and configuration is written as soon as it is known, and a rerun skips rows already there, so an
interrupted evaluation resumes. The report is JSON plus a PNG plot of pass rate per turn.

``mucode eval`` and ``bench/humaneval.py`` both run this.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any, TextIO

from mucode.engine.generators.base import Generator
from mucode.engine.options import SolveOptions
from mucode.engine.prompts import DEFAULT, PromptFormat
from mucode.engine.search import SearchEngine
from mucode.engine.shape import shape
from mucode.engine.trace import SolveResult
from mucode.engine.verifier import Verifier
from mucode.problems import Problem
from mucode.sandbox import ExecutionRequest, SandboxPool

from .sample_cache import SampleCache

CONFIGS: dict[str, dict[str, Any]] = {
    "greedy-1": {"n": 1, "turns": 1, "temperature": 0.0, "selection": "pt"},
    "greedy-3": {"n": 1, "turns": 3, "temperature": 0.0, "selection": "pt"},
    # Feedback turns that may repeat a program already run, as in the paper (no refills).
    "greedy-3-repeats": {"n": 1, "turns": 3, "temperature": 0.0, "selection": "pt", "refill_repeats": False},
    "bon5-random": {"n": 5, "turns": 3, "temperature": 0.7, "selection": "random"},
    "bon5-lv": {"n": 5, "turns": 3, "temperature": 0.7, "selection": "lv"},
    "bon5-pt": {"n": 5, "turns": 3, "temperature": 0.7, "selection": "pt"},
    "bon5-pt-repeats": {"n": 5, "turns": 3, "temperature": 0.7, "selection": "pt", "refill_repeats": False},
    # The paper's sampling: all five candidates at temperature 0.7, none of them greedy.
    "bon5-pt-sampled": {"n": 5, "turns": 3, "temperature": 0.7, "selection": "pt", "greedy_candidate": False},
    "bon5-pt+lv": {"n": 5, "turns": 3, "temperature": 0.7, "selection": "pt+lv"},
    # Feedback turns keep K slots for fresh first-turn samples (a generator that answers better
    # than it repairs).
    "bon5-pt+lv-fresh2": {"n": 5, "turns": 3, "temperature": 0.7, "selection": "pt+lv", "fresh_samples": 2},
    "bon5-pt+lv-fresh4": {"n": 5, "turns": 3, "temperature": 0.7, "selection": "pt+lv", "fresh_samples": 4},
    # Execution agreement on calls the generator writes (for problems without tests).
    "bon5-agree": {"n": 5, "turns": 3, "temperature": 0.7, "selection": "agree"},
}


async def grade(pool: SandboxPool, problem: Problem, code: str | None) -> bool:
    if not code:
        return False
    result = await pool.execute(ExecutionRequest(code=code, tests=problem.private_tests))
    return result.passed


async def explain(pool: SandboxPool, problem: Problem, result: SolveResult) -> dict[str, Any]:
    """Why a search ended as it did, from its trace and the private tests: whether any candidate of
    any turn was right (coverage), the answer had the search stopped after each turn, and what the
    feedback turns did. A feedback turn's *samples* are what the model wrote (refilled repeats
    included); its *slots* are the candidates the search went on with."""
    codes = {c.code for t in result.turns for c in t.candidates}
    verdicts = dict(zip(codes, await asyncio.gather(*(grade(pool, problem, c) for c in codes)), strict=True))
    by_turn = [verdicts[t.chosen.code] for t in result.turns]
    by_turn += [by_turn[-1]] * (result.options.turns - len(by_turn))
    samples = repeats = improves = slots = slot_repeats = 0
    for before, turn in pairwise(result.turns):
        fixed, fixed_shape = before.chosen, shape(before.chosen.code)
        for c in [*turn.replaced, *(c for c in turn.candidates if not c.refill)]:
            samples += 1
            repeats += shape(c.code) == fixed_shape
            improves += c.public_passed_count > fixed.public_passed_count
        slots += len(turn.candidates)
        slot_repeats += sum(c.repeat_of_turn is not None for c in turn.candidates)
    passed = verdicts[result.final_code]
    return {
        "passed": passed,
        "passed_by_turn": by_turn,
        # The answer is a refill: a fresh first-turn sample, not the model's repair of a program.
        "passed_by_refill": passed and result.turns[-1].chosen.refill,
        "covered": any(verdicts.values()),
        "feedback_samples": samples,
        "feedback_repeats": repeats,
        "feedback_improves": improves,
        "feedback_slots": slots,
        "feedback_slot_repeats": slot_repeats,
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


async def run_config(
    engine: SearchEngine,
    pool: SandboxPool,
    problems: list[Problem],
    name: str,
    max_tokens: int,
    seed: int,
    rows_path: Path,
    concurrency: int = 1,
) -> dict[str, Any]:
    """Runs one configuration, ``concurrency`` problems at a time (a batching backend such as vLLM
    serves them together), one JSONL row per problem as it finishes, and its whole trace (every
    turn and candidate, for finding out why a problem failed) beside it in ROWS.traces.jsonl;
    rows already in ``rows_path`` (an interrupted run) are kept, not rerun."""
    options = SolveOptions(**CONFIGS[name], max_tokens=max_tokens, seed=seed)
    done = {}
    # A row from before an option existed reads its default; one with an option since removed reruns.
    current, defaults = options.model_dump(mode="json"), SolveOptions().model_dump(mode="json")
    if rows_path.exists():
        for line in rows_path.read_text().splitlines():
            row = json.loads(line)
            # Rows without the explanation columns are older: rerun them (their samples are cached).
            same_prompt = row.get("prompt_version") == engine.prompt.version
            if same_prompt and "covered" in row and {**defaults, **row["options"]} == current:
                done[row["problem"]] = row
    slots = asyncio.Semaphore(concurrency)

    async def run_one(problem: Problem, out: TextIO, traces: TextIO) -> None:
        async with slots:
            started = time.perf_counter()
            result = await engine.solve(problem, options)
            why = await explain(pool, problem, result)
        row = {
            "problem": problem.id,
            "prompt_version": result.prompt_version,
            "options": options.model_dump(mode="json"),
            **why,
            "completion_tokens": result.usage.completion_tokens,
            "turns": len(result.turns),
            "seconds": round(time.perf_counter() - started, 2),
        }
        done[problem.id] = row
        traces.write(result.model_dump_json() + "\n")
        traces.flush()
        out.write(json.dumps(row) + "\n")
        out.flush()
        passed = sum(r["passed"] for r in done.values())
        print(
            f"  {name} {len(done)}/{len(problems)} {problem.id}: {'pass' if row['passed'] else 'fail'} "
            f"({passed}/{len(done)} so far)",
            flush=True,
        )

    todo = [p for p in problems if p.id not in done]
    started = time.perf_counter()
    with rows_path.open("a") as out, rows_path.with_suffix(".traces.jsonl").open("a") as traces:
        await asyncio.gather(*(run_one(p, out, traces) for p in todo))
    minutes = (time.perf_counter() - started) / 60
    return summary(name, options, [done[p.id] for p in problems]) | {
        # Speed of this invocation only: rows kept from an interrupted run took unknown wall time.
        "problems_run_now": len(todo),
        "minutes": round(minutes, 1),
        "problems_per_minute": round(len(todo) / minutes, 2) if todo else None,
    }


def summary(name: str, options: SolveOptions, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A configuration's numbers over its rows (one per problem)."""

    def total(key: str) -> int:
        return sum(r[key] for r in rows)

    passed = total("passed")
    return {
        "config": name,
        "options": options.model_dump(),
        "problems": len(rows),
        "passed": passed,
        "pass_rate": round(100 * passed / len(rows), 1),
        "pass_rate_by_turn": [
            round(100 * sum(r["passed_by_turn"][t] for r in rows) / len(rows), 1)
            for t in range(options.turns)
        ],
        # Right at the end but not after turn 1: what the feedback turns bought.
        "solved_after_feedback": sum(r["passed"] and not r["passed_by_turn"][0] for r in rows),
        # Of those, the ones whose answer is a refill (a first-turn answer that was already right
        # by the private tests, though not by the public ones, is no refill's doing).
        "solved_by_refills": sum(r["passed_by_refill"] and not r["passed_by_turn"][0] for r in rows),
        "coverage": total("covered"),  # some candidate of some turn was right
        "selection_losses": sum(r["covered"] and not r["passed"] for r in rows),
        "feedback_samples": total("feedback_samples"),
        "repeat_share": _share(total("feedback_repeats"), total("feedback_samples")),
        "improve_share": _share(total("feedback_improves"), total("feedback_samples")),
        "slot_repeat_share": _share(total("feedback_slot_repeats"), total("feedback_slots")),
        "completion_tokens": total("completion_tokens"),
        "tokens_per_solved": round(total("completion_tokens") / passed) if passed else None,
        "seconds_per_solved": round(total("seconds") / passed, 1) if passed else None,
        "mean_turns": round(total("turns") / len(rows), 2),
    }


class EvaluationBusy(ValueError):
    """Another evaluation is writing the same report."""


@contextlib.contextmanager
def one_writer(out: Path) -> Iterator[None]:
    """Holds OUT-stem.lock (an advisory lock the OS drops when the process dies) for as long as an
    evaluation writes OUT's rows. Two evaluations appending to the same rows would each run what
    the other is running and leave two rows, maybe disagreeing, for a problem (it happened)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.with_suffix(".lock")
    with lock.open("w") as held:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EvaluationBusy(
                f"another evaluation is writing {out} (it holds {lock}); wait for it to finish "
                "or give another --out"
            ) from None
        yield


def runnable(names: list[str], verifier: Verifier | None) -> list[str]:
    """The configurations that make sense here: the verifier rules need a verifier."""
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown configurations {unknown}; known: {', '.join(CONFIGS)}")
    return [n for n in names if verifier is not None or not n.endswith("lv")]


async def evaluate(
    problems: list[Problem],
    generator: Generator,
    verifier: Verifier | None,
    names: list[str],
    out: Path,
    *,
    problem_set: str,
    max_tokens: int = 768,
    seed: int = 0,
    concurrency: int = 1,
    prompt: PromptFormat = DEFAULT,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Runs ``names`` on ``problems``; writes OUT (JSON), OUT-stem.CONFIG.jsonl rows and
    OUT-stem.CONFIG.traces.jsonl traces, the shared samples (OUT-stem.samples.jsonl, see
    sample_cache) and a plot; one evaluation at a time per OUT (``one_writer``)."""
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{len(os.sched_getaffinity(0))} cores",
        "generator": generator.description,
        "verifier": verifier.name if verifier else "none",
        "prompt_version": prompt.version,
        "problems": f"{problem_set}: {len(problems)} problems (private tests grade)",
        "results": [],
    }
    with one_writer(out):
        async with SandboxPool() as pool:
            engine = SearchEngine(
                SampleCache(generator, out.with_name(f"{out.stem}.samples.jsonl")), pool, verifier, prompt
            )
            for name in runnable(names, verifier):
                rows = out.with_name(f"{out.stem}.{name}.jsonl")
                report["results"].append(
                    await run_config(engine, pool, problems, name, max_tokens, seed, rows, concurrency)
                )
                out.write_text(json.dumps(report, indent=2))
    plot(report, out.with_suffix(".png"))
    log(table(report))
    return report


def table(report: dict[str, Any]) -> str:
    """One line per configuration. "after fb": solved after turn 1 (of them by refills);
    "repeats": feedback-turn samples that repeat the program they were asked to fix, and the share
    of the turn's candidates that still repeat an earlier program after refills."""

    def share(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f}%"

    lines = [
        f"{report['generator']} ({report['prompt_version']}) on {report['problems']}",
        f"{'config':16s} {'pass %':>6s}  {'by turn':17s} {'after fb':>9s} {'covered':>7s} {'sel loss':>8s} "
        f"{'repeats':>9s} {'tokens':>8s} {'tok/solved':>10s} {'s/solved':>8s}",
    ]
    for r in report["results"]:
        by_turn = " ".join(f"{p:5.1f}" for p in r["pass_rate_by_turn"])
        after = f"{r['solved_after_feedback']} ({r['solved_by_refills']})"
        repeats = f"{share(r['repeat_share'])}/{share(r['slot_repeat_share'])}"
        lines.append(
            f"{r['config']:16s} {r['pass_rate']:6.1f}  {by_turn:17s} {after:>9s} {r['coverage']:7d} "
            f"{r['selection_losses']:8d} {repeats:>9s} {r['completion_tokens']:8d} "
            f"{r['tokens_per_solved'] or 0:10d} {r['seconds_per_solved'] or 0:8.1f}"
        )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """Pass rate after each turn, one line per configuration."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for r in report["results"]:
        turns = range(1, len(r["pass_rate_by_turn"]) + 1)
        ax.plot(list(turns), r["pass_rate_by_turn"], marker="o", label=r["config"])
    ax.set_xlabel("turn")
    ax.set_ylabel("pass rate on private tests (%)")
    ax.set_title(report["problems"], fontsize=9)
    ax.set_xticks(range(1, 1 + max((len(r["pass_rate_by_turn"]) for r in report["results"]), default=1)))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
