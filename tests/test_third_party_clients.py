"""The clients people already use, unmodified, against a live server (scripted generator):
LiteLLM and LangChain pick a search preset by model name alone, no extra_body; Codex CLI speaks
the Responses API; Continue's and Cline's CLIs (agents that send their tools), aider (edits a
file) and `llm` (a follow-up in the same conversation) with the configs docs/clients.md gives.
The script's first answer is wrong and its repair right, so the verdict shows which search ran:
`mucode-fast` (one candidate, one turn) reports the wrong one honestly, `mucode:turns=2` repairs it.
A client that is not installed skips, saying how to install it (.ci/run installs them all)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mucode.engine.generators.scripted import ScriptedGenerator

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


def installed(command: str, how: str) -> str:
    found = shutil.which(command)
    if found is None:
        pytest.skip(f"{command} is not installed ({how}; .ci/run installs it)")
    return found


def run_client(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=180, cwd=cwd, env={**os.environ, **env}
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    return done


def test_continue_cli_gets_a_tested_answer(live_server: LiveServer, tmp_path: Path) -> None:
    """`cn -p` with docs/clients.md's config.yaml: Continue's agent offers its tools, the search
    runs on the block of asserts and answers in text."""
    cn = installed("cn", "npm install -g @continuedev/cli")
    config = tmp_path / "config.yaml"
    config.write_text(
        "name: mucode\nversion: 0.0.1\nschema: v1\nmodels:\n"
        "  - name: mucode (tested answers)\n    provider: openai\n    model: mucode:n=1,turns=2\n"
        f"    apiBase: {live_server.url}/v1\n    apiKey: unused\n    roles: [chat, edit]\n"
    )
    done = run_client([cn, "--config", str(config), "-p", ASK], tmp_path, HOME=str(tmp_path))
    assert "return 2 * x" in done.stdout and REPAIRED in done.stdout


@pytest.fixture
def reap_daemons(tmp_path: Path) -> Iterator[None]:
    """Cline starts a hub daemon (`--cline-hub-daemon --cwd <workspace>`) that outlives the CLI
    and detaches from its session; stop whatever still names this test's folder."""
    yield
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(tmp_path).encode() in arg for arg in argv):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGTERM)


@pytest.mark.usefixtures("reap_daemons")
def test_cline_cli_gets_a_tested_answer_and_shows_the_search_as_thinking(
    live_server: LiveServer, tmp_path: Path
) -> None:
    cline = installed("cline", "npm install -g cline")
    home = {"HOME": str(tmp_path)}
    url = f"{live_server.url}/v1"
    run_client(
        [cline, "auth", "-p", "openai", "-k", "unused", "-m", "mucode:n=1,turns=2", "-b", url],
        tmp_path,
        **home,
    )
    done = run_client([cline, "--json", "-t", "150", "-c", str(tmp_path), ASK], tmp_path, **home)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    result = next(e for e in events if e.get("type") == "run_result")
    assert result["finishReason"] == "completed"
    assert "return 2 * x" in result["text"] and REPAIRED in result["text"]
    thinking = [
        e["event"]["reasoning"]
        for e in events
        if e.get("event", {}).get("type") == "content_end" and e["event"].get("contentType") == "reasoning"
    ]
    assert thinking and "candidate #1: passes 1/2 public tests" in thinking[0]


def test_aider_edits_a_file_with_a_tested_answer(live_server: LiveServer, tmp_path: Path) -> None:
    aider = installed("aider", "pip install aider-chat, in a venv of its own")
    source = tmp_path / "double.py"
    source.write_text('def double(x):\n    """Return twice x."""\n    pass\n')
    done = run_client(
        [
            aider,
            "--model",
            "openai/mucode:n=1",
            "--no-git",
            "--yes-always",
            "--no-check-update",
            "--analytics-disable",
            "--no-show-model-warnings",
            "--message",
            ASK,
            "double.py",
        ],
        tmp_path,
        HOME=str(tmp_path),
        OPENAI_API_BASE=f"{live_server.url}/v1",
        OPENAI_API_KEY="unused",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    assert "Applied edit to double.py" in done.stdout
    assert "return 2 * x" in source.read_text()


def test_llm_follow_up_keeps_the_conversation(live_server: LiveServer, tmp_path: Path) -> None:
    """`llm -c` sends the earlier exchange: the follow-up's first turn sees the code and tests of
    the first request, and the tests still apply."""
    llm = installed("llm", "pip install llm, in a venv of its own")
    (tmp_path / "extra-openai-models.yaml").write_text(
        f'- model_id: mucode\n  model_name: mucode:n=1,turns=2\n  api_base: "{live_server.url}/v1"\n'
        "  api_key_name: mucode\n"
    )
    env = {"LLM_USER_PATH": str(tmp_path)}
    run_client([llm, "keys", "set", "mucode", "--value", "unused"], tmp_path, **env)
    first = run_client([llm, "-m", "mucode", ASK], tmp_path, **env)
    assert REPAIRED in first.stdout
    generator = live_server.runtime.generator
    assert isinstance(generator, ScriptedGenerator)
    follow_up = run_client([llm, "-c", "Now make it handle negative numbers too."], tmp_path, **env)
    assert "return 2 * x" in follow_up.stdout and "public tests" in follow_up.stdout
    asked = [c for c in generator.calls if "handle negative" in c[-1].content]
    assert asked, list(generator.calls)
    first_turn = asked[0]
    prompt = "\n".join(m.content for m in first_turn)
    assert "assert double(2) == 4" in prompt and "return 2 * x" in prompt  # the tests, the answer
