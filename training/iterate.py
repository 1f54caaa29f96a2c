"""µCode expert iteration, the whole loop, resumable.

For i = 1..M, in ``OUT/iter-i/``:
  rollouts    the current generator (the base at i = 1, else iteration i-1's) on the problems
  verifier    R(problem, code) trained on every rollout so far (all iterations aggregated)
  relabel     the local experts under the latest verifier; SFT rows from all rollouts so far
  sft         the generator fine-tuned on those rows (from the base, or continuing)
Each finished stage leaves ``<stage>.done`` (its metrics); a rerun skips finished stages and
resumes an unfinished rollout stage episode by episode. ``OUT/mucode.json`` is the checkpoint
manifest: ``mucode serve --checkpoint OUT`` loads the last generator and verifier.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mucode.engine import prompts
from mucode.engine.checkpoint import Manifest, write_manifest
from mucode.engine.generators.base import Generator
from mucode.engine.verifier import load_code_verifier
from mucode.problems import Problem, write_jsonl

from .relabel import SFTRow, experts, labeled_codes, reference_codes, relabel
from .rollouts import Progress, Rollout, rollout_options, rollout_stage
from .schemas import read_jsonl
from .sft import SFTConfig, train_generator
from .verifier import VerifierConfig, train_verifier

# Test hook: stop with an error right after the named stage (e.g. "iter-1/verifier") finishes,
# as a crash would, to prove that a rerun resumes there.
FAIL_AFTER_ENV = "MUCODE_TRAIN_FAIL_AFTER"

GeneratorFactory = Callable[[str], Generator]  # model folder -> generator for rollouts


class IterateConfig(BaseModel):
    problems: str = Field(..., description="Problem set: humaneval:fold0|fold1, humaneval, or a JSONL file.")
    limit: int | None = Field(None, ge=1, description="Only the first K problems of the set were used.")
    base: str = Field(..., description="The generator's base model (HF folder or hub id).")
    verifier_base: str | None = Field(
        None, description="Base of the verifier; default: the generator's base."
    )
    verifier_design: Literal["classifier", "probe"] = "classifier"
    out: Path
    iterations: int = Field(2, ge=1)
    rollouts_per_problem: int = Field(4, ge=1)
    turns: int = Field(3, ge=1)
    temperature: float = 0.7
    max_tokens: int = 768
    lora: bool = False
    lora_rank: int = Field(16, ge=1, description="LoRA rank of both adapters (small ranks ship in a few MB).")
    micro_batch_size: int = Field(
        1, ge=1, description="Examples per forward pass in the verifier and SFT (memory); batches accumulate."
    )
    continue_from_previous: bool = Field(False, description="Fine-tune iteration i's generator from i-1's.")
    reference_experts: bool = Field(
        False, description="The problems' reference solutions are candidate experts (relabel)."
    )
    sft_lr: float | None = Field(None, description="SFTConfig.lr (default by --lora).")
    sft_epochs: int = 2
    sft_checkpoint_steps: int = Field(0, ge=0, description="SFTConfig.checkpoint_steps: resumable SFT.")
    sft_lora_layers: int | None = Field(None, ge=1, description="SFTConfig.lora_layers: top K blocks.")
    verifier_lr: float = 1e-6
    verifier_epochs: int = 2
    verifier_loss: Literal["bt", "bce", "bt+bce"] = "bt"
    pairs_per_problem: int = 32
    holdout: float = 0.2
    seed: int = 0
    rollout_concurrency: int = Field(4, ge=1, description="Episodes in flight (vLLM batches them).")
    report_to: list[str] = Field(default_factory=list)


class StageFailure(RuntimeError):
    pass


def _done(folder: Path, stage: str) -> dict[str, Any] | None:
    marker = folder / f"{stage}.done"
    return json.loads(marker.read_text()) if marker.exists() else None


def _finish(folder: Path, stage: str, metrics: dict[str, Any]) -> dict[str, Any]:
    (folder / f"{stage}.done").write_text(json.dumps(metrics, indent=2))
    if os.environ.get(FAIL_AFTER_ENV) == f"{folder.name}/{stage}":
        raise StageFailure(f"stopped after {folder.name}/{stage} ({FAIL_AFTER_ENV})")
    return metrics


def iterate(
    config: IterateConfig,
    problems: list[Problem],
    rollout_generator: GeneratorFactory,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> Manifest:
    config.out.mkdir(parents=True, exist_ok=True)
    by_id = {p.id: p for p in problems}
    prompts_by_id = {p.id: p.prompt for p in problems}
    history: list[dict[str, Any]] = []
    generator_model = config.base
    for i in range(1, config.iterations + 1):
        folder = config.out / f"iter-{i}"
        folder.mkdir(exist_ok=True)
        metrics: dict[str, Any] = {"iteration": i}

        rollout_path = folder / "rollouts.jsonl"
        if (done := _done(folder, "rollouts")) is None:
            rollouts = asyncio.run(
                rollout_stage(
                    problems,
                    rollout_generator(generator_model),
                    rollout_path,
                    iteration=i,
                    per_problem=config.rollouts_per_problem,
                    options=rollout_options(config.turns, config.temperature, config.max_tokens, config.seed),
                    progress=progress,
                    concurrency=config.rollout_concurrency,
                )
            )
            solved = sum(r.success for r in rollouts) / len(rollouts)
            done = _finish(folder, "rollouts", {"episodes": len(rollouts), "success_rate": round(solved, 4)})
        metrics["rollouts"] = done
        log(f"iteration {i}: rollouts {done}")

        every = [
            r
            for k in range(1, i + 1)
            for r in read_jsonl(config.out / f"iter-{k}" / "rollouts.jsonl", Rollout)
        ]
        every = [r for r in every if r.problem_id in by_id]
        codes = labeled_codes(every, prompts_by_id)
        verifier_dir = folder / "verifier"
        if (done := _done(folder, "verifier")) is None:
            verifier_report = train_verifier(
                codes,
                VerifierConfig(
                    base=config.verifier_base or config.base,
                    out=verifier_dir,
                    design=config.verifier_design,
                    loss=config.verifier_loss,
                    lora=config.lora and config.verifier_design == "classifier",
                    lora_rank=config.lora_rank,
                    micro_batch_size=config.micro_batch_size,
                    lr=config.verifier_lr,
                    epochs=config.verifier_epochs,
                    pairs_per_problem=config.pairs_per_problem,
                    holdout=config.holdout,
                    seed=config.seed + i,
                ),
                progress,
            )
            done = _finish(folder, "verifier", verifier_report.model_dump())
        metrics["verifier"] = done
        log(
            f"iteration {i}: verifier AUC {done.get('auc')}, "
            f"pairwise accuracy {done.get('pairwise_accuracy')}"
        )

        rows_path = folder / "sft.jsonl"
        if (done := _done(folder, "relabel")) is None:
            verifier = load_code_verifier(verifier_dir)
            score = verifier.score_sync if verifier else None
            known = reference_codes(problems) if config.reference_experts else []
            rows = relabel(every, experts(codes + known, score))
            write_jsonl(rows, rows_path)
            own = sum(r.source == "own" for r in rows)
            done = _finish(folder, "relabel", {"rows": len(rows), "own": own, "expert": len(rows) - own})
        metrics["relabel"] = done

        generator_dir = folder / "generator"
        if (done := _done(folder, "sft")) is None:
            start = generator_model if config.continue_from_previous else config.base
            report = train_generator(
                read_jsonl(rows_path, SFTRow),
                SFTConfig(
                    base=start,
                    out=generator_dir,
                    lora=config.lora,
                    lora_rank=config.lora_rank,
                    lora_layers=config.sft_lora_layers,
                    micro_batch_size=config.micro_batch_size,
                    lr=config.sft_lr,
                    epochs=config.sft_epochs,
                    checkpoint_steps=config.sft_checkpoint_steps,
                    holdout=config.holdout,
                    seed=config.seed + i,
                    report_to=config.report_to,
                ),
            )
            done = _finish(folder, "sft", report.model_dump())
        metrics["sft"] = done
        log(
            f"iteration {i}: SFT held-out log-likelihood {done.get('heldout_logprob_before')} -> "
            f"{done.get('heldout_logprob_after')}"
        )
        generator_model = str(generator_dir / "model")
        history.append(metrics)

    last = f"iter-{config.iterations}"
    manifest = Manifest(
        base_model=config.base,
        generator=f"{last}/generator/model",
        generator_adapter=f"{last}/generator/adapter" if config.lora else None,
        verifier=f"{last}/verifier",
        prompt_version=prompts.PROMPT_VERSION,
        training_data=[
            config.problems if config.limit is None else f"{config.problems} (first {config.limit})"
        ]
        + [f"iter-{k}/rollouts.jsonl" for k in range(1, config.iterations + 1)],
        iterations=history,
    )
    write_manifest(config.out, manifest)
    return manifest
