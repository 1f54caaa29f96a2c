"""DataFrameBench's reference solutions as the package ships them (with the ``_reference_impl``
adapter and BigCodeBench's long docstrings) against what ``load_dataframebench`` makes of them
(``unwrap_reference``, then ``strip_docstrings``), each against its full unittest suite in the
scientific sandbox: the two must pass the same problems. Reports how many
each passes, every problem where they differ, and how much shorter the unwrapped ones are (what an
SFT target made of them costs to learn and to write).

    .venv/bin/python bench/reference_unwrap.py [--split train] [--library pandas] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics

from _machine import machine
from dataframebench_sandbox import run_all

from mucode.problems import Problem, dataframebench_file, iter_jsonl, load_dataframebench
from mucode.sandbox import SandboxSettings
from mucode.sandbox.environment import default_path


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", default="train")
    parser.add_argument("--library", default="pandas")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    unwrapped = load_dataframebench(args.split, args.library)
    shipped = {}
    for _, row in iter_jsonl(dataframebench_file(args.split)):
        solutions = row["ground_truth"]
        assert isinstance(solutions, dict)
        shipped[str(row["task_id"])] = str(solutions[args.library])
    wrapped = [p.model_copy(update={"reference_solution": shipped[p.id]}) for p in unwrapped]
    settings = SandboxSettings(
        workers=args.workers,
        env=str(default_path("scientific")),
        timeout_s=args.timeout,
        memory_mb=1024,
        max_memory_mb=8192,
        queue_size=len(unwrapped),  # all at once: train has 709
    )
    runs = {"wrapped": await run_all(settings, wrapped), "unwrapped": await run_all(settings, unwrapped)}
    failing = {name: {f["id"] for f in run["failures"]} for name, run in runs.items()}

    def chars(problems: list[Problem]) -> float:
        return statistics.mean(len(p.reference_solution or "") for p in problems)

    report = {
        "machine": machine(),
        "split": args.split,
        "library": args.library,
        "problems": len(unwrapped),
        "passed": {name: run["passed"] for name, run in runs.items()},
        "differ": sorted(failing["wrapped"] ^ failing["unwrapped"]),
        "mean_chars": {"wrapped": round(chars(wrapped)), "unwrapped": round(chars(unwrapped))},
        "still_wrapped": sum("_reference_impl" in (p.reference_solution or "") for p in unwrapped),
        "failures": {name: run["failures"] for name, run in runs.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['machine']}; DataFrameBench {args.split} ({args.library}), {len(unwrapped)} problems")
    print(f"passed: {report['passed']}; differ: {report['differ']}")
    print(f"mean characters: {report['mean_chars']}; still wrapped: {report['still_wrapped']}")
    for name, failures in report["failures"].items():
        for failure in failures:
            print(f"  {name} {failure['id']}: {failure['why']}")


if __name__ == "__main__":
    asyncio.run(main())
