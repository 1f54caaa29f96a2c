"""The llama.cpp backend's continuous batching, on the real default model (``make test-model``):
the batched answers are the ones llama-cpp-python's own sequential path gives, seeded samples are
reproducible on an idle server, and a cancelled or oversized request gives back its room."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from mucode.engine import prompts
from mucode.engine.generators.base import GeneratorError, SamplingParams
from mucode.engine.generators.llamacpp_batch import token_logprob
from mucode.engine.model_store import pull_gguf
from mucode.engine.trace import ChatMessage
from mucode.problems import load_humaneval

pytestmark = pytest.mark.model

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make .venv/.llama)")


@pytest.fixture(scope="module")
def generator() -> Iterator[Any]:
    from mucode.engine.generators.llamacpp import LlamaCppGenerator

    loaded = LlamaCppGenerator.load(pull_gguf(), n_ctx=2048, kv_tokens=4096, max_sequences=8)
    yield loaded
    asyncio.run(loaded.close())


def test_greedy_answer_is_token_identical_to_sequential_llama_cpp(generator: Any) -> None:
    # HumanEval/2 has a 0.02-logit near tie that batch shape can flip on some CPUs (docs/benchmarks.md).
    problem = next(p for p in load_humaneval() if p.id == "HumanEval/0")
    chat: Any = [m.model_dump() for m in prompts.DEFAULT.first_turn(problem)]
    prompt = generator._chat_template(messages=chat).prompt + prompts.DEFAULT.prefill
    reference = llama_cpp.Llama(model_path=str(pull_gguf()), n_ctx=2048, verbose=False)
    expected: Any = reference.create_completion(
        prompt=prompt, temperature=0.0, top_k=0, min_p=0.0, max_tokens=160, stop=prompts.DEFAULT.stop
    )
    params = SamplingParams(n=3, temperature=0.0, max_tokens=160, stop=prompts.DEFAULT.stop)
    completions = asyncio.run(generator.complete(prompt, params))
    assert [c.text for c in completions] == [expected["choices"][0]["text"]] * 3
    assert completions[0].completion_tokens == expected["usage"]["completion_tokens"]
    assert completions[0].prompt_tokens == expected["usage"]["prompt_tokens"]


def test_seeded_samples_are_reproducible_on_an_idle_server(generator: Any) -> None:
    mine = SamplingParams(n=3, temperature=0.8, max_tokens=48, seed=5)
    other = SamplingParams(n=4, temperature=0.8, max_tokens=64, seed=9)

    async def run() -> tuple[list[str], list[str], list[str], int]:
        alone = await generator.complete("def fibonacci(n):", mine)
        again = await generator.complete("def fibonacci(n):", mine)
        beside, others = await asyncio.gather(
            generator.complete("def fibonacci(n):", mine), generator.complete("class Stack:", other)
        )
        return [c.text for c in alone], [c.text for c in again], [c.text for c in beside], len(others)

    alone, again, beside, others = asyncio.run(run())
    assert len(set(alone)) == 3  # three different samples, not one copied
    assert alone == again
    # Next to another request the cache is laid out differently: llama.cpp does not promise the
    # same last bits there, so only the shape is checked.
    assert len(beside) == 3 and others == 4


def test_cancelled_and_oversized_requests_give_back_their_room(generator: Any) -> None:
    decoder = generator.decoder
    params = SamplingParams(n=2, temperature=0.7, max_tokens=1000, seed=1, ignore_eos=True)

    async def cancel_midway() -> None:
        task = asyncio.create_task(generator.complete("def long_story():", params))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The decoder lets go of the request at its next step.
        for _ in range(100):
            if decoder._free_cells == decoder.kv_tokens:
                break
            await asyncio.sleep(0.05)

    asyncio.run(cancel_midway())
    assert decoder._free_cells == decoder.kv_tokens
    assert sorted(decoder._free_ids) == list(range(decoder.max_sequences))

    with pytest.raises(GeneratorError, match="context"):
        asyncio.run(generator.complete("x", SamplingParams(max_tokens=4000)))
    with pytest.raises(GeneratorError, match="KV cache"):
        asyncio.run(generator.complete("x", SamplingParams(n=5, temperature=0.7, max_tokens=1500)))
    after = SamplingParams(n=2, temperature=0.7, max_tokens=8, seed=0, ignore_eos=True)
    done = asyncio.run(generator.complete("def ok():", after))
    assert [(c.completion_tokens, c.finish_reason) for c in done] == [(8, "length")] * 2


def test_greedy_drafting_changes_nothing_but_near_ties(generator: Any) -> None:
    """Prompt-lookup drafting on greedy answers (turn 1 of HumanEval problems): the answer is
    the one decoded without drafting, token for token, except where that answer's best two tokens
    were within 0.1 logits of each other: drafted tokens are computed by llama.cpp's multi-row
    kernels, whose last bits differ from the one-row kernel's, which only a near tie can notice."""
    reference = llama_cpp.Llama(model_path=str(pull_gguf()), n_ctx=2048, logits_all=True, verbose=False)
    fmt = prompts.DEFAULT
    params = SamplingParams(n=1, temperature=0.0, max_tokens=200, prefill=fmt.prefill, stop=fmt.stop)
    identical = 0
    problems = [p for p in load_humaneval() if p.public_tests][:8]
    for problem in problems:
        chat: Any = [m.model_dump() for m in fmt.first_turn(problem)]
        prompt = generator._chat_template(messages=chat).prompt + fmt.prefill
        generator.decoder.draft_tokens = 0
        (plain,) = asyncio.run(generator.complete(prompt, params))
        generator.decoder.draft_tokens = 12
        try:
            (drafted,) = asyncio.run(generator.complete(prompt, params))
        finally:
            generator.decoder.draft_tokens = 0
        if drafted.text == plain.text:
            identical += 1
            continue
        first = next(i for i, (a, b) in enumerate(zip(plain.text, drafted.text, strict=False)) if a != b)
        answer: Any = reference.create_completion(
            prompt=prompt, temperature=0.0, top_k=0, min_p=0.0, max_tokens=200, stop=fmt.stop, logprobs=2
        )
        assert answer["choices"][0]["text"] == plain.text
        logprobs = answer["choices"][0]["logprobs"]
        at = max(i for i, offset in enumerate(logprobs["text_offset"]) if offset <= len(prompt) + first)
        best, second = sorted(logprobs["top_logprobs"][at].values(), reverse=True)[:2]
        assert best - second < 0.1, (problem.id, logprobs["tokens"][at], best - second)
    assert identical >= len(problems) // 2


def test_a_streamed_chat_is_the_same_answer_piece_by_piece(generator: Any) -> None:
    """Tokens arrive as they are decoded; the pieces join to exactly the non-streamed answer, and
    text that might begin a stop string is held back, so a stop never leaks into the stream."""
    messages = [ChatMessage(role="user", content="Write a Python function that adds two numbers.")]
    for stop in ([], ["```\n"]):
        params = SamplingParams(temperature=0.0, max_tokens=80, stop=stop)

        async def run(params: SamplingParams = params) -> tuple[list[Any], list[Any]]:
            whole = await generator.sample(messages, params)
            return [piece async for piece in generator.stream(messages, params)], whole

        pieces, (whole,) = asyncio.run(run())
        *texts, completion = pieces
        assert len(texts) > 5 and all(isinstance(t, str) for t in texts)
        assert "".join(texts) == whole.text == completion.text
        assert completion.completion_tokens == whole.completion_tokens


def test_a_watched_sample_reports_each_samples_tokens_as_they_are_written(generator: Any) -> None:
    messages = [ChatMessage(role="user", content="Write a Python function that reverses a string.")]
    params = SamplingParams(n=3, temperature=0.8, max_tokens=40, seed=3)
    reports: list[list[int]] = []

    async def run() -> list[Any]:
        completions: list[Any] = await generator.sample_watched(messages, params, reports.append)
        return completions

    completions = asyncio.run(run())
    assert len(reports) > 5 and all(len(r) == 3 for r in reports)
    for k in range(3):  # each sample's count only grows, and ends at its completion's length
        counts = [r[k] for r in reports]
        assert counts == sorted(counts)
        assert counts[-1] == completions[k].completion_tokens
    # The same answers as an unwatched sample with the same seed.
    assert [c.text for c in completions] == [c.text for c in asyncio.run(generator.sample(messages, params))]


async def cancel_until_idle(task: asyncio.Task[Any], decoder: Any) -> None:
    """Cancel the last running request: the decoder lets go of it at its next step, and idles."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if not decoder._running:
            break
        await asyncio.sleep(0.05)


@pytest.mark.timeout(900)  # ~1 min on a quiet 2-core machine; several beside an evaluation
def test_a_prompt_that_begins_like_a_kept_one_skips_that_part(generator: Any) -> None:
    """While other requests run, a computed prompt stays in the cache: the same prompt again and a
    longer one that begins with it (a feedback turn) compute only what is new and answer as before;
    kept prompts give way to a request that needs the room, and everything is given back when the
    decoder idles."""
    decoder = generator.decoder
    problem = next(p for p in load_humaneval() if p.id == "HumanEval/0")
    chat: Any = [m.model_dump() for m in prompts.DEFAULT.first_turn(problem)]
    prompt = generator._chat_template(messages=chat).prompt + prompts.DEFAULT.prefill
    greedy = SamplingParams(temperature=0.0, max_tokens=32, stop=prompts.DEFAULT.stop)
    busy = SamplingParams(temperature=0.7, max_tokens=1000, seed=0, ignore_eos=True)
    size = len(generator.llama.tokenize(prompt.encode(), add_bos=False, special=True))

    async def run() -> tuple[list[str], list[int], int]:
        companion = asyncio.create_task(generator.complete("def long_story():", busy))
        await asyncio.sleep(0.5)
        texts, reused = [], []
        for text in (prompt, prompt, prompt + "    # sorted first\n"):
            before = decoder.reused_tokens
            (answer,) = await generator.complete(text, greedy)
            texts.append(answer.text)
            reused.append(decoder.reused_tokens - before)
        # A request that fits only in the room the kept prompts hold: they make way for it.
        kept = len(decoder._kept)
        answers = (decoder._free_cells + sum(len(k.tokens) for k in decoder._kept)) // 2 - 8
        big = SamplingParams(n=2, temperature=0.7, max_tokens=answers, seed=1, stop=["\n"])
        assert 2 * answers > decoder._free_cells
        await generator.complete("x = 1", big)
        evicted = kept - len(decoder._kept)
        await cancel_until_idle(companion, decoder)
        return texts, reused, evicted

    texts, reused, evicted = asyncio.run(run())
    assert reused[0] == 0 and reused[1] == size - 1 and reused[2] >= size - 2, (reused, size)
    # Beside another request the last bits may differ (a near tie can then branch later), but
    # keys and values taken from the wrong cells or positions would derail the answer at once.
    assert len(texts[0]) > 40 and texts[1][:40] == texts[0][:40] and texts[2]
    assert evicted > 0
    assert decoder._free_cells == decoder.kv_tokens and not decoder._kept
    assert sorted(decoder._free_ids) == list(range(decoder.max_sequences))


@pytest.mark.timeout(900)  # ~1 min on a quiet 2-core machine
def test_streams_decode_as_the_shared_buffer_with_running_sequences_packed(generator: Any) -> None:
    """A KV stream per sequence (MUCODE_KV_STREAMS): a request's prompt, computed once and copied
    to its other samples, gives the shared buffer's answers on an idle decoder; when a request
    ends, the sequences above it move down into its streams (running ids stay consecutive) and
    decode on as if nothing happened; a feedback turn still starts from its kept prompt."""
    from mucode.engine.generators.llamacpp import LlamaCppGenerator

    problem = next(p for p in load_humaneval() if p.id == "HumanEval/0")
    chat: Any = [m.model_dump() for m in prompts.DEFAULT.first_turn(problem)]
    prompt = generator._chat_template(messages=chat).prompt + prompts.DEFAULT.prefill
    sampled = SamplingParams(n=2, temperature=0.8, max_tokens=80, seed=5)
    greedy = SamplingParams(temperature=0.0, max_tokens=32, stop=prompts.DEFAULT.stop)
    shared = [c.text for c in asyncio.run(generator.complete(prompt, sampled))]
    streamed = LlamaCppGenerator.load(
        pull_gguf(), n_ctx=2048, max_sequences=8, prefix_cache=4, kv_streams=True
    )
    decoder = streamed.decoder
    running_ids: list[list[int]] = []

    async def run() -> tuple[list[str], list[str], int]:
        alone = [c.text for c in await streamed.complete(prompt, sampled)]
        story = SamplingParams(n=2, temperature=0.7, max_tokens=400, seed=1, ignore_eos=True)
        first = asyncio.create_task(streamed.complete("def long_story():", story))  # streams 0, 1
        await asyncio.sleep(0.3)
        brief = SamplingParams(n=2, temperature=0.7, max_tokens=10, seed=2, ignore_eos=True)
        short = asyncio.create_task(streamed.complete("def short():", brief))  # streams 2, 3
        await asyncio.sleep(0.3)
        moved = asyncio.create_task(streamed.complete(prompt, sampled))  # 4, 5, then 2, 3
        while not moved.done():
            running_ids.append(sorted(s.seq_id for r in decoder._running for s in r.sequences))
            await asyncio.sleep(0.1)
        await short
        before = decoder.reused_tokens
        await streamed.complete(prompt + "    # sorted first\n", greedy)
        reused = decoder.reused_tokens - before
        await cancel_until_idle(first, decoder)
        return alone, [c.text for c in await moved], reused

    try:
        alone, beside, reused = asyncio.run(run())
        assert alone == shared and len(alone[0]) > 40
        assert [0, 1, 2, 3, 4, 5] in running_ids and running_ids[-1] == [0, 1, 2, 3]
        # Each sequence attends to its own stream only: its neighbours, and a move, change nothing.
        assert beside == alone
        size = len(streamed.llama.tokenize(prompt.encode(), add_bos=False, special=True))
        assert reused >= size - 2, (reused, size)
        assert decoder._free_cells == decoder.kv_tokens and not decoder._kept
        assert sorted(decoder._free_ids) == list(range(decoder.max_sequences))
    finally:
        asyncio.run(streamed.close())


def test_completions_report_the_log_probability_of_their_tokens(generator: Any) -> None:
    """What the likelihood verifier ranks by, read while sampling: the sum of each token's raw
    log-probability, as the model gives it for the same tokens read in one pass afterwards."""
    problem = next(p for p in load_humaneval() if p.id == "HumanEval/0")
    chat: Any = [m.model_dump() for m in prompts.DEFAULT.first_turn(problem)]
    prompt = generator._chat_template(messages=chat).prompt + prompts.DEFAULT.prefill
    params = SamplingParams(n=3, temperature=0.8, max_tokens=96, seed=3)
    completions = asyncio.run(generator.complete(prompt, params))
    reference = llama_cpp.Llama(model_path=str(pull_gguf()), n_ctx=2048, logits_all=True, verbose=False)
    context = reference.tokenize(prompt.encode(), add_bos=True, special=True)
    for completion in completions:
        answer = reference.tokenize(completion.text.encode(), add_bos=False, special=False)
        assert completion.logprob is not None and len(answer) == completion.completion_tokens
        reference.reset()
        reference.eval(context + answer)
        logits = reference.scores[len(context) - 1 : len(context) - 1 + len(answer)]
        forced = sum(token_logprob(row, token) for row, token in zip(logits, answer, strict=True))
        assert completion.logprob < 0
        # Batched and one-sequence kernels differ in the last bits, not in the figure.
        assert completion.logprob == pytest.approx(forced, abs=0.01 * len(answer))
