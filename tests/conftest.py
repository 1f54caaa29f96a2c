"""Shared fixtures: a real sandbox pool and a live HTTP server, each started once per session."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from mucode.sandbox import ExecutionRequest, ExecutionResult, SandboxPool, SandboxSettings
from mucode.server.app import create_app
from mucode.server.engine.settings import EngineSettings
from mucode.server.runtime import Runtime
from mucode.server.settings import ServerSettings

T = TypeVar("T")


class LoopThread:
    """An asyncio loop in a background thread, so synchronous tests can drive async objects."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Sandbox:
    """A started pool plus a synchronous ``run`` for tests."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.loop = LoopThread()
        self.pool = SandboxPool(settings)
        self.loop.run(self.pool.start())

    def run(self, code: str, tests: list[str] | None = None, **kwargs: Any) -> ExecutionResult:
        request = ExecutionRequest(code=code, tests=tests or [], **kwargs)
        return self.loop.run(self.pool.execute(request))

    def close(self) -> None:
        self.loop.run(self.pool.close())
        self.loop.stop()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(SandboxSettings(workers=2, timeout_s=5))
    yield box
    box.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """uvicorn serving ``create_app(settings)`` on a free local port, in a thread."""

    def __init__(self, settings: ServerSettings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.05)

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.server.config.app.state.runtime  # type: ignore[attr-defined]
        return runtime

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


DEFAULT_SCRIPT = [
    ["```python\ndef double(x):\n    return x + 2\n```"],
    ["```python\ndef double(x):\n    return 2 * x\n```"],
]


def server_settings(
    tmp: Path, script: list[list[str]] | None = None, server: dict[str, Any] | None = None, **sandbox: Any
) -> ServerSettings:
    """Settings for a test server: the scripted generator (no model download) and a small pool;
    ``server`` sets other ServerSettings fields."""
    path = tmp / "script.json"
    path.write_text(json.dumps(script or DEFAULT_SCRIPT))
    return ServerSettings(
        **(server or {}),
        sandbox=SandboxSettings(**{"workers": 2, "timeout_s": 5, **sandbox}),
        engine=EngineSettings(generator="scripted", script=str(path)),
    )


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(server_settings(tmp_path_factory.mktemp("server")))
    yield server
    server.stop()


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        yield client


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc, the host's view)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The `mucode` command as a user runs it: a subprocess."""
    command = [sys.executable, "-m", "mucode.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def wait_healthy(url: str, proc: subprocess.Popen[Any], log: Path | None, timeout: float) -> dict[str, Any]:
    """Polls a server process's /health until `ok`; fails with its log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(
                log.read_text()[-3000:] if log else f"the server exited with {proc.returncode}"
            )
        try:
            health: dict[str, Any] = httpx.get(url + "/health", timeout=5).json()
            if health["status"] == "ok":
                return health
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"the server at {url} never became healthy"
        time.sleep(0.5)
