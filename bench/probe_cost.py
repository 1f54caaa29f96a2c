"""What one candidate costs the probe verifier on this machine: the features of each problem's
candidates read together (the problem statement's pass shared, as the server scores a turn's
candidates) against each candidate alone (one whole pass per program), on the same programs in
the same run, and how far the two disagree.

    .venv/bin/python bench/probe_cost.py \
        --traces docs/bench-data/humaneval-164-2026-11-26/humaneval.bon5-pt.traces.jsonl.gz \
        --problems humaneval --base ~/.cache/mucode/models/Qwen2.5-Coder-0.5B-Instruct-bf16 --limit 8

Candidates are the first turn's distinct programs of each problem in the traces (`mucode eval`'s).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _machine import machine

from mucode.engine.trace import SolveResult
from mucode.engine.verifier import load_probe_base, program_features, verifier_input
from mucode.training.problems import load_problem_set
from mucode.training.schemas import read_jsonl


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=Path, required=True)
    parser.add_argument("--problems", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument(
        "--limit", type=int, default=8, help="Problems (with at least two distinct programs)."
    )
    parser.add_argument("--max-length", type=int, default=1024)
    args = parser.parse_args()

    prompts = {p.id: p.prompt for p in load_problem_set(args.problems)}
    groups: list[list[str]] = []
    for trace in read_jsonl(args.traces, SolveResult):
        codes = list(dict.fromkeys(c.code for c in trace.turns[0].candidates if c.code))
        if len(codes) >= 2 and len(groups) < args.limit:
            groups.append([verifier_input(prompts[trace.problem_id], code) for code in codes])
    model, tokenizer = load_probe_base(args.base)
    seconds = {"together": 0.0, "alone": 0.0}
    difference = 0.0
    with torch.inference_mode():
        for texts in groups:  # alternated, so that a busy moment of the machine hits both
            started = time.perf_counter()
            together = program_features(model, tokenizer, texts, args.max_length)
            seconds["together"] += time.perf_counter() - started
            started = time.perf_counter()
            alone = torch.cat([program_features(model, tokenizer, [text], args.max_length) for text in texts])
            seconds["alone"] += time.perf_counter() - started
            difference = max(difference, float((together - alone).abs().max()))
    programs = sum(len(texts) for texts in groups)
    tokens = [len(tokenizer(t)["input_ids"]) for texts in groups for t in texts]
    report = {
        "machine": machine(),
        "problems": len(groups),
        "programs": programs,
        "tokens_per_program": round(sum(tokens) / len(tokens), 1),
        "seconds_per_program_together": round(seconds["together"] / programs, 3),
        "seconds_per_program_alone": round(seconds["alone"] / programs, 3),
        "speedup": round(seconds["alone"] / seconds["together"], 2),
        "max_feature_difference": difference,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
