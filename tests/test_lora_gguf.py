"""A trained generator's PEFT adapter as a llama.cpp GGUF LoRA: named after the base's tensors,
in PEFT's layout, its alpha kept; what a GGUF LoRA cannot hold is refused. With the real model:
llama.cpp with the adapter moves each token's log-probability as PEFT does, and the batch
decoder applies it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mucode.engine.lora_gguf import AdapterConversionError, adapter_to_gguf

HIDDEN, FFN, RANK = 8, 16, 2
SHAPES = {"self_attn.q_proj": (HIDDEN, HIDDEN), "mlp.down_proj": (HIDDEN, FFN)}  # (out, in)


def tiny_base(path: Path) -> Path:
    """A two-block qwen2 GGUF holding just the tensors the adapter touches (the converter reads
    only the architecture, the block count and the tensor names)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_block_count(2)
    for block in range(2):
        writer.add_tensor(f"blk.{block}.attn_q.weight", np.zeros((HIDDEN, HIDDEN), np.float32))
        writer.add_tensor(f"blk.{block}.ffn_down.weight", np.zeros((HIDDEN, FFN), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def peft_adapter(folder: Path, modules: dict[str, tuple[int, int]] = SHAPES, **config: Any) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    weights = {}
    for block in range(2):
        for module, (out, inp) in modules.items():
            key = f"base_model.model.model.layers.{block}.{module}"
            weights[f"{key}.lora_A.weight"] = torch.randn(RANK, inp, dtype=torch.bfloat16)
            weights[f"{key}.lora_B.weight"] = torch.randn(out, RANK, dtype=torch.bfloat16)
    folder.mkdir(parents=True)
    save_file(weights, folder / "adapter_model.safetensors")
    settings = {"peft_type": "LORA", "r": RANK, "lora_alpha": 4, "bias": "none", **config}
    (folder / "adapter_config.json").write_text(json.dumps(settings))
    return weights


def test_adapter_converts_to_a_gguf_lora_named_after_the_base_tensors(tmp_path: Path) -> None:
    import gguf

    weights = peft_adapter(tmp_path / "adapter")
    out = adapter_to_gguf(tmp_path / "adapter", tiny_base(tmp_path / "base.gguf"), tmp_path / "lora.gguf")
    reader = gguf.GGUFReader(str(out))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 4.0
    tensors = {t.name: t for t in reader.tensors}
    assert sorted(tensors) == sorted(
        f"blk.{b}.{name}.weight.lora_{part}"
        for b in range(2)
        for name in ("attn_q", "ffn_down")
        for part in "ab"
    )
    down_a = tensors["blk.1.ffn_down.weight.lora_a"]
    down_b = tensors["blk.1.ffn_down.weight.lora_b"]
    # GGUF lists dimensions innermost first: A is (in, r), B is (r, out), as llama.cpp checks them.
    assert [int(n) for n in down_a.shape] == [FFN, RANK] and [int(n) for n in down_b.shape] == [RANK, HIDDEN]
    expected = weights["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"].float().numpy()
    assert np.allclose(np.asarray(down_b.data, np.float32).reshape(HIDDEN, RANK), expected, atol=1e-2)


@pytest.mark.parametrize(
    ("config", "modules", "error"),
    [
        ({"use_dora": True}, SHAPES, "use_dora"),
        ({"bias": "all"}, SHAPES, "biases"),
        ({"peft_type": "IA3"}, SHAPES, "not a LoRA adapter"),
        ({}, {"self_attn.k_proj": (HIDDEN, HIDDEN)}, "k_proj has no tensor in the base GGUF"),
    ],
)
def test_what_a_gguf_lora_cannot_hold_is_refused(
    tmp_path: Path, config: dict[str, Any], modules: dict[str, tuple[int, int]], error: str
) -> None:
    peft_adapter(tmp_path / "adapter", modules, **config)
    with pytest.raises(AdapterConversionError, match=error):
        adapter_to_gguf(tmp_path / "adapter", tiny_base(tmp_path / "base.gguf"), tmp_path / "lora.gguf")
    assert not (tmp_path / "lora.gguf").exists()


TEXT = (
    "def fibonacci(n):\n"
    '    """Return the n-th Fibonacci number."""\n'
    "    if n < 2:\n"
    "        return n\n"
    "    return fibonacci(n - 1) + fibonacci(n - 2)\n"
)


def _forced_logprobs(llama: Any, tokens: list[int]) -> np.ndarray:
    from mucode.engine.generators.llamacpp_batch import token_logprob

    llama.reset()
    llama.eval(tokens)
    return np.array([token_logprob(llama.scores[i], tokens[i + 1]) for i in range(len(tokens) - 1)])


@pytest.mark.model
@pytest.mark.timeout(900)
def test_llamacpp_with_the_converted_adapter_is_the_peft_model(tmp_path: Path) -> None:
    """A random adapter, large enough to move every token: the change it makes to each token's
    log-probability in llama.cpp (Q4_K_M base) follows the change PEFT makes (bf16 base, float32);
    a wrong name or layout would leave them unrelated. The batch decoder then samples from the
    adapted model, log-probabilities and all."""
    import llama_cpp
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mucode.engine.generators.base import SamplingParams
    from mucode.engine.generators.llamacpp import LlamaCppGenerator
    from mucode.engine.model_store import pull_gguf, pull_hf
    from mucode.engine.trace import ChatMessage

    tokenizer = AutoTokenizer.from_pretrained(pull_hf())
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    model = AutoModelForCausalLM.from_pretrained(pull_hf(), dtype=torch.float32)

    def peft_logprobs(m: Any) -> np.ndarray:
        with torch.no_grad():
            logits = m(ids).logits[0, :-1]
        return torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0].numpy()

    before = peft_logprobs(model)
    torch.manual_seed(0)
    adapted = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
    )
    with torch.no_grad():
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                param.mul_(0.15)
    after = peft_logprobs(adapted)
    adapted.save_pretrained(str(tmp_path / "adapter"))
    lora = adapter_to_gguf(tmp_path / "adapter", pull_gguf(), tmp_path / "adapter.gguf")

    base = llama_cpp.Llama(model_path=str(pull_gguf()), n_ctx=512, logits_all=True, verbose=False)
    tokens = base.tokenize(TEXT.encode(), add_bos=False, special=True)
    assert tokens == ids[0].tolist()
    with_lora = llama_cpp.Llama(
        model_path=str(pull_gguf()), n_ctx=512, logits_all=True, verbose=False, lora_path=str(lora)
    )
    peft_change = after - before
    llama_change = _forced_logprobs(with_lora, tokens) - _forced_logprobs(base, tokens)
    assert peft_change.std() > 0.1  # the adapter matters
    assert np.corrcoef(peft_change, llama_change)[0, 1] > 0.9  # 0.997 measured (quantization noise)

    prompt = TEXT[: TEXT.index("    if")]

    def sample(*prompts: str, **adapter: Any) -> tuple[Any, list[Any]]:
        """The batch decoder's seeded samples of ``prompts``, decoded side by side (the decoder
        closed after them); a KV stream each, so that a sample does not depend on its neighbours."""
        decoder = LlamaCppGenerator.load(
            pull_gguf(), n_ctx=1024, max_sequences=2, kv_streams=True, prefix_cache=0, **adapter
        )
        params = SamplingParams(n=1, temperature=1.0, max_tokens=48, seed=0)

        async def together() -> list[Any]:
            return await asyncio.gather(*(decoder.complete(p, params) for p in prompts))

        try:
            done = asyncio.run(together())
        finally:
            asyncio.run(decoder.close())
        return decoder, [one for (one,) in done]

    generator, (completion,) = sample(prompt, lora=lora)
    assert generator.adapter == "adapter.gguf" and generator.description.endswith("+ adapter.gguf")
    context = with_lora.tokenize(prompt.encode(), add_bos=True, special=True)
    answer = with_lora.tokenize(completion.text.encode(), add_bos=False, special=False)
    forced = _forced_logprobs(with_lora, context + answer)[len(context) - 1 :].sum()
    unadapted = _forced_logprobs(base, context + answer)[len(context) - 1 :].sum()
    assert completion.logprob == pytest.approx(forced, abs=0.01 * len(answer))
    # Measured: 0.03 from the adapted model's figure, 0.20 from the base's.
    assert abs(completion.logprob - forced) < abs(completion.logprob - unadapted) / 3

    # MUCODE_LORA_SCALE: at scale 0 the adapter is loaded and moves nothing; the same sample, read
    # as likely, as the decoder without it, where the adapter at full scale reads it otherwise.
    scaled, (unscaled,) = sample(prompt, lora=lora, lora_scale=0.0)
    library = "import pandas as pd\n\n" + prompt
    _, (plain, plain_library) = sample(prompt, library)
    assert scaled.adapter == "adapter.gguf at scale 0"
    assert unscaled.text == plain.text
    assert unscaled.logprob == pytest.approx(plain.logprob, abs=1e-3)
    assert abs(completion.logprob - plain.logprob) > 0.1

    # MUCODE_LORA_SCOPE=data-libraries: the adapter reaches the prompt that names a data library
    # and not the other, decoded side by side (a pass each); each sample is the one the decoder
    # gives with the adapter everywhere, or without it.
    _, (adapted_library,) = sample(library, lora=lora)
    scoped, (scoped_plain, scoped_library) = sample(prompt, library, lora=lora, lora_scope="data-libraries")
    assert scoped.adapter == "adapter.gguf on data-libraries problems"
    assert (scoped_plain.text, scoped_library.text) == (plain.text, adapted_library.text)
    assert scoped_plain.logprob == pytest.approx(plain.logprob, abs=1e-3)
    assert scoped_library.logprob == pytest.approx(adapted_library.logprob, abs=1e-3)
    assert abs(adapted_library.logprob - plain_library.logprob) > 0.1

    # A chat is scoped by its problem (the first user message), whichever way it is decoded.
    chats = {
        "Use pandas to count the rows of each group.": True,
        "Write add(a, b).": False,
    }
    generator = LlamaCppGenerator.load(
        pull_gguf(), n_ctx=1024, max_sequences=2, lora=lora, lora_scope="data-libraries"
    )
    asked: list[bool] = []
    submit = generator.decoder.submit

    def recorded(
        prompt: list[int], params: Any, on_text: Any = None, on_tokens: Any = None, adapter: bool = True
    ) -> Any:
        asked.append(adapter)
        return submit(prompt, params, on_text, on_tokens, adapter=adapter)

    generator.decoder.submit = recorded  # type: ignore[method-assign]
    one = SamplingParams(n=1, temperature=0.0, max_tokens=2)

    async def every_way(problem: str) -> None:
        chat = [ChatMessage(role="user", content=problem)]
        await generator.sample(chat, one)
        await generator.sample_watched(chat, one, lambda written: None)
        async for _ in generator.stream([*chat, ChatMessage(role="user", content="import numpy")], one):
            pass

    try:
        for problem, expected in chats.items():
            asked.clear()
            asyncio.run(every_way(problem))
            assert asked == [expected] * 3, problem
            named = generator.describe([ChatMessage(role="user", content=problem)])
            assert named == f"llama-cpp:{pull_gguf().name}" + (f" + {generator.adapter}" if expected else "")
    finally:
        asyncio.run(generator.close())
