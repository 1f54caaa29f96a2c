"""A LoRA training run as a checkpoint small enough to ship: the generator adapter and the
verifier adapter (with its classification head), weights in bf16, a manifest, and nothing that
names this machine. ``mucode models install-checkpoint`` turns it back into a servable checkpoint
on any machine that has the base model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from mucode.server.engine.checkpoint import BUNDLED_BASE, Manifest, read_manifest, resolve, write_manifest
from mucode.server.engine.model_store import cache_dir

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def export_checkpoint(run: Path, out: Path) -> Manifest:
    """Copies ``run``'s adapters to ``out`` (replaced), in bf16; the base becomes ``bundled``
    when it is the default model's folder in this machine's cache."""
    import torch
    from safetensors.torch import load_file, save_file

    manifest = read_manifest(run)
    verifier = resolve(run, manifest.verifier)
    adapter = resolve(run, manifest.generator_adapter)
    if adapter is None or verifier is None or not (Path(verifier) / ADAPTER_FILES[0]).exists():
        raise ValueError(
            f"{run} is not a LoRA run (train with --lora): only adapters are small enough to ship"
        )
    bundled = (cache_dir() / "models").resolve()
    base = BUNDLED_BASE if Path(manifest.base_model).resolve().parent == bundled else manifest.base_model
    if out.exists():
        shutil.rmtree(out)
    for source, name in ((Path(adapter), "generator-adapter"), (Path(verifier), "verifier")):
        (out / name).mkdir(parents=True)
        config = json.loads((source / ADAPTER_FILES[0]).read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base
        (out / name / ADAPTER_FILES[0]).write_text(json.dumps(config, indent=2), encoding="utf-8")
        weights = load_file(source / ADAPTER_FILES[1])
        # bf16 halves the files; PEFT copies them into the model's own dtype when it loads them.
        save_file(
            {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in weights.items()},
            out / name / ADAPTER_FILES[1],
        )
        os.chmod(out / name / ADAPTER_FILES[1], 0o644)  # safetensors writes 0600; these ship
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
