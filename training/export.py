"""A training run as a checkpoint small enough to ship: the generator adapter and the verifier
(a LoRA adapter with its classification head, or a probe head), weights in bf16 for adapters, a
manifest, and nothing that names this machine. ``mucode models install-checkpoint`` turns it back
into a servable checkpoint on any machine that has the base model."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Collection
from pathlib import Path

from mucode.engine.adapter_scope import parse_scope
from mucode.engine.checkpoint import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    BUNDLED_BASE,
    Manifest,
    read_manifest,
    resolve,
    set_adapter_base,
    set_probe_base,
    write_manifest,
)
from mucode.engine.model_store import hf_folder
from mucode.engine.verifier import LIKELIHOOD, PROBE_CONFIG, PROBE_WEIGHTS

PARTS = ("generator", "verifier")


def _shipped_base(path: str) -> str:
    """``bundled`` for the default model's folder in this machine's cache, else as given."""
    return BUNDLED_BASE if Path(path).resolve() == hf_folder().resolve() else path


def _copy_adapter(source: Path, target: Path, base: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True)
    shutil.copy(source / ADAPTER_CONFIG, target / ADAPTER_CONFIG)
    set_adapter_base(target, base)
    weights = load_file(source / ADAPTER_WEIGHTS)
    # bf16 halves the files; PEFT copies them into the model's own dtype when it loads them.
    save_file(
        {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in weights.items()},
        target / ADAPTER_WEIGHTS,
    )
    os.chmod(target / ADAPTER_WEIGHTS, 0o644)  # safetensors writes 0600; these ship


def _copy_probe(source: Path, target: Path) -> None:
    # The head is a few KB: it keeps float32, as the features' mean and scale want the precision.
    target.mkdir(parents=True)
    shutil.copy(source / PROBE_WEIGHTS, target / PROBE_WEIGHTS)
    os.chmod(target / PROBE_WEIGHTS, 0o644)
    shutil.copy(source / PROBE_CONFIG, target / PROBE_CONFIG)
    set_probe_base(target, _shipped_base(json.loads((source / PROBE_CONFIG).read_text())["base"]))


def export_checkpoint(
    run: Path,
    out: Path,
    parts: Collection[str] = PARTS,
    likelihood: bool = False,
    scope: str | None = None,
) -> Manifest:
    """Copies ``parts`` of ``run`` (its generator adapter, its verifier) to ``out`` (replaced).
    Only what is small ships: a LoRA generator, a LoRA or probe verifier. ``likelihood`` ships the
    untrained verifier (the generator's own likelihood of a program) as the verifier part instead:
    for a run whose trained verifier lost to it, or that trained none (``mucode train sft``).
    ``scope``: the problems the generator is applied to (default: the run's)."""
    if not parts or set(parts) - set(PARTS):
        raise ValueError(f"parts to export: generator and/or verifier, not {', '.join(parts) or 'none'}")
    manifest = read_manifest(run)
    generator_scope = manifest.generator_scope if scope is None else parse_scope(scope)
    adapter = resolve(run, manifest.generator_adapter)
    verifier = LIKELIHOOD if likelihood else resolve(run, manifest.verifier)
    if "generator" in parts and adapter is None:
        raise ValueError(
            f"{run}'s generator is not a LoRA adapter (train with --lora): it is too big to ship"
        )
    if "verifier" in parts and not (
        verifier == LIKELIHOOD
        or (verifier and any((Path(verifier) / name).exists() for name in (ADAPTER_CONFIG, PROBE_CONFIG)))
    ):
        raise ValueError(
            f"{run}'s verifier is neither a LoRA adapter (--lora) nor a probe (--verifier-design probe), "
            "the only trained ones small enough to ship: ship --parts generator, or --likelihood "
            "for the untrained verifier"
        )
    base = _shipped_base(manifest.base_model)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if adapter and "generator" in parts:
        _copy_adapter(Path(adapter), out / "generator-adapter", base)
    if verifier and verifier != LIKELIHOOD and "verifier" in parts:
        if (Path(verifier) / PROBE_CONFIG).exists():
            _copy_probe(Path(verifier), out / "verifier")
        else:
            _copy_adapter(Path(verifier), out / "verifier", base)
    shipped = manifest.model_copy(
        update={
            "base_model": base,
            "generator": None,
            "generator_adapter": "generator-adapter" if "generator" in parts else None,
            "generator_scope": generator_scope,
            # The likelihood verifier ships by name (also when re-exporting a checkpoint that names it).
            "verifier": (LIKELIHOOD if verifier == LIKELIHOOD else "verifier")
            if "verifier" in parts
            else None,
            "training_data": [Path(d).name if Path(d).is_absolute() else d for d in manifest.training_data],
            # The stage metrics name the base too (the verifier report): no machine paths ship.
            "iterations": json.loads(json.dumps(manifest.iterations).replace(manifest.base_model, base)),
        }
    )
    write_manifest(out, shipped)
    return shipped
