"""A training checkpoint: a folder with a ``mucode.json`` manifest naming the generator and the
verifier inside it. ``MUCODE_CHECKPOINT=DIR`` (``mucode serve --checkpoint DIR``) loads both with
no other settings; training writes it (``mucode train iterate``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .adapter_scope import AdapterScope
from .verifier import LIKELIHOOD, PROBE_CONFIG

MANIFEST = "mucode.json"


class Manifest(BaseModel):
    format: int = 1
    base_model: str = Field(..., description="What the generator was trained from.")
    generator: str | None = Field(
        None, description="Generator folder, relative to the checkpoint (HF, merged)."
    )
    generator_adapter: str | None = Field(
        None, description="The same generator as a LoRA adapter, when trained so."
    )
    generator_lora: str | None = Field(
        None, description="The generator adapter as a GGUF LoRA on the bundled GGUF (llama.cpp)."
    )
    generator_scope: AdapterScope = Field(
        "all",
        description="The problems the generator's GGUF LoRA is applied to on llama.cpp (the rest get "
        "the base model): what it was trained on and measured to help.",
    )
    verifier: str | None = Field(
        None, description="Verifier folder, relative to the checkpoint, or `likelihood` (untrained)."
    )
    prompt_version: str = Field(..., description="The chat format the generator was trained on.")
    training_data: list[str] = Field(default_factory=list, description="Problem sets and rollout files used.")
    iterations: list[dict[str, Any]] = Field(default_factory=list, description="Metrics of every iteration.")


def read_manifest(folder: str | Path) -> Manifest:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{folder} is not a mucode checkpoint (no {MANIFEST})")
    return Manifest.model_validate_json(path.read_text(encoding="utf-8"))


def write_manifest(folder: str | Path, manifest: Manifest) -> None:
    (Path(folder) / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")


def resolve(folder: str | Path, relative: str | None) -> str | None:
    """A manifest's entry as a path; ``likelihood`` (the untrained verifier) names no file."""
    return relative if relative in (None, LIKELIHOOD) else str((Path(folder) / relative).resolve())


# A shipped checkpoint names its base this way when the base is the bundled default model
# (``mucode models pull --hf``): the adapters then travel without a machine's paths.
BUNDLED_BASE = "bundled"


ADAPTER_CONFIG = "adapter_config.json"  # PEFT's: marks a folder as an adapter, names its base
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # PEFT's adapter weights


def set_adapter_base(folder: Path, base: str) -> None:
    """Points a PEFT adapter at the base model it is loaded onto."""
    path = folder / ADAPTER_CONFIG
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def set_probe_base(folder: Path, base: str) -> None:
    """Points a probe verifier at the frozen model whose states it reads."""
    path = folder / PROBE_CONFIG
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base"] = base
    path.write_text(json.dumps(config), encoding="utf-8")


def shipped_checkpoint() -> Path:
    """The checkpoint trained in this repository, inside the package: the generator adapter SFT-trained
    on DataFrameBench train and the likelihood verifier (docs/benchmarks.md)."""
    import mucode

    return Path(mucode.__file__).parent / "checkpoints" / "dataframebench-sft"


def installed_checkpoint() -> Path | None:
    """The checkpoint ``mucode models install-checkpoint`` put in the cache: the server's default
    generator and verifier when ``MUCODE_CHECKPOINT`` is unset (``none`` turns it off)."""
    from .model_store import cache_dir

    folder = cache_dir() / "checkpoint"
    return folder if (folder / MANIFEST).is_file() else None


def install_checkpoint(source: str | Path, target: Path | None = None, base: str | None = None) -> Path:
    """Makes a shipped checkpoint servable: the generator adapter merged into its base (an ordinary
    HF folder that vLLM and transformers load), the verifier (adapter or probe) pointed at the
    base. A checkpoint without a generator keeps the default one. Writes a complete checkpoint to
    ``target`` (default: the installed one), replacing it only once the new one is whole."""
    import shutil
    import tempfile

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .lora_gguf import adapter_to_gguf
    from .model_store import cache_dir, pull_gguf, pull_hf

    source = Path(source)
    manifest = read_manifest(source)
    if manifest.generator_adapter is None and manifest.verifier is None:
        raise ValueError(f"{source} has neither a generator adapter nor a verifier")
    base_path = base or (str(pull_hf()) if manifest.base_model == BUNDLED_BASE else manifest.base_model)
    target = target or cache_dir() / "checkpoint"
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    installed = manifest.model_copy(update={"base_model": base_path})
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staging = Path(tmp) / "checkpoint"
        staging.mkdir()
        if manifest.generator_adapter is not None:
            model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.bfloat16)
            merged = PeftModel.from_pretrained(model, source / manifest.generator_adapter).merge_and_unload()
            merged.save_pretrained(staging / "generator")
            tokenizer.save_pretrained(staging / "generator")
            shutil.copytree(source / manifest.generator_adapter, staging / "generator-adapter")
            installed.generator, installed.generator_adapter = "generator", "generator-adapter"
            if manifest.base_model == BUNDLED_BASE and base is None:
                # The adapter was trained on the bundled weights, which the bundled GGUF quantizes.
                adapter_to_gguf(staging / "generator-adapter", pull_gguf(), staging / "generator-lora.gguf")
                installed.generator_lora = "generator-lora.gguf"
        if manifest.verifier not in (None, LIKELIHOOD):
            shutil.copytree(source / manifest.verifier, staging / "verifier")
            if (staging / "verifier" / PROBE_CONFIG).exists():  # reads the base's own tokenizer
                set_probe_base(staging / "verifier", base_path)
            else:
                if (staging / "verifier" / ADAPTER_CONFIG).exists():
                    set_adapter_base(staging / "verifier", base_path)
                tokenizer.save_pretrained(staging / "verifier")
            installed.verifier = "verifier"
        write_manifest(staging, installed)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target
