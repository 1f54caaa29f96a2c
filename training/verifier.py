"""Train the verifier R(problem, code), top to bottom, in one of two designs.

``classifier``: a Hugging Face sequence-classification model with one output (read at the last
non-pad token, like the server's ``HFVerifier``), fine-tuned in full or as a LoRA adapter (PEFT)
with the head trained in full. ``probe``: the base model frozen, its last hidden layer read once
per program (``program_features``), and only a linear head on it trained (L-BFGS, seconds). Both
read ``verifier_input(problem, code)`` — the very text the server scores. Loss: Bradley–Terry on
(correct, incorrect) pairs of the same problem, -log σ(r⁺ − r⁻) plus a small penalty (the
classifier's scores, as in the paper; the probe's weights), pointwise BCE on the labels, or both
summed (``bt+bce``: scores that also compare across problems). Pairs are sampled with a seed.
Some problems are held out (never trained on) to report pairwise accuracy and AUC. The classifier
trains data-parallel under ``torchrun`` / ``accelerate launch``.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mucode.engine.loading import compute_dtype
from mucode.engine.verifier import (
    CODE_MARKER,
    PROBE_CONFIG,
    PROBE_WEIGHTS,
    load_probe_base,
    probe_scores,
    program_features,
    verifier_input,
    verifier_tokenizer,
)

from .schemas import LabeledCode, Pair, split_by_problem

Progress = Callable[[str, int, int], None]


class VerifierConfig(BaseModel):
    base: str = Field(..., description="Base model: HF folder or hub id (the generator's base, or smaller).")
    out: Path
    design: Literal["classifier", "probe"] = "classifier"
    loss: Literal["bt", "bce", "bt+bce"] = Field(
        "bt",
        description="bt: Bradley–Terry on pairs; bce: pointwise on the labels; bt+bce: both summed "
        "(pairs for the classifier, whose BCE is on each pair's two programs).",
    )
    lora: bool = Field(False, description="classifier: a LoRA adapter instead of the full model.")
    lora_rank: int = 16
    lr: float = 1e-5
    epochs: int = 2
    pairs_per_problem: int = 32
    batch_size: int = 8
    micro_batch_size: int = Field(
        1, ge=1, description="Pairs (or codes) per forward pass; gradients accumulate up to batch_size."
    )
    reg: float = 1e-3
    max_length: int = 1024
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="classifier: as SFTConfig.precision (bfloat16 autocast where the CPU has it)."
    )
    holdout: float = Field(0.2, ge=0.0, lt=1.0, description="Share of problems held out for the metrics.")
    seed: int = 0


class VerifierReport(BaseModel):
    base: str
    design: str = "classifier"
    loss: str
    lora: bool
    train_problems: int
    heldout_problems: int
    heldout_programs: int | None = Field(
        None, description="What the held-out metrics read: those problems' sampled programs, no references."
    )
    train_examples: int
    pairwise_accuracy: float | None = Field(None, description="Held out: correct scored above incorrect.")
    auc: float | None = Field(None, description="Held out: ROC AUC of the scores against the labels.")
    selected_pass_rate: float | None = Field(
        None,
        description="Held out: share of problems whose top-scored program passes (choice by the verifier).",
    )
    random_pass_rate: float | None = Field(
        None, description="Held out: the same for a random choice (the mean share of passing programs)."
    )
    final_loss: float
    seconds: float
    processes: int = Field(1, description="Data-parallel processes that trained (torchrun, accelerate).")


def sample_pairs(codes: list[LabeledCode], per_problem: int, seed: int) -> list[Pair]:
    """Up to ``per_problem`` distinct (correct, incorrect) pairs per problem, seeded."""
    rng = random.Random(seed)
    by_problem: dict[str, list[LabeledCode]] = defaultdict(list)
    for c in codes:
        by_problem[c.problem_id].append(c)
    pairs = []
    for problem_id in sorted(by_problem):
        group = by_problem[problem_id]
        good = sorted({c.code for c in group if c.passed})
        bad = sorted({c.code for c in group if not c.passed})
        combos = [(g, b) for g in good for b in bad]
        rng.shuffle(combos)
        prompt = group[0].prompt
        pairs += [
            Pair(problem_id=problem_id, prompt=prompt, chosen=g, rejected=b) for g, b in combos[:per_problem]
        ]
    return pairs


def sampled(codes: list[LabeledCode]) -> list[LabeledCode]:
    """The programs a held-out metric reads: a model's samples, not reference solutions. With
    references among the positives, verifiers with random weights scored held-out pairwise accuracy
    0.69 (classifier) and 0.92 (probe) on DataFrameBench train (benchmarks.md)."""
    return [c for c in codes if not c.reference]


def auc(scores: list[float], labels: list[bool]) -> float | None:
    """ROC AUC as the chance a correct program outscores an incorrect one (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def load_model(config: VerifierConfig) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification

    tokenizer = verifier_tokenizer(config.base)
    # A fresh one-output head on the base, every time (the paper re-initialises each iteration).
    model = AutoModelForSequenceClassification.from_pretrained(config.base, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    if config.lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            task_type="SEQ_CLS",
            r=config.lora_rank,
            lora_alpha=2 * config.lora_rank,
            target_modules="all-linear",
        )
        model = get_peft_model(model, lora)  # SEQ_CLS keeps the new head trainable in full
    return model, tokenizer


def score_texts(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> Any:
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
    return model(**batch.to(next(model.parameters()).device)).logits[:, 0].float()


def heldout_metrics(codes: list[LabeledCode], scores: list[float]) -> dict[str, float | None]:
    """Pairwise accuracy within each problem (correct above incorrect; ties half), AUC, and what
    choosing by the scores alone buys: the share of problems whose top-scored program passes
    (a tie at the top counts as a random choice among the tied) against a random choice."""
    by_problem: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for c, s in zip(codes, scores, strict=True):
        by_problem[c.problem_id].append((s, c.passed))
    right = total = 0.0
    selected = chance = 0.0
    for group in by_problem.values():
        for sp, yp in group:
            for sn, yn in group:
                if yp and not yn:
                    total += 1
                    right += 1.0 if sp > sn else 0.5 if sp == sn else 0.0
        best = max(s for s, _ in group)
        top = [y for s, y in group if s == best]
        selected += sum(top) / len(top)
        chance += sum(y for _, y in group) / len(group)
    problems = len(by_problem)
    return {
        "pairwise_accuracy": right / total if total else None,
        "auc": auc(scores, [c.passed for c in codes]) if codes else None,
        "selected_pass_rate": selected / problems if problems else None,
        "random_pass_rate": chance / problems if problems else None,
    }


def evaluate(
    model: Any, tokenizer: Any, codes: list[LabeledCode], config: VerifierConfig
) -> dict[str, float | None]:
    import torch

    model.eval()
    scores: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(codes), config.batch_size):
            chunk = codes[start : start + config.batch_size]
            texts = [verifier_input(c.prompt, c.code) for c in chunk]
            scores += score_texts(model, tokenizer, texts, config.max_length).tolist()
    return heldout_metrics(codes, scores)


def batch_loss(model: Any, tokenizer: Any, batch: list[Any], config: VerifierConfig) -> Any:
    """Mean Bradley–Terry loss of a batch of pairs (plus their labels' BCE for ``bt+bce``), or
    mean BCE of a batch of labelled codes."""
    import torch

    if config.loss != "bce":
        texts = [verifier_input(p.prompt, p.chosen) for p in batch] + [
            verifier_input(p.prompt, p.rejected) for p in batch
        ]
        scores = score_texts(model, tokenizer, texts, config.max_length)
        chosen, rejected = scores[: len(batch)], scores[len(batch) :]
        loss = -torch.nn.functional.logsigmoid(chosen - rejected).mean()
        if config.loss == "bt+bce":
            # The labels too (-log σ(r⁺) - log σ(-r⁻)), so scores also compare across problems;
            # they anchor the scores, so no penalty.
            logsigmoid = torch.nn.functional.logsigmoid
            return loss - (logsigmoid(chosen) + logsigmoid(-rejected)).mean() / 2
        return loss + config.reg * (chosen.pow(2) + rejected.pow(2)).mean() / 2
    texts = [verifier_input(c.prompt, c.code) for c in batch]
    scores = score_texts(model, tokenizer, texts, config.max_length)
    labels = torch.tensor([float(c.passed) for c in batch], device=scores.device)
    return torch.nn.functional.binary_cross_entropy_with_logits(scores, labels)


def training_examples(train: list[LabeledCode], config: VerifierConfig) -> list[Any]:
    """Pairs for Bradley–Terry, the labelled programs themselves for BCE."""
    examples: list[Any] = (
        sample_pairs(train, config.pairs_per_problem, config.seed) if config.loss != "bce" else list(train)
    )
    if not examples:
        raise ValueError(
            "no training examples: the verifier needs problems with both correct and incorrect code"
        )
    return examples


def write_report(
    config: VerifierConfig,
    train: list[LabeledCode],
    held: list[LabeledCode],
    examples: list[Any],
    final_loss: float,
    started: float,
    metrics: dict[str, float | None],
    processes: int = 1,
) -> VerifierReport:
    report = VerifierReport(
        base=config.base,
        design=config.design,
        loss=config.loss,
        lora=config.lora,
        train_problems=len({c.problem_id for c in train}),
        heldout_problems=len({c.problem_id for c in held}),
        heldout_programs=len(sampled(held)),
        train_examples=len(examples),
        final_loss=final_loss,
        seconds=round(time.perf_counter() - started, 1),
        processes=processes,
        **metrics,
    )
    (config.out / "verifier-report.json").write_text(json.dumps(report.model_dump(), indent=2))
    return report


def train_verifier(
    codes: list[LabeledCode], config: VerifierConfig, progress: Progress | None = None
) -> VerifierReport:
    if config.design == "probe":
        return train_probe(codes, config, progress)
    import torch
    from accelerate import Accelerator

    started = time.perf_counter()
    # One process, or one of N under `torchrun` / `accelerate launch` (DDP): every process sees
    # the same shuffled batches and trains on its share of each; gradients are averaged.
    bf16 = compute_dtype(config.precision, gpu=torch.cuda.is_available()) == "bfloat16"
    accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no")
    rank, world = accelerator.process_index, accelerator.num_processes
    if config.batch_size % world:
        raise ValueError(f"--batch-size {config.batch_size} must be a multiple of the {world} processes")
    torch.manual_seed(config.seed)
    train, held = split_by_problem(codes, config.holdout, config.seed)
    examples = training_examples(train, config)
    model, tokenizer = load_model(config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    model, optimizer = accelerator.prepare(model, optimizer)
    rng = random.Random(config.seed)
    # Equal shares keep the processes' backward passes (and gradient syncs) in step.
    usable = len(examples) - len(examples) % world
    steps = config.epochs * ((usable + config.batch_size - 1) // config.batch_size)
    step, loss_value = 0, float("nan")
    model.train()
    for _ in range(config.epochs):
        rng.shuffle(examples)
        for start in range(0, usable, config.batch_size):
            batch = examples[start : min(start + config.batch_size, usable)]
            mine = batch[rank::world]
            optimizer.zero_grad()
            loss_value = 0.0
            # Micro-batches bound the activations kept for backward (a 0.5B model on 16 sequences
            # of 1024 tokens outgrew 24 GiB); the summed gradient is the whole batch's (DDP
            # averages over processes, hence × world), synced once, at the last micro-batch.
            offsets = range(0, len(mine), config.micro_batch_size)
            for offset in offsets:
                micro = mine[offset : offset + config.micro_batch_size]
                with contextlib.nullcontext() if offset == offsets[-1] else accelerator.no_sync(model):
                    loss = batch_loss(model, tokenizer, micro, config) * (len(micro) * world / len(batch))
                    accelerator.backward(loss)
                loss_value += float(loss.detach()) / world
            optimizer.step()
            step += 1
            if progress:
                progress("verifier", step, steps)

    final = accelerator.reduce(torch.tensor(loss_value, device=accelerator.device), reduction="sum")
    model = accelerator.unwrap_model(model)
    measured = sampled(held)
    metrics = evaluate(model, tokenizer, measured, config) if measured else heldout_metrics([], [])
    if accelerator.is_main_process:
        config.out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(config.out)
        tokenizer.save_pretrained(config.out)
    accelerator.wait_for_everyone()
    report = write_report(config, train, held, examples, float(final), started, metrics, world)
    accelerator.end_training()  # under torchrun: NCCL warns of a leaked process group otherwise
    return report


def probe_features(
    model: Any, tokenizer: Any, texts: list[str], config: VerifierConfig, progress: Progress | None = None
) -> Any:
    """``program_features`` of every text, a problem's programs together (its statement is then
    read once) and by length (padding is wasted compute): the slow part of the probe design (one
    forward pass of the base per program)."""
    import torch

    order = sorted(range(len(texts)), key=lambda k: (texts[k][: texts[k].find(CODE_MARKER)], len(texts[k])))
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), config.batch_size):
            batch = [texts[k] for k in order[start : start + config.batch_size]]
            chunks.append(program_features(model, tokenizer, batch, config.max_length))
            if progress:
                progress("features", start + len(batch), len(texts))
    features = torch.cat(chunks)
    return features[torch.tensor(order).argsort()]


def fit_probe(
    features: Any,
    seen: Any,
    reg: float,
    *,
    pairs: tuple[Any, Any] | None = None,
    labels: tuple[Any, Any] | None = None,
) -> tuple[dict[str, Any], float]:
    """The linear head on ``features`` (rows: programs): standardised on the training rows
    ``seen``, fitted by L-BFGS (full batch; no learning rate) to Bradley–Terry ``pairs``
    (chosen rows, rejected rows), BCE ``labels`` (rows, 0/1), or the sum of both, with
    ``reg``·|w|²."""
    import torch

    mean, scale = features[seen].mean(dim=0), features[seen].std(dim=0) + 1e-6
    scaled = (features - mean) / scale
    weight = torch.zeros(features.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)

    def objective() -> Any:
        scores = scaled @ weight + bias
        fit = reg * weight.pow(2).sum()
        if pairs is not None:
            fit = fit - torch.nn.functional.logsigmoid(scores[pairs[0]] - scores[pairs[1]]).mean()
        if labels is not None:
            fit = fit + torch.nn.functional.binary_cross_entropy_with_logits(scores[labels[0]], labels[1])
        return fit

    optimizer: Any = torch.optim.LBFGS([weight, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> Any:
        optimizer.zero_grad()
        value = objective()
        value.backward()
        return value

    optimizer.step(closure)  # (torch leaves LBFGS.step untyped, hence the Any above)
    with torch.no_grad():
        final = float(objective())
    return {"weight": weight.detach(), "bias": bias.detach(), "mean": mean, "scale": scale}, final


def pair_rows(pairs: list[Pair], row: dict[str, int]) -> tuple[Any, Any]:
    """Bradley–Terry targets for ``fit_probe``: the feature rows of each pair's two programs."""
    import torch

    return (
        torch.tensor([row[verifier_input(p.prompt, p.chosen)] for p in pairs]),
        torch.tensor([row[verifier_input(p.prompt, p.rejected)] for p in pairs]),
    )


def code_rows(codes: list[LabeledCode], row: dict[str, int]) -> Any:
    """The feature rows of these programs (``row``: verifier text -> row)."""
    import torch

    return torch.tensor([row[verifier_input(c.prompt, c.code)] for c in codes], dtype=torch.long)


def probe_targets(
    codes: list[LabeledCode], pairs: list[Pair], row: dict[str, int], loss: str
) -> dict[str, Any]:
    """``fit_probe``'s targets for ``loss``: the pairs for Bradley–Terry, the programs' labels for
    BCE, both for ``bt+bce``."""
    import torch

    targets: dict[str, Any] = {}
    if loss != "bce":
        targets["pairs"] = pair_rows(pairs, row)
    if loss != "bt":
        targets["labels"] = (code_rows(codes, row), torch.tensor([float(c.passed) for c in codes]))
    return targets


def train_probe(
    codes: list[LabeledCode], config: VerifierConfig, progress: Progress | None = None
) -> VerifierReport:
    """The probe design: features of every distinct program once, then the head (seconds)."""
    import torch
    from safetensors.torch import save_file

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    train, held = split_by_problem(codes, config.holdout, config.seed)
    examples = training_examples(train, config)
    # The features (a forward pass per program) on the GPU when there is one; the head's fit on
    # them takes seconds anywhere and stays on the CPU.
    model, tokenizer = load_probe_base(config.base, device="cuda" if torch.cuda.is_available() else "cpu")
    texts = list(dict.fromkeys(verifier_input(c.prompt, c.code) for c in codes))
    row = {text: k for k, text in enumerate(texts)}
    features = probe_features(model, tokenizer, texts, config, progress).cpu()

    targets = probe_targets(train, examples, row, config.loss)  # (examples: pairs unless bce)
    head, final_loss = fit_probe(features, code_rows(train, row), config.reg, **targets)
    measured = sampled(held)
    metrics = heldout_metrics(measured, probe_scores(head, features)[code_rows(measured, row)].tolist())
    config.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.items()}, str(config.out / PROBE_WEIGHTS))
    local = Path(config.base)
    base = str(local.resolve()) if local.exists() else config.base
    (config.out / PROBE_CONFIG).write_text(json.dumps({"base": base, "max_length": config.max_length}))
    return write_report(config, train, held, examples, final_loss, started, metrics)
