"""Tiny Hugging Face models built on the spot: random weights and a tokenizer trained here, so
tests exercise the real loading and generation code without any download."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import Qwen2Config

# ChatML, with generation markers around the assistant's answers so SFT can mask to them.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ m['content'] }}<|im_end|>{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "def f(x):\n    return x + 1\n",
    "```python\nimport math\nprint(math.sqrt(4))\n```",
    "Solve the following problem in Python. Your code must pass these tests: assert f(1) == 2",
    "The answer is correct. Fix the code. Execution feedback: f(1) returned 3, expected 2.",
] * 20


def build_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)


def qwen2_config(path: Path, **extra: Any) -> Qwen2Config:
    from transformers import AutoTokenizer, Qwen2Config

    tok = AutoTokenizer.from_pretrained(path)
    return Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        **extra,
    )


def build_causal_lm(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import Qwen2ForCausalLM

    build_tokenizer(path)
    torch.manual_seed(seed)
    Qwen2ForCausalLM(qwen2_config(path)).save_pretrained(path)
    return path


def build_classifier(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import Qwen2ForSequenceClassification

    build_tokenizer(path)
    torch.manual_seed(seed)
    Qwen2ForSequenceClassification(qwen2_config(path, num_labels=1)).save_pretrained(path)  # type: ignore[no-untyped-call]
    return path
