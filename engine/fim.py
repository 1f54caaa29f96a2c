"""Fill-in-the-middle prompts for code models trained with FIM special tokens (``/v1/completions``
with ``suffix``): the text before the cursor, the text after it, and the model writes the middle.
The format is recognised from the tokenizer's vocabulary when the model loads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel


class FimFormat(BaseModel):
    name: str
    prefix: str
    suffix: str
    middle: str

    def prompt(self, before: str, after: str) -> str:
        # Prefix-suffix-middle order, the one all three families were trained on.
        return f"{self.prefix}{before}{self.suffix}{after}{self.middle}"


KNOWN = [
    FimFormat(name="qwen", prefix="<|fim_prefix|>", suffix="<|fim_suffix|>", middle="<|fim_middle|>"),
    FimFormat(name="starcoder", prefix="<fim_prefix>", suffix="<fim_suffix>", middle="<fim_middle>"),
    FimFormat(name="deepseek", prefix="<｜fim▁begin｜>", suffix="<｜fim▁hole｜>", middle="<｜fim▁end｜>"),
]


def detect(is_special_token: Callable[[str], bool]) -> FimFormat | None:
    """The first known format whose three markers are each one special token of the model."""
    for fmt in KNOWN:
        if all(is_special_token(marker) for marker in (fmt.prefix, fmt.suffix, fmt.middle)):
            return fmt
    return None


def detect_in_tokenizer(tokenizer: Any) -> FimFormat | None:
    """``detect`` over a Hugging Face tokenizer's special and added tokens."""
    special = set(getattr(tokenizer, "all_special_tokens", [])) | set(
        getattr(tokenizer, "added_tokens_encoder", {})
    )
    return detect(special.__contains__)
