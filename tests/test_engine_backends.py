"""The openai backend against a live OpenAI-compatible upstream, backend choice, and `mucode solve`."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from mucode.engine.generators.base import GeneratorError, SamplingParams
from mucode.engine.generators.openai_compat import OpenAIGenerator
from mucode.engine.loading import compute_dtype, load_generator, resolve_backend
from mucode.engine.settings import EngineSettings
from mucode.engine.trace import ChatMessage

from .helpers import LiveServer, free_port, run_cli

MESSAGES = [ChatMessage(role="user", content="Write f.")]


def upstream_app(honours_n: bool) -> FastAPI:
    app = FastAPI()
    app.state.requests = []

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        app.state.requests.append(body)
        n = body.get("n", 1) if honours_n else 1
        seed = body.get("seed")
        return {
            "id": "x",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": i,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": f"```python\ndef f(): return {seed}:{i}\n```",
                    },
                }
                for i in range(n)
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7 * n, "total_tokens": 11 + 7 * n},
        }

    return app


@pytest.fixture(params=[True, False], ids=["upstream-with-n", "upstream-without-n"])
def upstream(request: pytest.FixtureRequest) -> Iterator[tuple[str, FastAPI]]:
    app = upstream_app(request.param)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1", app
    server.should_exit = True
    thread.join(5)


def test_openai_backend_returns_n_completions(upstream: tuple[str, FastAPI]) -> None:
    url, app = upstream

    async def run() -> list[Any]:
        generator = OpenAIGenerator(url, "qwen", api_key="k")
        try:
            return await generator.sample(
                MESSAGES, SamplingParams(n=3, temperature=0.5, max_tokens=50, seed=10)
            )
        finally:
            await generator.close()

    completions = asyncio.run(run())
    assert len(completions) == 3
    assert len({c.text for c in completions}) == 3  # distinct samples, also when emulating n
    assert all(c.prompt_tokens == 11 and c.completion_tokens == 7 for c in completions)
    first = app.state.requests[0]
    assert first["model"] == "qwen"
    assert first["n"] == 3
    assert first["max_tokens"] == 50
    assert first["seed"] == 10


def test_openai_backend_reports_an_unreachable_upstream() -> None:
    async def run() -> None:
        generator = OpenAIGenerator(f"http://127.0.0.1:{free_port()}/v1", "m", timeout_s=2)
        try:
            await generator.sample(MESSAGES, SamplingParams())
        finally:
            await generator.close()

    with pytest.raises(GeneratorError, match="unreachable"):
        asyncio.run(run())


def test_backend_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_backend(EngineSettings(generator="transformers")) == "transformers"
    assert resolve_backend(EngineSettings(openai_base_url="http://x/v1")) == "openai"
    monkeypatch.setenv("MUCODE_GENERATOR", "scripted")
    with pytest.raises(GeneratorError, match="MUCODE_SCRIPT"):
        load_generator(EngineSettings())
    script = tmp_path / "script.json"
    script.write_text(json.dumps([["a"], ["b"]]))
    monkeypatch.setenv("MUCODE_SCRIPT", str(script))
    assert load_generator(EngineSettings()).description == "scripted:script.json"
    with pytest.raises(GeneratorError, match="gguf"):
        load_generator(EngineSettings(generator="llama-cpp", model="/some/folder"))


def test_solve_cli_with_a_scripted_generator(tmp_path: Path) -> None:
    (tmp_path / "problem.md").write_text('def double(x):\n    """Return twice x."""\n')
    (tmp_path / "tests.py").write_text("assert double(2) == 4\nassert double(0) == 0\n")
    script = [
        ["```python\ndef double(x):\n    return x + 2\n```"],
        ["```python\ndef double(x):\n    return 2 * x\n```"],
    ]
    (tmp_path / "script.json").write_text(json.dumps(script))
    env = {
        "MUCODE_GENERATOR": "scripted",
        "MUCODE_SCRIPT": str(tmp_path / "script.json"),
        "PATH": "/usr/bin:/bin",
    }
    files = [str(tmp_path / "problem.md"), "--tests", str(tmp_path / "tests.py"), "--n", "2"]
    done = run_cli("solve", *files, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED 2/2 public tests after 2 turn(s)" in done.stdout
    assert "return 2 * x" in done.stdout
    as_json = run_cli("solve", *files, "--json", env=env)
    trace = json.loads(as_json.stdout)
    assert trace["stop_reason"] == "passed"
    assert len(trace["turns"]) == 2
    assert trace["turns"][0]["candidates"][0]["execution"]["results"][1]["message"] == (
        "double(0) returned 2, expected 0"
    )


def test_auto_dtype_follows_what_the_hardware_computes_in(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert compute_dtype("float16", gpu=False) == "float16"  # an explicit choice always wins
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert compute_dtype("auto", gpu=False) == "float32"  # AVX2 only: bfloat16 would be emulated
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert compute_dtype("auto", gpu=False) == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert compute_dtype("auto", gpu=True) == "float16"


def test_prompt_lookup_drafts_what_followed_the_latest_earlier_occurrence() -> None:
    from array import array

    from mucode.engine.generators.llamacpp_batch import draft

    #                 0  1  2  3  4  5  6  7  8  9  10 11 12
    history = array("i", [5, 1, 2, 3, 9, 9, 1, 2, 3, 7, 8, 1, 2])
    # The last 4 tokens (7 8 1 2) occur nowhere earlier, nor do the last 3 (8 1 2); the last 2
    # (1 2) last occurred at 6, followed by 3 7 8.
    assert draft(history, 3) == [3, 7, 8]
    assert draft(history, 1) == [3]
    assert draft(history, 50) == [3, 7, 8, 1, 2]  # up to the end of the history
    assert draft(array("i", [4, 5, 6, 7]), 5) == []  # nothing repeats
    assert draft(array("i", [1]), 5) == []
    # Matched as whole tokens: a byte pattern that straddles two tokens is not a match.
    # (the bytes of 1, 2 sit inside the first three tokens, three bytes off their boundaries)
    straddle = array("i", [0x01000000, 0x02000000, 0x05000000, 1, 2])
    assert straddle.tobytes().find(array("i", [1, 2]).tobytes()) == 3
    assert draft(straddle, 2) == []
    # A longer match wins over a more recent shorter one.
    history = array("i", [1, 2, 3, 4, 50, 3, 4, 60, 1, 2, 3, 4])
    assert draft(history, 1) == [50]


def test_openai_backend_streams_the_upstreams_tokens(live_server: LiveServer) -> None:
    """The upstream here is a mucode server whose plain model streams word by word: the pieces
    arrive one by one and join to the non-streamed answer, and the usage comes from the stream."""

    async def run() -> tuple[list[Any], list[Any], list[Any]]:
        generator = OpenAIGenerator(live_server.url + "/v1", "script.json")
        params = SamplingParams(temperature=0.0, max_tokens=64)
        try:
            chat = [piece async for piece in generator.stream(MESSAGES, params)]
            whole = await generator.sample(MESSAGES, params)
            raw = [piece async for piece in generator.stream_complete("def f(x):", params)]
        finally:
            await generator.close()
        return chat, whole, raw

    chat, (whole,), raw = asyncio.run(run())
    *texts, completion = chat
    assert len(texts) > 3 and "".join(texts) == completion.text == whole.text
    assert completion.completion_tokens == whole.completion_tokens > 0
    *raw_texts, raw_completion = raw
    assert len(raw_texts) > 1 and "".join(raw_texts) == raw_completion.text


def test_openai_backend_stream_reports_an_upstream_error(live_server: LiveServer) -> None:
    async def run() -> None:
        generator = OpenAIGenerator(live_server.url + "/v1", "no-such-model")
        try:
            async for _ in generator.stream(MESSAGES, SamplingParams()):
                pass
        finally:
            await generator.close()

    with pytest.raises(GeneratorError, match="upstream answered 404"):
        asyncio.run(run())
