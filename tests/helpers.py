"""What the tests share besides fixtures: a sandbox and a live server driven from synchronous
tests, the CLI as a subprocess, and the checks and request bodies several test modules use.

The fixtures that build these are in conftest.py; toy training problems are in toy_problems.py and
tiny models in tiny_models.py.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import uvicorn

from mucode.engine.settings import EngineSettings
from mucode.sandbox import ExecutionRequest, ExecutionResult, SandboxPool, SandboxSettings
from mucode.server.app import create_app
from mucode.server.runtime import Runtime
from mucode.server.settings import ServerSettings

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]


def package_roots() -> dict[str, str]:
    """import name -> folder, read from setup.py (the one place the mapping is written)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "ROOTS":
            roots: dict[str, str] = ast.literal_eval(node.value)
            return roots
    raise AssertionError("setup.py has no ROOTS")


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """uvicorn serving ``create_app(settings)`` on a free local port, in a thread."""

    def __init__(self, settings: ServerSettings, loop: Literal["auto", "asyncio", "uvloop"] = "auto") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", loop=loop)
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
        runtime: Runtime = self.app.state.runtime
        return runtime

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


DEFAULT_SCRIPT = [
    ["```python\ndef double(x):\n    return x + 2\n```"],
    ["```python\ndef double(x):\n    return 2 * x\n```"],
]


WRITTEN_TESTS = "```python\nassert double(2) == 4\nassert double(5) == 10\nassert double(-1) == -2\n```"


def server_settings(
    tmp: Path,
    script: list[list[str]] | dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    **sandbox: Any,
) -> ServerSettings:
    """Settings for a test server: the scripted generator (no model download; ``script`` as
    ScriptedGenerator.from_file reads it) and a small pool;
    ``server`` sets other ServerSettings fields."""
    path = tmp / "script.json"
    # The default script also answers requests for test calls (selection `agree`, no tests given).
    path.write_text(json.dumps(script or {"script": DEFAULT_SCRIPT, "tests": WRITTEN_TESTS}))
    return ServerSettings(
        **(server or {}),
        sandbox=SandboxSettings(**{"workers": 2, "timeout_s": 5, **sandbox}),
        engine=EngineSettings(generator="scripted", script=str(path)),
    )


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


def unset_env() -> dict[str, str]:
    """This environment with no MUCODE_ settings, for a CLI run that must see only its own; a
    checkpoint installed in this user's cache stays out of it too (``MUCODE_CHECKPOINT=none``)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MUCODE_")} | {
        "MUCODE_CHECKPOINT": "none"
    }


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


@contextlib.contextmanager
def serve_process(tmp_path: Path, **settings: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """`mucode serve` as a user starts it, on a free port, with no MUCODE_ settings but these
    (``checkpoint="..."`` is MUCODE_CHECKPOINT): (its URL, its first healthy /health)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUCODE_")}
    env |= {"MUCODE_PORT": str(port)} | {f"MUCODE_{k.upper()}": v for k, v in settings.items()}
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mucode.cli", "serve"], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        yield url, wait_healthy(url, server, log, timeout=600)
    finally:
        server.terminate()
        server.wait(60)


# Request bodies and checks of the HTTP tests.
PROMPT = 'def double(x):\n    """Return twice x."""\n'
TESTS = ["assert double(2) == 4", "assert double(0) == 0"]
SLOW = "```python\ndef double(x):\n    import time\n    time.sleep(60)\n    return 2 * x\n```"


def solve_body(**options: Any) -> dict[str, Any]:
    return {"prompt": PROMPT, "tests": TESTS, "options": {"n": 2, **options}}


def wait_job(http: httpx.Client, job_id: str, until: set[str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def sse_events(response: httpx.Response) -> list[tuple[str | None, Any]]:
    """(event name, decoded data) for each ``data:`` line of a server-sent event stream."""
    events: list[tuple[str | None, Any]] = []
    name = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[len("data: ") :])))
    return events


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    """The response has this status and a complete OpenAI error envelope (naming ``param``)."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def sandbox_busy_processes(server: LiveServer) -> int:
    """Processes in the server's sandboxes beyond each idle worker's own two (a run in progress)."""
    pool = server.runtime.pool
    assert pool is not None, "the server's sandbox did not start"
    extra = 0
    for worker in pool._workers:
        if worker.proc is not None:
            extra += max(len(descendants(worker.proc.pid)) - 2, 0)  # beyond bwrap's init and the harness
    return extra


def processes_of(binary: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if argv0 == binary and state != "Z":
            found.append(int(entry.name))
    return found
