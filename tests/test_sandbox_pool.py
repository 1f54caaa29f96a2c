"""The pool: backpressure, cancellation, limits, and refusing to run without isolation."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from mucode.sandbox import (
    ExecutionRequest,
    LimitExceeded,
    SandboxBusy,
    SandboxPool,
    SandboxSettings,
    SandboxUnavailable,
    execute_sync,
)

from .helpers import Sandbox, descendants

SLEEP = "import time\ntime.sleep(30)\n"


def test_queue_full_raises_busy() -> None:
    async def scenario() -> None:
        async with SandboxPool(SandboxSettings(workers=1, queue_size=1)) as pool:
            running = asyncio.create_task(pool.execute(ExecutionRequest(code=SLEEP, timeout_s=3)))
            await asyncio.sleep(0.3)
            waiting = asyncio.create_task(pool.execute(ExecutionRequest(code="x = 1")))
            await asyncio.sleep(0.1)
            assert pool.stats().waiting == 1
            with pytest.raises(SandboxBusy):
                await pool.execute(ExecutionRequest(code="x = 1"))
            running.cancel()
            assert (await waiting).passed

    asyncio.run(scenario())


def test_closing_the_pool_ends_queued_and_running_executions() -> None:
    """What a caller that closes the pool under load sees (a failed gather, a shutdown): the
    running program stops, waiting executions fail with a clear error instead of hanging, and
    no worker comes back to life."""

    async def scenario() -> None:
        pool = SandboxPool(SandboxSettings(workers=1))
        await pool.start()
        worker = pool._workers[0]
        running = asyncio.create_task(pool.execute(ExecutionRequest(code=SLEEP, timeout_s=30)))
        await asyncio.sleep(0.3)
        waiting = [asyncio.create_task(pool.execute(ExecutionRequest(code="x = 1"))) for _ in range(3)]
        await asyncio.sleep(0.1)
        await pool.close()
        done = await asyncio.wait_for(asyncio.gather(running, *waiting, return_exceptions=True), 10)
        assert not done[0].passed  # type: ignore[union-attr]
        assert all(isinstance(e, SandboxUnavailable) and "closed" in str(e) for e in done[1:])
        assert worker.proc is None or worker.proc.returncode is not None
        with pytest.raises(SandboxUnavailable):
            await pool.execute(ExecutionRequest(code="x = 1"))

    asyncio.run(scenario())


def test_cancelling_the_caller_kills_the_run_and_keeps_the_worker_warm() -> None:
    """The run and every process it forked die at once; the worker's sandbox stays up (a restart
    costs seconds with a scientific environment) and serves the next execution."""

    async def scenario() -> None:
        async with SandboxPool(SandboxSettings(workers=1)) as pool:
            worker = pool._workers[0]
            code = "import os, time\nfor _ in range(5):\n    os.fork()\ntime.sleep(30)\n"
            task = asyncio.create_task(pool.execute(ExecutionRequest(code=code, timeout_s=30)))
            await asyncio.sleep(1.0)
            assert worker.proc is not None
            pid = worker.proc.pid
            assert len(descendants(pid)) > 10  # init, harness, the run and its forks
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            deadline = time.monotonic() + 5
            while len(descendants(pid)) > 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert len(descendants(pid)) == 2  # bubblewrap's init and the harness, nothing of the run
            assert worker.proc is not None and worker.proc.pid == pid
            started = time.monotonic()
            assert (await pool.execute(ExecutionRequest(code="x = 1"))).passed
            assert time.monotonic() - started < 10
            assert pool.stats().worker_restarts == 0

    asyncio.run(scenario())


def test_limits_above_maxima_are_rejected(sandbox: Sandbox) -> None:
    with pytest.raises(LimitExceeded) as excinfo:
        sandbox.run("x = 1", timeout_s=1000)
    assert excinfo.value.param == "timeout_s"
    with pytest.raises(LimitExceeded) as excinfo:
        sandbox.run("x = 1", memory_mb=10**6)
    assert excinfo.value.param == "memory_mb"


def test_memory_limit_applies(sandbox: Sandbox) -> None:
    code = "def f():\n    return len(bytearray(300 * 1024 * 1024))\n"
    assert sandbox.run(code, ["assert f() == 300 * 1024 * 1024"], memory_mb=1024).passed
    small = sandbox.run(code, ["assert f() == 300 * 1024 * 1024"], memory_mb=200)
    assert not small.passed
    assert "MemoryError" in small.feedback


def test_missing_bubblewrap_refuses_to_run() -> None:
    settings = SandboxSettings(bwrap="/nonexistent/bwrap")
    with pytest.raises(SandboxUnavailable, match="MUCODE_SANDBOX=unsafe"):
        execute_sync(ExecutionRequest(code="x = 1"), settings)


def test_a_launcher_that_fails_says_why_and_what_to_do() -> None:
    """bubblewrap in a container whose engine masks /proc exits at once with one line on stderr:
    that line, and the option that fixes it, are the error (not "IncompleteReadError")."""
    folder = Path(tempfile.mkdtemp(prefix="mucode-fake-bwrap-"))  # the sandbox user must reach it
    folder.chmod(0o755)
    fake = folder / "bwrap"
    fake.write_text(
        '#!/bin/sh\ncase "$1" in --help) echo usage; exit 0;; esac\n'
        'echo "bwrap: Can\'t mount proc on /newroot/proc: Operation not permitted" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    try:
        with pytest.raises(SandboxUnavailable) as failed:
            execute_sync(ExecutionRequest(code="x = 1"), SandboxSettings(bwrap=str(fake), workers=1))
    finally:
        shutil.rmtree(folder)
    message = str(failed.value)
    assert "bwrap: Can't mount proc on /newroot/proc: Operation not permitted" in message
    assert "unmask=/proc/*" in message and "systempaths=unconfined" in message


def test_unsafe_mode_is_explicit_and_loud(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MUCODE_SANDBOX", "unsafe")
    monkeypatch.setenv("MUCODE_SANDBOX_BWRAP", "/nonexistent/bwrap")
    settings = SandboxSettings()
    assert settings.mode == "unsafe"
    with caplog.at_level(logging.WARNING, logger="mucode.sandbox"):
        result = execute_sync(ExecutionRequest(code="def f(): return 1", tests=["assert f() == 2"]), settings)
    assert "WITHOUT isolation" in caplog.text
    assert result.isolation == "unsafe"
    assert result.results[0].message == "f() returned 1, expected 2"


def test_concurrent_executions_use_all_workers(sandbox: Sandbox) -> None:
    async def many() -> list[bool]:
        requests = [
            ExecutionRequest(code="def f(x): return x", tests=[f"assert f({i}) == {i}"]) for i in range(100)
        ]
        results = await asyncio.gather(*(sandbox.pool.execute(r) for r in requests))
        return [r.passed for r in results]

    assert all(sandbox.loop.run(many()))
    assert sandbox.pool.stats().workers == 2
