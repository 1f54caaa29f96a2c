"""A training checkpoint: a folder with a ``mucode.json`` manifest naming the generator and the
verifier inside it. ``MUCODE_CHECKPOINT=DIR`` (``mucode serve --checkpoint DIR``) loads both with
no other settings; training writes it (``mucode train iterate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

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
    verifier: str | None = Field(None, description="Verifier folder, relative to the checkpoint.")
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
    return None if relative is None else str((Path(folder) / relative).resolve())
