"""Stage 4, the generator: supervised fine-tuning on the relabelled rows with TRL's SFTTrainer.

The loss covers the assistant's answer only, through the chat template's assistant mask
(``assistant_only_loss``; TRL swaps in a training template with generation markers for known
model families such as Qwen2.5). Full fine-tune or LoRA; each iteration starts from the base
(the paper) unless told to continue. It runs as is under ``accelerate launch`` with the configs in
``training/configs`` (one CPU, multi-GPU DDP, DeepSpeed ZeRO-3). Some problems are held out to
measure what the stage is for: the mean log-likelihood per token of the expert targets, before
and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from mucode.engine.checkpoint import Manifest, write_manifest
from mucode.engine.loading import compute_dtype
from mucode.engine.prompts import PROMPT_VERSION

from .relabel import SFTRow
from .schemas import split_by_problem


class SFTConfig(BaseModel):
    """What one SFT stage trains: the base, the output folder and the optimisation knobs."""

    base: str = Field(..., description="The model to fine-tune: HF folder or hub id.")
    out: Path
    lora: bool = False
    lora_rank: int = 16
    lora_layers: int | None = Field(
        None,
        ge=1,
        description="Adapt the top K transformer blocks only (the gradient stops K blocks down: 1.8x "
        "cheaper at 4 of 24 on a CPU). Default: every block.",
    )
    init_adapter: Path | None = Field(
        None,
        description="With lora: train on from this LoRA adapter of `base` (an earlier iteration's) instead "
        "of a fresh one, keeping its rank and blocks: the next µCode iteration starts where the last "
        "stopped, and still ships as one adapter of the same base.",
    )
    lr: float | None = Field(
        None, description="Default: the paper's 5e-7 for a full fine-tune, 1e-4 for a LoRA adapter."
    )
    epochs: int = 2
    batch_size: int = 4
    micro_batch_size: int = Field(
        1, ge=1, description="Rows per forward pass; gradients accumulate up to batch_size (memory)."
    )
    max_length: int = 2048
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Matrix products in bfloat16 over float32 weights (autocast), or all float32. auto: "
        "bfloat16 where the hardware computes in it (a CPU with native bf16: 1.55x per row, "
        "benchmarks.md; a bf16 GPU), else float32.",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute activations during backward: memory for compute. TRL turns it on by "
        "default; a 0.5B model at 2048 tokens fits a CPU's memory without it (5 GB with a top-4 adapter).",
    )
    checkpoint_steps: int = Field(
        0,
        ge=0,
        description="Save the trainer's state every K optimizer steps (with LoRA, a few MB) and continue "
        "from the latest on a rerun into the same folder: a CPU run that outlasts a session. 0: never.",
    )
    holdout: float = Field(0.2, ge=0.0, lt=1.0)
    seed: int = 0
    report_to: list[str] = Field(default_factory=list, description='e.g. ["tensorboard"]')

    @model_validator(mode="after")
    def _adapter_needs_lora(self) -> SFTConfig:
        if self.init_adapter is not None and not self.lora:
            raise ValueError("init_adapter continues a LoRA adapter: train with lora")
        return self


class SFTReport(BaseModel):
    base: str
    lora: bool
    lora_layers: int | None = Field(None, description="The adapter's top blocks; None: every block.")
    init_adapter: str | None = Field(None, description="The adapter training started from, if any.")
    precision: str = Field("float32", description="What the products were computed in (auto resolved).")
    train_rows: int
    heldout_rows: int
    heldout_logprob_before: float | None = Field(
        None, description="Mean log p per target token before training: the base, with init_adapter if any."
    )
    heldout_logprob_after: float | None = Field(None, description="The same after fine-tuning.")
    final_loss: float | None = Field(
        None, description="Mean training loss over every optimizer step of the run, resumed ones included."
    )
    seconds: float = Field(
        ...,
        description="Wall time of the run: this invocation's and, when it resumed, the earlier ones' up "
        "to the state it resumed from (work after that state was lost and is not counted).",
    )
    resumed_from_step: int | None = Field(None, description="The optimizer step a rerun continued from.")
    train_seconds: float | None = Field(
        None, description="This invocation's optimizer steps alone: no loading, held-out passes or saving."
    )
    train_tokens: int | None = Field(
        None, description="Tokens (padding excluded) through this invocation's optimizer steps."
    )
    processes: int = Field(1, description="Data-parallel processes that trained (torchrun, accelerate).")


def target_logprob(model: Any, tokenizer: Any, rows: list[SFTRow]) -> float | None:
    """Mean log-likelihood per token of each row's target (its answer and end-of-turn token)."""
    import torch

    if not rows:
        return None
    # On this process's GPU when there is one: the base's pass over 88 held-out rows took 26 min on
    # two CPU cores, and a freshly loaded model sits on the CPU until told otherwise.
    device = (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if torch.cuda.is_available()
        else torch.device("cpu")
    )
    model.to(device)
    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for row in rows:
            prompt = tokenizer.apply_chat_template(
                [m.model_dump() for m in row.messages],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            )
            full = tokenizer.apply_chat_template(row.conversation(), tokenize=True, return_dict=False)
            ids = torch.tensor([full], device=device)
            # Only the positions that predict the target: most of a row is its prompt, and the
            # output head over the whole vocabulary is a quarter of a 0.5B model's forward pass.
            logits = model(input_ids=ids, logits_to_keep=len(full) - len(prompt) + 1).logits[0, :-1].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            targets = ids[0, len(prompt) :]
            picked = logprobs[torch.arange(len(targets)), targets]
            total += float(picked.sum())
            count += len(picked)
    return total / max(count, 1)


def _step(checkpoint: Path) -> int:
    return int(checkpoint.name.removeprefix("checkpoint-"))


def _last_checkpoint(folder: Path) -> Path | None:
    """The trainer's latest saved state (``checkpoint-<step>``), if any."""
    saved = [p for p in folder.glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()]
    return max(saved, key=_step, default=None)


ELAPSED = "mucode-elapsed.json"  # beside the trainer's state: the run's seconds up to that state


def _elapsed_before(checkpoint: Path | None) -> float:
    """Seconds the run had taken when ``checkpoint`` was saved (0 for a fresh run, or a state saved
    before the trainer recorded it)."""
    saved = checkpoint / ELAPSED if checkpoint else None
    return float(json.loads(saved.read_text())["seconds"]) if saved and saved.exists() else 0.0


def _elapsed_recorder(since: float, before: float) -> Any:
    """A trainer callback that writes the run's seconds into each state it saves, so a run that
    takes several sessions reports its whole wall time rather than its last invocation's."""
    from transformers import TrainerCallback

    class RecordElapsed(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                seconds = before + time.perf_counter() - since
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                (folder / ELAPSED).write_text(json.dumps({"seconds": round(seconds, 1)}))

    return RecordElapsed()


def _mean_step_loss(log_history: list[dict[str, Any]]) -> float | None:
    """The mean of the logged step losses: a resumed trainer keeps the earlier invocations' logs in
    its state, while its own ``training_loss`` averages this invocation's steps only."""
    losses = [float(entry["loss"]) for entry in log_history if "loss" in entry]
    return sum(losses) / len(losses) if losses else None


def lora_config(model: Any, rank: int, top_layers: int | None = None) -> Any:
    """A PEFT adapter on every linear layer but the output head (PEFT's "all-linear"), on every
    block or on the top ``top_layers`` blocks only."""
    import torch
    from peft import LoraConfig

    if top_layers is None:
        return LoraConfig(task_type="CAUSAL_LM", r=rank, lora_alpha=2 * rank, target_modules="all-linear")
    # PEFT takes a block range only with module names, so name what "all-linear" would pick.
    head = model.get_output_embeddings()
    names = sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not head
        }
    )
    blocks = model.config.num_hidden_layers
    if top_layers > blocks:
        raise ValueError(f"lora_layers {top_layers}: the model has {blocks} blocks")
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=rank,
        lora_alpha=2 * rank,
        target_modules=names,
        layers_to_transform=list(range(blocks - top_layers, blocks)),
    )


def _heldout_before(
    config: SFTConfig, held: list[SFTRow], measure: Callable[[], float | None]
) -> float | None:
    """The base's held-out log-likelihood, kept in the output folder: a resumed run (a CPU epoch
    outlasts a session) does not pay the pass over the held-out rows again."""
    saved = config.out / "heldout-before.json"
    rows = "\n".join(r.model_dump_json() for r in held)
    key = {
        "base": config.base,
        "init_adapter": None if config.init_adapter is None else str(config.init_adapter),
        "rows": hashlib.sha256(rows.encode()).hexdigest(),
    }
    if saved.exists():
        record = json.loads(saved.read_text())
        if record["key"] == key:
            kept: float | None = record["logprob"]
            return kept
    value = measure()
    config.out.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"key": key, "logprob": value}))
    return value


@contextmanager
def _answer_positions_only() -> Iterator[None]:
    """TRL's fused output head scores every position of a row, masked or not, except on Triton
    devices: elsewhere it keeps tile shapes fixed for graph compilers (Neuron). On a CPU, in eager
    mode, nothing recompiles, and scoring only the answer's positions gives the same loss without
    running the vocabulary head over the prompt, most of a relabelled row (it was a third of a
    step's time). The switch is TRL's own; a TRL without it trains as before."""
    from trl.trainer import utils

    switch = "_use_triton"  # private to TRL (1.16): looked up, never assumed
    on_triton = getattr(utils, switch, None)
    if on_triton is None:
        yield
        return
    setattr(utils, switch, lambda device: device.type == "cpu" or on_triton(device))
    try:
        yield
    finally:
        setattr(utils, switch, on_triton)


def train_generator(rows: list[SFTRow], config: SFTConfig) -> SFTReport:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl.trainer.sft_config import SFTConfig as TrainerArguments
    from trl.trainer.sft_trainer import SFTTrainer

    started = time.perf_counter()
    train, held = split_by_problem(rows, config.holdout, config.seed)
    if not train:
        raise ValueError("no SFT rows to train on")
    tokenizer = AutoTokenizer.from_pretrained(config.base)
    base: Any = AutoModelForCausalLM.from_pretrained(config.base, dtype=torch.float32)
    if config.init_adapter is not None:
        from peft import PeftModel

        base = PeftModel.from_pretrained(base, config.init_adapter, is_trainable=True)
        peft_config = None  # the adapter's own
        blocks = getattr(base.peft_config["default"], "layers_to_transform", None)
        lora_layers = len(blocks) if isinstance(blocks, list) else None
    else:
        peft_config = lora_config(base, config.lora_rank, config.lora_layers) if config.lora else None
        lora_layers = config.lora_layers if config.lora else None
    before = _heldout_before(config, held, lambda: target_logprob(base, tokenizer, held))
    bf16 = compute_dtype(config.precision, gpu=torch.cuda.is_available()) == "bfloat16"
    args = TrainerArguments(
        output_dir=str(config.out / "trainer"),
        num_train_epochs=config.epochs,
        # 5e-7 barely moves a LoRA adapter: held-out target log-likelihood -0.1045 -> -0.1073 in
        # the 12-problem run (benchmarks.md); adapters want the usual ~1e-4.
        learning_rate=config.lr or (1e-4 if config.lora else 5e-7),
        # The logits of a 0.5B model over 2048 tokens are ~1.2 GB per row in fp32: a few rows per
        # forward pass, gradients accumulated, keep the same batch within a CPU's memory.
        # batch_size counts rows over all data-parallel processes (WORLD_SIZE: torchrun, accelerate).
        per_device_train_batch_size=min(config.micro_batch_size, config.batch_size),
        gradient_accumulation_steps=max(
            1, config.batch_size // (config.micro_batch_size * int(os.environ.get("WORLD_SIZE", "1")))
        ),
        assistant_only_loss=True,
        max_length=config.max_length,
        gradient_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        save_strategy="steps" if config.checkpoint_steps else "no",
        save_steps=config.checkpoint_steps or 500,
        save_total_limit=1,
        logging_steps=1,
        report_to=config.report_to,
        disable_tqdm=True,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),  # which the trainer must be told
    )
    dataset = Dataset.from_list([{"messages": r.conversation()} for r in train])
    trainer = SFTTrainer(
        model=base, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    # Without tqdm the trainer prints every log dict to stdout; the stage reports through its return
    # value (and TensorBoard when asked), so stdout stays the caller's.
    trainer.remove_callback(PrinterCallback)
    last = _last_checkpoint(config.out / "trainer") if config.checkpoint_steps else None
    resumed = _step(last) if last else 0
    elapsed_before = _elapsed_before(last)
    trainer.add_callback(_elapsed_recorder(started, elapsed_before))
    with _answer_positions_only():
        trained = trainer.train(resume_from_checkpoint=str(last) if last else None)
    # trainer.save_model gathers sharded weights (ZeRO-3: 16-bit, per the shipped config) and writes
    # from the main process only, so the same code saves on one CPU and on many GPUs.
    if config.lora:
        trainer.save_model(str(config.out / "adapter"))  # a few MB: what ships
        if trainer.accelerator.is_main_process:
            from peft import PeftModel

            fresh = AutoModelForCausalLM.from_pretrained(config.base, dtype=torch.float32)
            merged = PeftModel.from_pretrained(fresh, config.out / "adapter").merge_and_unload()
            merged.save_pretrained(config.out / "model")  # a plain HF folder every backend loads
            tokenizer.save_pretrained(config.out / "model")
    else:
        trainer.save_model(str(config.out / "model"))
    trainer.accelerator.wait_for_everyone()
    model = AutoModelForCausalLM.from_pretrained(config.out / "model", dtype=torch.float32)
    after = target_logprob(model, tokenizer, held)
    return SFTReport(
        base=config.base,
        lora=config.lora,
        lora_layers=lora_layers,
        init_adapter=None if config.init_adapter is None else str(config.init_adapter),
        precision="bfloat16" if bf16 else "float32",
        train_rows=len(train),
        heldout_rows=len(held),
        heldout_logprob_before=before,
        heldout_logprob_after=after,
        final_loss=_mean_step_loss(trainer.state.log_history),
        seconds=round(elapsed_before + time.perf_counter() - started, 1),
        resumed_from_step=resumed or None,
        processes=trainer.accelerator.num_processes,
        train_seconds=round(trained.metrics["train_runtime"], 1),
        # TRL counts from zero in each invocation; a resumed state keeps the earlier ones' logs too.
        train_tokens=max(
            (
                int(e["num_tokens"])
                for e in trainer.state.log_history
                if e.get("step", 0) > resumed and "num_tokens" in e
            ),
            default=None,
        ),
    )


def write_sft_checkpoint(config: SFTConfig, report: SFTReport, data: str) -> Manifest:
    """Makes the stage's output folder a generator-only checkpoint (``mucode serve --checkpoint``,
    ``mucode train export``) that names its base, data and metrics, as ``train iterate`` does."""
    manifest = Manifest(
        base_model=config.base,
        generator="model",
        generator_adapter="adapter" if config.lora else None,
        prompt_version=PROMPT_VERSION,
        training_data=[data],
        iterations=[{"iteration": 1, "sft": report.model_dump()}],
    )
    if os.environ.get("RANK", "0") == "0":  # one writer under torchrun / accelerate
        write_manifest(config.out, manifest)
    return manifest
