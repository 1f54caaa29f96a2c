"""How well does the probe verifier (a linear head on the frozen base's hidden states) rank
programs of problems it never saw, and what does it cost on this machine?

    .venv/bin/python bench/verifier_probe.py --train codes-a.jsonl --heldout codes-b.jsonl \
        --base ~/.cache/mucode/models/Qwen2.5-Coder-0.5B-Instruct-bf16 --cache runs/probe

Both files are `LabeledCode` JSONL (`mucode train codes`). The features of every program are
computed once and kept in CACHE/features.pt (later runs on other files reuse those they share).
For each head (--losses: Bradley–Terry on pairs, BCE on labels, or both) the penalty is chosen by
--choose-by on a seeded 20 % of the --train problems, the head is then fitted on all of them and
scored on --heldout: the held-out figures are never looked at while choosing.

--references SET adds the reference solution of every --train problem (from that problem set) as a
correct program: positives for problems where the model never passed. --canonical rewrites every
program (both files, the references) as ``ast`` prints it, docstrings dropped, so that comments,
formatting and prose cannot tell a reference from a model's sample; the held-out figures then say
whether what was learned still ranks the model's own programs.
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path
from typing import Any

import torch

from mucode.engine.verifier import load_probe_base, probe_scores, verifier_input
from mucode.training.problems import load_problem_set
from mucode.training.relabel import reference_codes
from mucode.training.schemas import LabeledCode, read_jsonl, split_by_problem
from mucode.training.verifier import (
    VerifierConfig,
    code_rows,
    fit_probe,
    heldout_metrics,
    probe_features,
    probe_targets,
    sample_pairs,
)


def canonical(code: str) -> str:
    """The program as ``ast`` prints it, without docstrings (code that does not parse as is)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def prepared(codes: list[LabeledCode], rewrite: bool) -> list[LabeledCode]:
    """The programs, rewritten when asked, each (problem, program) once."""
    seen: dict[tuple[str, str], LabeledCode] = {}
    for c in codes:
        code = canonical(c.code) if rewrite else c.code
        seen.setdefault((c.problem_id, code), c.model_copy(update={"code": code}))
    return list(seen.values())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--regs", default="1e-4,1e-3,1e-2,1e-1,1")
    parser.add_argument("--pairs-per-problem", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--losses", default="bt,bce,bt+bce", help="Heads to fit: bt, bce, bt+bce.")
    parser.add_argument("--choose-by", choices=["pairwise_accuracy", "auc"], default="pairwise_accuracy")
    parser.add_argument("--references", default=None, help="problem set of --train: add its references")
    parser.add_argument("--canonical", action="store_true", help="rewrite every program (see above)")
    parser.add_argument("--mixed-only", action="store_true", help="held out: problems with both kinds only")
    args = parser.parse_args()

    train, held = read_jsonl(args.train, LabeledCode), read_jsonl(args.heldout, LabeledCode)
    if args.references:
        ids = {c.problem_id for c in train}
        train += reference_codes([p for p in load_problem_set(args.references) if p.id in ids])
    train, held = prepared(train, args.canonical), prepared(held, args.canonical)
    if args.mixed_only:
        kinds: dict[str, set[bool]] = {}
        for c in held:
            kinds.setdefault(c.problem_id, set()).add(c.passed)
        held = [c for c in held if len(kinds[c.problem_id]) == 2]
    texts = list(dict.fromkeys(verifier_input(c.prompt, c.code) for c in [*train, *held]))
    row = {text: k for k, text in enumerate(texts)}
    args.cache.mkdir(parents=True, exist_ok=True)
    cached = args.cache / "features.pt"
    saved = torch.load(cached) if cached.exists() else {"texts": [], "features": None, "seconds": 0.0}
    known = {text: k for k, text in enumerate(saved["texts"])}
    if missing := [text for text in texts if text not in known]:
        config = VerifierConfig(base=args.base, out=args.cache, max_length=args.max_length)
        model, tokenizer = load_probe_base(args.base)
        started = time.perf_counter()
        computed = probe_features(model, tokenizer, missing, config)
        saved["seconds"] += time.perf_counter() - started
        saved["texts"] += missing
        parts = [f for f in (saved["features"], computed) if f is not None]
        saved["features"] = torch.cat(parts)
        known = {text: k for k, text in enumerate(saved["texts"])}
        torch.save(saved, cached)
    features = saved["features"][torch.tensor([known[text] for text in texts])]
    seconds_per_program = saved["seconds"] / len(saved["texts"])

    def scored(head: dict[str, Any], codes: list[LabeledCode]) -> dict[str, float | None]:
        return heldout_metrics(codes, probe_scores(head, features)[code_rows(codes, row)].tolist())

    def fit(codes: list[LabeledCode], loss: str, reg: float) -> dict[str, Any]:
        targets = probe_targets(codes, sample_pairs(codes, args.pairs_per_problem, seed=0), row, loss)
        return fit_probe(features, code_rows(codes, row), reg, **targets)[0]

    inner_train, inner_held = split_by_problem(train, 0.2, seed=0)
    losses = {}
    for loss in args.losses.split(","):
        regs = map(float, args.regs.split(","))
        tuning = {reg: scored(fit(inner_train, loss, reg), inner_held) for reg in regs}
        best = max(tuning, key=lambda reg: tuning[reg][args.choose_by] or 0.0)
        head = fit(train, loss, best)
        losses[loss] = {
            "tuning (inner 20 % of --train problems)": {str(k): v for k, v in tuning.items()},
            "chosen_reg": best,
            "heldout_metrics": scored(head, held),
            "training_fit_metrics": scored(head, train),
        }
    report = {
        "train": {"file": str(args.train), "references": args.references, "canonical": args.canonical,
                  "programs": len(train), "correct": sum(c.passed for c in train),
                  "pairs": len(sample_pairs(train, args.pairs_per_problem, seed=0))},
        "heldout": {"file": str(args.heldout), "mixed_only": args.mixed_only, "programs": len(held),
                    "correct": sum(c.passed for c in held)},
        f"losses (reg chosen by {args.choose_by} on the inner split)": losses,
        # The likelihood features (the last four columns) alone, each as the score, untrained.
        "single_features (train / heldout)": {
            name: [heldout_metrics(codes, (sign * features[code_rows(codes, row), column]).tolist())
                   for codes in (train, held)]
            for name, column, sign in (("mean logprob", -4, 1), ("min logprob", -3, 1),
                                       ("share below 10 %, fewer first", -2, -1), ("shorter first", -1, -1))
        },
        "feature_seconds_per_program": round(seconds_per_program, 3),
        "threads": torch.get_num_threads(),
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
