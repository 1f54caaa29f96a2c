"""Does the served model's own likelihood of an answer pick the right one of a turn's candidates?

    .venv/bin/python bench/likelihood_rank.py \
        --model ~/.cache/mucode/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
        --traces report.bon5-pt.traces.jsonl.gz --codes codes.jsonl.gz --rows runs/likelihood/dfb.jsonl \
        [--lora generator-lora.gguf [--lora-scale 0.5]] [--split humaneval:fold0 --split humaneval:fold1]

For the first turn of every trace (the five candidates a Best-of-5 chooses from), the GGUF model
reads each answer after the conversation that produced it and gives every token's log-probability
under its raw distribution (no temperature, no top-p): the number the decoder can read for free
while it samples. Scores built from them — mean over the answer, mean over its code only, the
lowest token, length — are compared as verifiers on the oracle labels of `--codes` (`LabeledCode`
rows of `mucode train codes` for the same traces): pairwise accuracy, AUC, and Best-of-N by the
score alone against a random choice (public tests withheld from the choice). Rows, one per
candidate, are written as they are computed; a rerun skips the problems already there.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
from _machine import machine

from mucode.engine.generators.llamacpp import chat_formatter
from mucode.engine.generators.llamacpp_batch import apply_lora, token_logprob
from mucode.engine.prompts import FENCE_OPEN
from mucode.engine.trace import SolveResult, TurnRecord
from mucode.problems import iter_jsonl
from mucode.training.problems import load_problem_set
from mucode.training.schemas import LabeledCode, read_jsonl
from mucode.training.verifier import heldout_metrics

SCORES: dict[str, Callable[[dict[str, Any]], float]] = {
    "answer mean logprob": lambda r: r["answer_sum"] / max(r["answer_tokens"], 1),
    "code mean logprob": lambda r: r["code_sum"] / max(r["code_tokens"], 1),
    "answer min logprob": lambda r: r["answer_min"],
    "answer sum logprob": lambda r: r["answer_sum"],
    "shorter answer first": lambda r: -r["answer_tokens"],
    # The search's candidate 0 is the greedy answer (SolveOptions.greedy_candidate): the most
    # likely tokens one by one, so likelihood favours it; is it more than that? Earliest first is
    # also the search's tie-break without a verifier (the default, `pt+lv` with none loaded).
    "earliest candidate first": lambda r: -r["index"],
}


def token_logprobs(llama: Any, prompt: list[int], answers: list[list[int]]) -> list[np.ndarray]:
    """Each answer's tokens' log-probabilities after ``prompt``, the prompt computed once."""
    llama.reset()
    llama.eval(prompt)
    out = []
    for answer in answers:
        llama.n_tokens = len(prompt)  # eval drops the cache from here on: the previous answer
        llama.eval(answer)
        logits = llama.scores[len(prompt) - 1 : len(prompt) - 1 + len(answer)]
        out.append(np.array([token_logprob(row, token) for row, token in zip(logits, answer, strict=True)]))
    return out


def candidate_rows(
    llama: Any, format_chat: Any, turn: TurnRecord, problem_id: str, labels: dict[tuple[str, str], bool]
) -> list[dict[str, Any]]:
    chat = [m.model_dump() for m in turn.messages]
    opened = str(format_chat(messages=chat).prompt)
    # A fenced answer's opening fence was the prompt's (prefilled), not the model's.
    prefill = FENCE_OPEN if all(c.text.startswith(FENCE_OPEN) for c in turn.candidates) else ""
    prompt = llama.tokenize((opened + prefill).encode(), add_bos=True, special=True)
    texts = [c.text[len(prefill) :] for c in turn.candidates]
    answers = [llama.tokenize(text.encode(), add_bos=False, special=False) for text in texts]
    rows = []
    logprobs_of = token_logprobs(llama, prompt, answers)
    for c, text_str, answer, logprobs in zip(turn.candidates, texts, answers, logprobs_of, strict=True):
        # Byte offsets of the tokens, to tell the code's tokens from the prose around it.
        ends = np.cumsum([len(llama.detokenize([t])) for t in answer])
        text = text_str.encode()
        code = (c.code or "").strip().encode()
        start = text.find(code) if code else -1
        if start >= 0:
            stop = start + len(code)
            in_code = (ends > start) & (ends - np.diff(np.concatenate([[0], ends])) < stop)
        else:
            in_code = np.ones(len(answer), dtype=bool)
        passed = labels.get((problem_id, c.code)) if c.code else False
        rows.append({
            "problem_id": problem_id, "index": c.index, "passed": passed, "code": c.code or "",
            "public_passed": c.public_passed_count,
            "answer_tokens": len(answer), "answer_sum": float(logprobs.sum()),
            "answer_min": float(logprobs.min()) if len(answer) else 0.0,
            "code_tokens": int(in_code.sum()), "code_sum": float(logprobs[in_code].sum()),
        })  # fmt: skip
    return rows


def with_public_tests(rows: list[dict[str, Any]], score: Any) -> dict[str, float | None]:
    """The first turn's choice as the search makes it: the candidates passing the most public
    tests, then the score (``pt+lv``) or a random one of them (``pt``); the share of problems
    whose choice passes the private tests."""
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_problem.setdefault(r["problem_id"], []).append(r)
    scored = chance = 0.0
    for group in by_problem.values():
        most = max(r["public_passed"] for r in group)
        top = [r for r in group if r["public_passed"] == most]
        best = max(score(r) for r in top)
        chosen = [r["passed"] for r in top if score(r) == best]
        scored += sum(chosen) / len(chosen)
        chance += sum(r["passed"] for r in top) / len(top)
    count = len(by_problem)
    return {"pt+score": scored / count if count else None, "pt": chance / count if count else None}


def overall(rate: float | None, mixed: int, passing: int, problems: int) -> float | None:
    """A rate over the mixed problems as a pass rate over all: the others pass or fail alike."""
    return None if rate is None else round((rate * mixed + passing) / problems, 4)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="GGUF file")
    parser.add_argument("--lora", default=None, help="GGUF LoRA applied to it (a trained generator's)")
    parser.add_argument("--lora-scale", type=float, default=1.0, help="its scale (MUCODE_LORA_SCALE)")
    parser.add_argument("--traces", type=Path, required=True)
    parser.add_argument("--codes", type=Path, required=True, help="LabeledCode rows for the traces' programs")
    parser.add_argument("--rows", type=Path, required=True, help="per-candidate rows (resumable)")
    parser.add_argument("--split", action="append", default=[], help="also report on this problem set's ids")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    from llama_cpp import Llama

    labels = {(c.problem_id, c.code): c.passed for c in read_jsonl(args.codes, LabeledCode)}
    done = {str(row["problem_id"]) for _, row in iter_jsonl(args.rows)} if args.rows.exists() else set()
    threads = len(os.sched_getaffinity(0))
    llama = Llama(
        model_path=args.model, n_ctx=args.n_ctx, n_batch=512, n_threads=threads, n_threads_batch=threads,
        logits_all=True, verbose=False,
    )  # fmt: skip
    if args.lora:
        # As the engine applies it: llama.cpp frees an adapter with the weights, not on its own.
        apply_lora(llama._model.model, llama._ctx.ctx, args.lora, args.lora_scale)
    format_chat = chat_formatter(llama)
    args.rows.parent.mkdir(parents=True, exist_ok=True)
    started, scored = time.perf_counter(), 0
    with open(args.rows, "a") as out:
        for k, (_, trace) in enumerate(iter_jsonl(args.traces)):
            if args.limit is not None and k >= args.limit:
                break
            result = SolveResult.model_validate(trace)
            if result.problem_id in done:
                continue
            turn = result.turns[0]
            verdicts = {labels.get((result.problem_id, c.code)) if c.code else False for c in turn.candidates}
            if len(verdicts) == 1:
                # Every candidate alike (or unlabelled): no score changes the choice; not computed.
                rows: list[dict[str, Any]] = [{"problem_id": result.problem_id, "uniform": verdicts.pop()}]
            else:
                rows = candidate_rows(llama, format_chat, turn, result.problem_id, labels)
                scored += sum(r["answer_tokens"] for r in rows)
            for row in rows:
                out.write(json.dumps(row) + "\n")
            out.flush()
            done.add(result.problem_id)
    seconds = time.perf_counter() - started
    rows = [row for _, row in iter_jsonl(args.rows)]
    uniform = {r["problem_id"]: r["uniform"] for r in rows if "uniform" in r}
    rows = [r for r in rows if "uniform" not in r]
    splits = {"all": None, **{s: {p.id for p in load_problem_set(s)} for s in args.split}}
    report: dict[str, Any] = {
        "model": args.model, "lora": args.lora, "lora_scale": args.lora_scale, "traces": str(args.traces),
        "machine": machine(),
        "scored_candidates": len(rows), "unlabelled_problems": sum(v is None for v in uniform.values()),
        "answer_tokens_per_second_this_run": round(scored / seconds, 1) if scored else None,
    }  # fmt: skip
    for (split, ids), sampled in product(splits.items(), (False, True)):
        part = [r for r in rows if ids is None or r["problem_id"] in ids]
        part = [r for r in part if not (sampled and r["index"] == 0)]
        kinds: dict[str, set[bool]] = {}
        for r in part:
            kinds.setdefault(r["problem_id"], set()).add(r["passed"])
        alike = {p: v for p, v in uniform.items() if ids is None or p in ids}
        alike |= {p: next(iter(k)) for p, k in kinds.items() if len(k) == 1}
        part = [r for r in part if r["problem_id"] not in alike]
        counts = (len(kinds) - len(alike.keys() & kinds.keys()), sum(v is True for v in alike.values()),
                  len(kinds | alike))  # fmt: skip
        codes = [LabeledCode(problem_id=r["problem_id"], prompt="", code=r["code"], passed=r["passed"])
                 for r in part]  # fmt: skip

        metrics = {}
        for name, score in SCORES.items():
            m = heldout_metrics(codes, [score(r) for r in part]) | with_public_tests(part, score)
            metrics[name] = {
                "pairwise_accuracy": m["pairwise_accuracy"], "auc_on_mixed_problems": m["auc"],
                "best_of_by_score": overall(m["selected_pass_rate"], *counts),
                "random": overall(m["random_pass_rate"], *counts),
                "pt+score": overall(m["pt+score"], *counts), "pt": overall(m["pt"], *counts),
            }  # fmt: skip
        label = f"{split}, sampled candidates only" if sampled else split
        report[label] = {
            "problems": counts[2],
            "mixed": counts[0],
            "all_pass": counts[1],
            **metrics,
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
