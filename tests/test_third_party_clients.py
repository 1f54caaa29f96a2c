"""The clients people already use, unmodified, against a live server (scripted generator):
LiteLLM and LangChain pick a search preset by model name alone, no extra_body; Codex CLI speaks
the Responses API. The script's first
answer is wrong and its repair right, so the verdict shows which search ran: `mucode-fast` (one
candidate, one turn) reports the wrong one honestly, `mucode:turns=2` repairs it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import LiveServer

# The problem with its tests in a fenced block of asserts: all a plain chat client can send.
ASK = (
    'def double(x):\n    """Return twice x."""\n\n'
    "```python\nassert double(2) == 4\nassert double(0) == 0\n```"
)
WRONG_AFTER_ONE = "Passed 1/2 public tests after 1 turn."
REPAIRED = "Passed 2/2 public tests after 2 turns."


def test_litellm_picks_a_preset_by_name(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from GitHub at import
    litellm = pytest.importorskip("litellm", reason="LiteLLM is not installed (pip install litellm)")
    common = {
        "api_base": live_server.url + "/v1",
        "api_key": "unused",
        "messages": [{"role": "user", "content": ASK}],
    }
    answer = litellm.completion(model="openai/mucode-fast", **common)
    assert WRONG_AFTER_ONE in answer.choices[0].message.content
    streamed = litellm.completion(model="openai/mucode:n=1,turns=2", stream=True, **common)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed)
    assert "return 2 * x" in text and REPAIRED in text


def test_langchain_chat_openai_picks_a_preset_by_name(live_server: LiveServer) -> None:
    chat_openai = pytest.importorskip(
        "langchain_openai", reason="langchain-openai is not installed"
    ).ChatOpenAI
    url = live_server.url + "/v1"
    fast = chat_openai(model="mucode-fast", base_url=url, api_key="unused", max_retries=0)
    assert WRONG_AFTER_ONE in str(fast.invoke(ASK).content)
    tuned = chat_openai(model="mucode:n=1,turns=2", base_url=url, api_key="unused", max_retries=0)
    streamed = "".join(str(chunk.content) for chunk in tuned.stream(ASK))
    assert "return 2 * x" in streamed and REPAIRED in streamed


def test_codex_exec_gets_a_tested_answer_through_the_responses_api(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """Codex CLI (`codex exec`, a custom provider on the Responses API) against the server: its
    long developer messages and tools ride along, the tests in the prompt's block of asserts run,
    and the repaired answer comes back with its verdict."""
    codex = shutil.which("codex")
    if codex is None:
        pytest.skip("Codex CLI is not installed (npm install -g @openai/codex; .ci/run installs it)")
    provider = {
        "name": '"mucode"',
        "base_url": f'"{live_server.url}/v1"',
        "wire_api": '"responses"',
        "env_key": '"MUCODE_API_KEY"',
        "request_max_retries": "0",
        "stream_max_retries": "0",
    }
    (tmp_path / "home").mkdir()
    settings = ['model="mucode:n=1,turns=2"', "model_provider=mucode"]
    settings += [f"model_providers.mucode.{key}={value}" for key, value in provider.items()]
    done = subprocess.run(
        [codex, "exec", "--skip-git-repo-check", *(arg for s in settings for arg in ("-c", s)), "-"],
        input=f"{ASK}\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "CODEX_HOME": str(tmp_path / "home"), "MUCODE_API_KEY": "unused"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "return 2 * x" in done.stdout and REPAIRED in done.stdout
