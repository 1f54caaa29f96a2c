"""The verifier R(problem, candidate). Learned, in two designs: a sequence-classification model
with one output (fine-tuned in full or as a LoRA adapter; scores read at the last non-pad token, as
the HF classification heads for decoder models do from ``config.pad_token_id``), or a probe — a
linear head on the frozen base model's hidden states; inputs are batched. Untrained: ``likelihood``,
the generator's own mean token log-probability of each answer, read while it was written (no model
and no pass of its own). ``load_verifier(None)`` gives no verifier: selection then uses public tests
and a deterministic tie-break.
"""

from __future__ import annotations

import asyncio
import json
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from mucode.problems import Problem

from .trace import Candidate

VERIFIER_TEMPLATE = "Problem:\n{problem}\n\nCandidate solution:\n```python\n{code}\n```\n"


def verifier_input(problem_prompt: str, code: str) -> str:
    """The verifier's text for one (problem, code) pair; training uses the same function."""
    return VERIFIER_TEMPLATE.format(problem=problem_prompt.strip(), code=code.strip())


class Verifier(ABC):
    name: str
    # Whether it can score a program it did not see sampled (``/v1/score``'s given code).
    reads_code: bool = True

    @abstractmethod
    async def score(self, problem: Problem, candidates: list[Candidate]) -> list[float | None]:
        """One score per candidate; higher means more likely correct; None where it cannot tell."""


LIKELIHOOD = "likelihood"


class LikelihoodVerifier(Verifier):
    """How likely the generator found its own answer: the mean log-probability of its tokens
    under the model's raw distribution, which the backend reads as it samples. No score for a
    candidate whose backend does not report it, or that was not sampled (given code)."""

    name = LIKELIHOOD
    reads_code = False

    async def score(self, problem: Problem, candidates: list[Candidate]) -> list[float | None]:
        return [_mean_logprob(c) for c in candidates]


def _mean_logprob(candidate: Candidate) -> float | None:
    tokens = candidate.usage.completion_tokens
    return candidate.logprob / tokens if candidate.logprob is not None and tokens else None


class TorchVerifier(Verifier):
    """Scores texts in batches, one forward pass at a time (torch uses every core already)."""

    def __init__(self, tokenizer: Any, name: str, *, batch_size: int = 8, max_length: int = 2048) -> None:
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.max_length = max_length
        self._lock = threading.Lock()

    async def score(self, problem: Problem, candidates: list[Candidate]) -> list[float | None]:
        return [*await self.score_codes(problem, [c.code or "" for c in candidates])]

    async def score_codes(self, problem: Problem, codes: list[str]) -> list[float]:
        return await asyncio.to_thread(self.score_sync, problem.prompt, codes)

    def score_sync(self, problem_prompt: str, codes: list[str]) -> list[float]:
        import torch

        texts = [verifier_input(problem_prompt, code) for code in codes]
        scores: list[float] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                scores.extend(float(v) for v in self.batch_scores(texts[start : start + self.batch_size]))
        return scores

    @abstractmethod
    def batch_scores(self, texts: list[str]) -> Any:
        """A 1-D tensor: one score per text."""


class HFVerifier(TorchVerifier):
    """A Hugging Face ``AutoModelForSequenceClassification`` (num_labels=1), optionally a PEFT
    adapter on top of its base model."""

    def __init__(self, model: Any, tokenizer: Any, name: str, **limits: int) -> None:
        super().__init__(tokenizer, name, **limits)
        self.model = model

    def batch_scores(self, texts: list[str]) -> Any:
        batch = self.tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
        )
        return self.model(**batch.to(self.model.device)).logits[:, 0].float()


PROBE_CONFIG = "probe.json"  # {"base": the frozen model's folder, "max_length": tokens}
PROBE_WEIGHTS = "probe.safetensors"  # weight, bias, and the features' mean and scale


def verifier_tokenizer(path: str | Path) -> Any:
    """The tokenizer both designs read ``verifier_input`` with, in training and in the server."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # A long input loses the start of the problem, never the code at its end (where the score is
    # read); right padding keeps every text's own tokens at the same positions.
    tokenizer.padding_side, tokenizer.truncation_side = "right", "left"
    return tokenizer


def load_probe_base(base: str | Path, *, device: str = "cpu") -> tuple[Any, Any]:
    """The frozen causal LM and its tokenizer, set up for ``program_features``."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = verifier_tokenizer(base)
    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    return model.to(device).eval(), tokenizer


CODE_MARKER = "\n\nCandidate solution:\n```python\n"  # in VERIFIER_TEMPLATE, right before the code
LOGIT_CHUNK = 256  # code positions per vocabulary projection: bounds the logits held at once


def program_features(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> Any:
    """(texts, 2 × hidden size + 4) for ``verifier_input`` texts: the last layer's state at the
    last token, its mean over the tokens of the code (and its closing fence), and how likely the
    base finds them — mean and minimum token log-probability, the share of tokens below 10 %,
    log of the token count. What the probe verifier reads.

    Texts whose tokens before the code are the same (candidates for one problem) read that prefix
    once: its keys and values are computed a single time and every candidate's code runs on them,
    which is most of the cost saved, as a problem statement is about as long as a program."""
    import inspect

    import torch
    from transformers import DynamicCache

    # transformers 5.24 renamed the argument; vLLM's pin (<5.20) still has the old name.
    forward = inspect.signature(type(model.base_model).forward).parameters
    cache_arg = "cache" if "cache" in forward else "past_key_values"
    batch = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
    groups: dict[tuple[int, ...], list[int]] = {}
    splits = []
    for k, text in enumerate(texts):
        start = text.find(CODE_MARKER) + len(CODE_MARKER)
        ids = batch["input_ids"][k]
        code = next(
            (t for t, (first, _) in enumerate(batch["offset_mapping"][k]) if first >= start), len(ids) - 1
        )
        # The prefix stops one token short of the code: a token's probability is read from the
        # state before it, so that state has to come out of the per-candidate pass.
        split = max(code, 1) - 1
        splits.append(split)
        groups.setdefault(tuple(ids[:split]), []).append(k)
    rows: list[Any] = [None] * len(texts)
    device = model.device  # every tensor beside the model's weights (a GPU's, when served there)
    for prefix, members in groups.items():
        suffixes = [batch["input_ids"][k][splits[k] :] for k in members]
        width = max(len(s) for s in suffixes)
        ids = torch.tensor([s + [tokenizer.pad_token_id] * (width - len(s)) for s in suffixes], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in suffixes], device=device)
        cache = DynamicCache(config=model.config)
        if prefix:
            model.base_model(
                input_ids=torch.tensor([prefix], device=device), use_cache=True, **{cache_arg: cache}
            )
            cache.batch_repeat_interleave(len(members))
            mask = torch.cat(
                [torch.ones(len(members), len(prefix), dtype=mask.dtype, device=device), mask], dim=1
            )
        hidden = model.base_model(input_ids=ids, attention_mask=mask, **{cache_arg: cache}).last_hidden_state
        for row, (k, suffix) in enumerate(zip(members, suffixes, strict=True)):
            rows[k] = _features(
                model, hidden[row, : len(suffix)].float(), torch.tensor(suffix, device=device)
            )
    return torch.stack(rows)


def _features(model: Any, hidden: Any, ids: Any) -> Any:
    """One program's features from the states of its tokens, starting one before the code."""
    import math

    import torch

    logprobs = torch.cat(
        [
            torch.log_softmax(model.get_output_embeddings()(hidden[chunk - 1]).float(), dim=-1)
            .gather(1, ids[chunk].unsqueeze(1))
            .squeeze(1)
            for chunk in torch.split(torch.arange(1, len(ids), device=ids.device), LOGIT_CHUNK)
        ]
    )
    likelihood = torch.tensor(
        [
            float(logprobs.mean()),
            float(logprobs.min()),
            float((logprobs < math.log(0.1)).float().mean()),
            math.log(len(logprobs)),
        ],
        device=hidden.device,
    )
    return torch.cat([hidden[-1], hidden[1:].mean(dim=0), likelihood])


def probe_scores(head: dict[str, Any], features: Any) -> Any:
    """The probe's head on features (rows: programs): standardised, then linear. A 1-D tensor."""
    return ((features - head["mean"]) / head["scale"]) @ head["weight"] + head["bias"]


class ProbeVerifier(TorchVerifier):
    """A linear head on the frozen base model's hidden states (the ``probe`` design of
    training/verifier.py): one forward pass of the base per program, no fine-tuned weights."""

    def __init__(self, model: Any, tokenizer: Any, head: dict[str, Any], name: str, **limits: int) -> None:
        super().__init__(tokenizer, name, **limits)
        self.model = model
        self.head = head

    def batch_scores(self, texts: list[str]) -> Any:
        return probe_scores(self.head, program_features(self.model, self.tokenizer, texts, self.max_length))


def load_verifier(path: str | Path | None, *, device: str = "cpu") -> Verifier | None:
    """``likelihood``, or a verifier from a local folder: a probe (``probe.json``), a PEFT adapter
    (``adapter_config.json``) or a full classification model."""
    if path is None or str(path) in ("", "none"):
        return None
    if str(path) == LIKELIHOOD:
        return LikelihoodVerifier()
    import torch
    from transformers import AutoModelForSequenceClassification

    folder = Path(path)
    if (folder / PROBE_CONFIG).exists():
        from safetensors.torch import load_file

        config = json.loads((folder / PROBE_CONFIG).read_text())
        model, tokenizer = load_probe_base(folder / config["base"], device=device)
        head = load_file(folder / PROBE_WEIGHTS, device=device)
        return ProbeVerifier(model, tokenizer, head, name=str(folder), max_length=config["max_length"])
    if (folder / "adapter_config.json").exists():
        from peft import AutoPeftModelForSequenceClassification

        model = AutoPeftModelForSequenceClassification.from_pretrained(
            folder, num_labels=1, dtype=torch.float32
        )
    else:
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=torch.float32)
    tokenizer = verifier_tokenizer(folder)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device).eval()
    return HFVerifier(model, tokenizer, name=str(folder))


def load_code_verifier(path: str | Path | None, *, device: str | None = None) -> TorchVerifier | None:
    """A verifier that reads programs, for training's relabelling and held-out scoring: a folder;
    ``likelihood`` only scores answers while the generator writes them. By default on the GPU when
    there is one, as the training stages run (relabel and verifier-eval score every program)."""
    if path is None or str(path) in ("", "none"):
        return None
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    verifier = load_verifier(path, device=device)
    if verifier is not None and not isinstance(verifier, TorchVerifier):
        raise ValueError(
            f"the {verifier.name} verifier scores answers as they are sampled; give a verifier folder"
        )
    return verifier
