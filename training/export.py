"""A LoRA training run as a checkpoint small enough to ship: the generator adapter and the
verifier adapter (with its classification head), weights in bf16, a manifest, and nothing that
names this machine. ``mucode models install-checkpoint`` turns it back into a servable checkpoint
on any machine that has the base model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from mucode.engine.checkpoint import (
    ADAPTER_CONFIG,
    BUNDLED_BASE,
    Manifest,
    read_manifest,
    resolve,
    set_adapter_base,
    write_manifest,
)
from mucode.engine.model_store import hf_folder

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def export_checkpoint(run: Path, out: Path) -> Manifest:
    """Copies ``run``'s adapters to ``out`` (replaced), in bf16; the base becomes ``bundled``
    when it is the default model's folder in this machine's cache."""
    import torch
    from safetensors.torch import load_file, save_file

    manifest = read_manifest(run)
    verifier = resolve(run, manifest.verifier)
    adapter = resolve(run, manifest.generator_adapter)
    if adapter is None or verifier is None or not (Path(verifier) / ADAPTER_CONFIG).exists():
        raise ValueError(
            f"{run} is not a LoRA run (train with --lora): only adapters are small enough to ship"
        )
    bundled = Path(manifest.base_model).resolve() == hf_folder().resolve()
    base = BUNDLED_BASE if bundled else manifest.base_model
    if out.exists():
        shutil.rmtree(out)
    for source, name in ((Path(adapter), "generator-adapter"), (Path(verifier), "verifier")):
        (out / name).mkdir(parents=True)
        shutil.copy(source / ADAPTER_CONFIG, out / name / ADAPTER_CONFIG)
        set_adapter_base(out / name, base)
        weights = load_file(source / ADAPTER_WEIGHTS)
        # bf16 halves the files; PEFT copies them into the model's own dtype when it loads them.
        save_file(
            {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in weights.items()},
            out / name / ADAPTER_WEIGHTS,
        )
        os.chmod(out / name / ADAPTER_WEIGHTS, 0o644)  # safetensors writes 0600; these ship
    shipped = manifest.model_copy(
        update={
            "base_model": base,
            "generator": None,
            "generator_adapter": "generator-adapter",
            "verifier": "verifier",
            "training_data": [Path(d).name if Path(d).is_absolute() else d for d in manifest.training_data],
            # The stage metrics name the base too (the verifier report): no machine paths ship.
            "iterations": json.loads(json.dumps(manifest.iterations).replace(manifest.base_model, base)),
        }
    )
    write_manifest(out, shipped)
    return shipped
