"""The learned verifier R(problem, code): a sequence-classification model with one output.

Scores are read at the last non-pad token (the HF classification heads for decoder models do
this from ``config.pad_token_id``); inputs are batched. ``load_verifier(None)`` gives no verifier:
selection then uses public tests and a deterministic tie-break.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from mucode.problems import Problem

VERIFIER_TEMPLATE = "Problem:\n{problem}\n\nCandidate solution:\n```python\n{code}\n```\n"


def verifier_input(problem_prompt: str, code: str) -> str:
    """The verifier's text for one (problem, code) pair; training uses the same function."""
    return VERIFIER_TEMPLATE.format(problem=problem_prompt.strip(), code=code.strip())


class Verifier(ABC):
    name: str

    @abstractmethod
    async def score(self, problem: Problem, codes: list[str]) -> list[float]:
        """One score per code; higher means more likely correct."""


class HFVerifier(Verifier):
    """A Hugging Face ``AutoModelForSequenceClassification`` (num_labels=1), optionally a PEFT
    adapter on top of its base model."""

    def __init__(
        self, model: Any, tokenizer: Any, name: str, *, batch_size: int = 8, max_length: int = 2048
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.max_length = max_length
        self._lock = threading.Lock()  # one forward pass at a time; torch uses every core already

    async def score(self, problem: Problem, codes: list[str]) -> list[float]:
        return await asyncio.to_thread(self.score_sync, problem.prompt, codes)

    def score_sync(self, problem_prompt: str, codes: list[str]) -> list[float]:
        import torch

        texts = [verifier_input(problem_prompt, code) for code in codes]
        scores: list[float] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start : start + self.batch_size],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                )
                logits = self.model(**batch).logits  # (batch, 1)
                scores.extend(float(v) for v in logits[:, 0].float())
        return scores


def load_verifier(path: str | Path | None, *, device: str = "cpu") -> HFVerifier | None:
    """A verifier from a local folder (full model, or PEFT adapter with ``adapter_config.json``)."""
    if path is None or str(path) in ("", "none"):
        return None
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(path)
    adapter = (folder / "adapter_config.json").exists()
    if adapter:
        from peft import AutoPeftModelForSequenceClassification

        model = AutoPeftModelForSequenceClassification.from_pretrained(
            folder, num_labels=1, dtype=torch.float32
        )
    else:
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device).eval()
    return HFVerifier(model, tokenizer, name=str(folder))
