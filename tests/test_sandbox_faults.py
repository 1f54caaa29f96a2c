"""Faults the pool must survive without wedging: callers cancelled at any moment (while a worker
starts, mid-run), workers killed from outside, either event loop (asyncio, uvloop), and closing
with nothing left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest

from mucode.sandbox import ExecutionRequest, SandboxPool, SandboxSettings

from .helpers import LiveServer, descendants, processes_of, server_settings

SLEEP = ExecutionRequest(code="import time\ntime.sleep(30)\n", timeout_s=30)
QUICK = ExecutionRequest(code="x = 1", tests=["assert x == 1"])


def run(loop: str, scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(scenario())
    else:
        asyncio.run(scenario())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_cancel_storm_while_workers_start_leaves_the_pool_serving_and_nothing_behind(
    own_bwrap: str, loop: str
) -> None:
    """A request cancelled 0-30 ms after it was given a worker mostly lands while that worker's
    sandbox is starting (the last run killed it): 150 of them, and every cancel returns at once,
    no worker stays busy, executions go on, and closing leaves no process of the sandbox."""

    async def scenario() -> None:
        rng = random.Random(0)
        pool = SandboxPool(SandboxSettings(workers=2, bwrap=own_bwrap))
        await pool.start()
        try:
            for _ in range(150):
                task = asyncio.create_task(pool.execute(SLEEP))
                await asyncio.sleep(rng.uniform(0, 0.03))
                task.cancel()
                started = time.monotonic()
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wait_for(task, 15)
                assert time.monotonic() - started < 10, "a cancelled execution hung"
            stats = pool.stats()
            assert stats.busy == 0
            before = stats.executions
            results = await asyncio.wait_for(asyncio.gather(*(pool.execute(QUICK) for _ in range(4))), 30)
            assert all(r.passed for r in results)
            assert pool.stats().executions == before + 4
        finally:
            await asyncio.wait_for(pool.close(), 30)
        deadline = time.monotonic() + 5
        while processes_of(own_bwrap) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert processes_of(own_bwrap) == []

    run(loop, scenario)


def test_a_caller_cancelled_twice_never_shares_its_worker(own_bwrap: str) -> None:
    """Cancelled once while its worker starts, and again while the worker is being killed (a
    client gone, then its request task cancelled): the worker returns to the pool only when it is
    dead, so the next execution never reads from a harness another coroutine still reads from."""

    async def scenario() -> None:
        rng = random.Random(1)
        async with SandboxPool(SandboxSettings(workers=1, bwrap=own_bwrap)) as pool:
            for _ in range(40):
                first = asyncio.create_task(pool.execute(SLEEP))
                await asyncio.sleep(0.05)
                first.cancel()  # its worker is killed: the next execution has to start it again
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wait_for(first, 15)
                task = asyncio.create_task(pool.execute(SLEEP))
                await asyncio.sleep(rng.uniform(0, 0.03))
                task.cancel()
                await asyncio.sleep(rng.uniform(0, 0.005))
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wait_for(task, 15)
                result = await asyncio.wait_for(pool.execute(QUICK), 30)
                assert result.passed, result.feedback
            assert pool.stats().busy == 0

    asyncio.run(scenario())


def test_a_worker_killed_from_outside_costs_one_execution() -> None:
    """SIGKILL to the harness mid-run (an operator, the OOM killer): that execution fails with a
    clear error, the pool starts the worker again, and the next execution passes."""

    async def scenario() -> None:
        async with SandboxPool(SandboxSettings(workers=1)) as pool:
            worker = pool._workers[0]
            task = asyncio.create_task(pool.execute(SLEEP))
            await asyncio.sleep(1.0)
            assert worker.proc is not None
            inside = descendants(worker.proc.pid)
            assert len(inside) >= 2  # the sandbox's init and the harness (and the run)
            for pid in inside:
                with contextlib.suppress(ProcessLookupError):  # gone with the sandbox's init
                    os.kill(pid, signal.SIGKILL)
            result = await asyncio.wait_for(task, 15)
            assert not result.passed
            assert "harness" in result.results[0].message if result.results else "harness" in result.feedback
            assert (await asyncio.wait_for(pool.execute(QUICK), 30)).passed
            assert pool.stats().worker_restarts == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_sandbox_runs_on_either_event_loop(loop: str) -> None:
    """uvicorn picks uvloop when it is installed; the sandbox must start there too, as root
    (dropping to an unprivileged uid) or not."""

    async def scenario() -> None:
        async with SandboxPool(SandboxSettings(workers=1)) as pool:
            result = await pool.execute(
                ExecutionRequest(code="import os\nuid = os.getuid()", tests=["assert uid"])
            )
            assert result.passed, result.feedback
            assert result.isolation == "bubblewrap"

    run(loop, scenario)


def test_health_says_503_when_every_worker_is_stuck(tmp_path: Path) -> None:
    """A worker busy past its deadline is counted as stuck; when all are, /health is 503 with the
    reason instead of `ok` while every execution hangs."""
    server = LiveServer(server_settings(tmp_path))
    try:
        pool = server.runtime.pool
        assert pool is not None
        ok = httpx.get(server.url + "/health", timeout=10)
        assert ok.status_code == 200
        assert ok.json()["sandbox"]["stuck"] == 0
        past = time.monotonic() - 3600
        pool._workers[0].deadline = past
        one = httpx.get(server.url + "/health", timeout=10).json()["sandbox"]
        assert one["stuck"] == 1
        assert one["ready"] is True  # another worker can still serve
        for worker in pool._workers:
            worker.deadline = past
        stuck = httpx.get(server.url + "/health", timeout=10)
        assert stuck.status_code == 503
        assert "stuck" in stuck.json()["sandbox"]["error"]
        for worker in pool._workers:
            worker.deadline = None
        assert httpx.get(server.url + "/health", timeout=10).status_code == 200
    finally:
        server.stop()


UNPRIVILEGED = """
import asyncio, os, site, sys
site.addsitedir(sys.argv[1])
from mucode.sandbox import ExecutionRequest, SandboxPool, SandboxSettings

async def main():
    async with SandboxPool(SandboxSettings(workers=1)) as pool:
        result = await pool.execute(ExecutionRequest(code="x = 1", tests=["assert x == 1"]))
        print(os.geteuid(), result.passed, result.isolation)

if sys.argv[2] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_sandbox_runs_for_an_unprivileged_server(loop: str, tmp_path: Path) -> None:
    """The Docker image's case: the server is not root, so bubblewrap starts as the server's own
    user (no setpriv). Run as uid 65534 on the system's Python with this environment's packages."""
    if os.geteuid() != 0:
        pytest.skip("already unprivileged: every other sandbox test covers it")
    python = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.path.exists(python):
        pytest.skip(f"{python} is missing: no interpreter another user can run with these packages")
    command = [
        "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        python, "-c", UNPRIVILEGED, sysconfig.get_paths()["purelib"], loop,
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=tmp_path, env={"HOME": "/tmp"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["65534", "True", "bubblewrap"]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_cancel_at_every_step_of_handing_a_program_over_stops_it(own_bwrap: str, loop: str) -> None:
    """The caller is cancelled after k turns of the event loop, for every k from the handover to
    the harness until the program runs: each cancel ends the execution at once. (Before Python
    3.12 asyncio.wait_for swallowed a cancel that landed as the program's bytes were flushed, and
    that run went on to its time limit for nobody: a CI cancel storm caught it once.)"""

    async def scenario() -> None:
        async with SandboxPool(SandboxSettings(workers=1, bwrap=own_bwrap)) as pool:
            for turns in range(12):
                assert (await asyncio.wait_for(pool.execute(QUICK), 30)).passed  # a warm worker
                task = asyncio.create_task(pool.execute(SLEEP))
                for _ in range(turns):
                    await asyncio.sleep(0)
                task.cancel()
                started = time.monotonic()
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wait_for(task, 15)
                assert time.monotonic() - started < 10, f"a cancel after {turns} turns did not stop the run"
            assert pool.stats().busy == 0

    run(loop, scenario)
