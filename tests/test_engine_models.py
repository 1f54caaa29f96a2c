"""The transformers generator and the HF verifier on tiny models built by the test."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mucode.engine.generators.base import SamplingParams  # noqa: E402
from mucode.engine.generators.hf import TransformersGenerator  # noqa: E402
from mucode.engine.trace import ChatMessage  # noqa: E402
from mucode.engine.verifier import load_code_verifier, load_verifier  # noqa: E402
from mucode.problems import Problem  # noqa: E402

from .tiny_models import build_causal_lm, build_classifier, build_tokenizer  # noqa: E402

MESSAGES = [
    ChatMessage(role="system", content="You write Python."),
    ChatMessage(role="user", content="Solve f."),
]


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> TransformersGenerator:
    path = build_causal_lm(tmp_path_factory.mktemp("tiny-lm"))
    return TransformersGenerator.load(path, dtype="float32")


def test_samples_n_completions_with_token_counts(generator: TransformersGenerator) -> None:
    params = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_tokens=12, seed=1)
    completions = asyncio.run(generator.sample(MESSAGES, params))
    assert len(completions) == 3
    text = generator.tokenizer.apply_chat_template(
        [m.model_dump() for m in MESSAGES], add_generation_prompt=True, tokenize=False
    )
    prompt_len = len(generator.tokenizer(text, add_special_tokens=False)["input_ids"])
    for c in completions:
        assert c.prompt_tokens == prompt_len
        assert 0 < c.completion_tokens <= 12
        assert c.finish_reason in ("stop", "length")
    assert len({c.text for c in completions}) > 1  # sampling differs across the n


def test_seed_reproduces_and_greedy_is_deterministic(generator: TransformersGenerator) -> None:
    params = SamplingParams(n=2, temperature=0.9, max_tokens=10, seed=5)
    first = asyncio.run(generator.sample(MESSAGES, params))
    again = asyncio.run(generator.sample(MESSAGES, params))
    assert [c.text for c in first] == [c.text for c in again]
    greedy = SamplingParams(n=2, temperature=0.0, max_tokens=10, seed=None)
    a, b = asyncio.run(generator.sample(MESSAGES, greedy))
    assert a.text == b.text


def test_a_stream_is_the_same_answer_token_by_token(generator: TransformersGenerator) -> None:
    """Pieces arrive as tokens are decoded and join to exactly the non-streamed greedy answer;
    text that could begin a stop string is held back until the answer ends."""
    for stop in ([], ["x"]):
        params = SamplingParams(temperature=0.0, max_tokens=12, stop=stop)

        async def run(params: SamplingParams = params) -> tuple[list[Any], Any]:
            (whole,) = await generator.sample(MESSAGES, params.model_copy(update={"n": 1}))
            return [piece async for piece in generator.stream(MESSAGES, params)], whole

        pieces, whole = asyncio.run(run())
        *texts, completion = pieces
        assert all(isinstance(t, str) for t in texts)
        assert "".join(texts) == whole.text == completion.text
        assert completion.completion_tokens == whole.completion_tokens
        if not stop:
            assert len(texts) > 3, texts


def test_verifier_scores_batches_consistently(tmp_path: Path) -> None:
    verifier = load_code_verifier(build_classifier(tmp_path / "tiny-verifier"))
    assert verifier is not None
    verifier.batch_size = 2
    problem = Problem(id="p", prompt="Write f.", entry_point="f")
    codes = ["def f(x):\n    return x\n", "def f(x):\n    return x + 1\n", "x = 1\n"]
    scores = asyncio.run(verifier.score_codes(problem, codes))
    assert len(scores) == 3
    assert len(set(scores)) == 3
    # Padding must not change a score: each code alone scores the same as in a padded batch.
    alone = [asyncio.run(verifier.score_codes(problem, [code]))[0] for code in codes]
    assert alone == pytest.approx(scores, abs=1e-4)


def test_no_verifier() -> None:
    assert load_verifier(None) is None
    assert load_verifier("none") is None


def test_fim_format_is_detected_from_the_tokenizer(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from mucode.engine.fim import detect_in_tokenizer

    build_tokenizer(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert detect_in_tokenizer(tok) is None  # no FIM tokens: `suffix` is refused, not ignored
    tok.add_special_tokens(
        {"additional_special_tokens": ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]}
    )
    fmt = detect_in_tokenizer(tok)
    assert fmt is not None
    assert fmt.name == "qwen"
    assert fmt.prompt("a", "b") == "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"
