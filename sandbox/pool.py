"""A pool of warm sandboxed workers with a bounded queue.

Each worker is one long-lived harness process inside its own bubblewrap sandbox; it forks a fresh
child per execution, so the interpreter start and the common imports are paid once per worker,
not once per program. The pool hands each execution to an idle worker, lets at most
``queue_size`` executions wait, and refuses more with ``SandboxBusy`` (backpressure) instead of
queueing forever.

With an environment that preloads heavy modules (numpy, pandas, ...) there are two lanes of
workers: programs that import those modules go to workers that have them loaded, the rest to
plain ones, whose smaller address space forks twice as fast (docs/benchmarks.md).

The host keeps its own clock on every execution: if the harness does not answer within the
timeout plus a margin (the candidate stopped or killed it), the whole sandbox is killed, which
ends every process in it, and the worker is started again for the next execution.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import re
import signal
import struct
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .environment import SandboxEnvironment
from .errors import SandboxBusy, SandboxUnavailable, WorkerCrashed
from .feedback import build_result, lost_result
from .isolation import Isolation, select_isolation
from .limits import SandboxSettings, resolve_limits
from .types import ExecutionRequest, ExecutionResult, TestStatus

log = logging.getLogger("mucode.sandbox")

HOST_MARGIN_S = 2.0  # the harness enforces the timeout itself; the host waits this much longer
KILL_WAIT_S = 5.0  # the longest the host waits for a killed sandbox to be gone
MAX_REPLY_BYTES = 64 * 1024 * 1024


class _WorkerLost(Exception):
    def __init__(self, status: TestStatus, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


def _children(pid: int) -> list[int]:
    """The live children of ``pid``, from /proc (bubblewrap's sandbox init, for the launcher)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


# Launcher failures with a known cause, and what to do about it.
_SECCOMP = (
    " (the container's seccomp profile refuses what bubblewrap needs: run it with `--security-opt "
    "seccomp=docker/seccomp-bwrap.json`; docs/docker.md)"
)
_HINTS = {
    "Can't mount proc": " (inside a container the engine masks parts of /proc, so bubblewrap cannot "
    "mount a fresh one: run it with podman `--security-opt unmask=/proc/*` or Docker `--security-opt "
    "systempaths=unconfined`; docs/docker.md)",
    "Creating new namespace failed": _SECCOMP,
    "Can't set hostname": _SECCOMP,
    "setting up uid map": " (user namespaces are restricted on this host, e.g. Ubuntu's "
    "kernel.apparmor_restrict_unprivileged_userns: allow them for bwrap; docs/docker.md)",
}


def startup_hint(detail: str) -> str:
    return next((hint for cause, hint in _HINTS.items() if cause in detail), "")


class _Worker:
    """One warm harness process. Not safe for concurrent use: the pool gives it one job at a time.

    Starting is a task of its own, shielded from the caller: a request cancelled while its worker
    starts must not leave a sandbox that nobody owns (its pipes open, the worker never idle again).
    Every wait on the process is bounded, so a worker is always handed back to the pool.
    """

    def __init__(self, isolation: Isolation, settings: SandboxSettings, index: int, preload: bool) -> None:
        self.isolation = isolation
        self.settings = settings
        self.index = index
        self.preload = preload  # imports the environment's heavy modules before forking runs
        self.proc: asyncio.subprocess.Process | None = None
        self.sandbox_pids: list[int] = []
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._stderr_task: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None
        self.starts = 0
        self.deadline: float | None = None  # monotonic time by which the current run must answer
        self.hello: dict[str, Any] = {}  # what the harness said when it started
        self.in_flight = False  # a job was handed over and its reply not read yet

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def overdue(self) -> bool:
        """Busy past its deadline: the host should already have killed and replaced it."""
        return self.deadline is not None and time.monotonic() > self.deadline + KILL_WAIT_S

    async def ensure_started(self) -> None:
        """Ready for a job: a start in progress is waited for (its process may already be alive,
        but the harness's hello is not read yet), a dead worker is started."""
        if self._starting is None or self._starting.done():
            if self.alive:
                return
            self._starting = asyncio.create_task(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        await self._kill_process()
        proc = await asyncio.create_subprocess_exec(
            *self.isolation.command(self.preload),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            **self.isolation.spawn_kwargs(),
        )
        self.proc, self.sandbox_pids = proc, []
        self.starts += 1
        self._stderr_task = asyncio.create_task(self._drain_stderr(proc))
        try:
            async with asyncio.timeout(self.settings.startup_timeout_s):
                hello = await self._read()
        except (TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            # An exited launcher's reason (bwrap's one line) may still be on its way through stderr.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
            await self._kill_process()
            detail = " ".join(self.stderr_tail).strip() or type(exc).__name__
            raise SandboxUnavailable(
                f"the {self.isolation.name} sandbox failed to start: {detail}{startup_hint(detail)}"
            ) from exc
        # bubblewrap's sandbox init (pid 1 inside): killing it ends every process in the sandbox,
        # whatever session or process group they moved to.
        self.sandbox_pids = _children(proc.pid)
        self.hello = hello
        log.debug("sandbox worker %d ready (pid %s, python %s)", self.index, proc.pid, hello.get("python"))

    async def _drain_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    async def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        header = await self.proc.stdout.readexactly(4)
        (size,) = struct.unpack(">I", header)
        if size > MAX_REPLY_BYTES:
            raise ValueError("reply too large")
        message: dict[str, Any] = json.loads(await self.proc.stdout.readexactly(size))
        return message

    async def run(self, job: dict[str, Any], wait_s: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        data = json.dumps(job).encode("utf-8")
        self.proc.stdin.write(struct.pack(">I", len(data)) + data)
        self.in_flight = True
        self.deadline = time.monotonic() + wait_s
        try:
            # asyncio.timeout, not wait_for: before Python 3.12 wait_for swallows a cancel that
            # lands as its inner await completes, and the caller's run would go on for nobody.
            async with asyncio.timeout(wait_s):
                await self.proc.stdin.drain()
                reply = await self._read()
            self.in_flight = False
            return reply
        except TimeoutError:
            await self.kill()
            raise _WorkerLost(TestStatus.timeout, f"timed out (time limit {job['timeout_s']:g}s)") from None
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            await self.kill()
            raise _WorkerLost(
                TestStatus.error, "the program killed the test harness (the run ended without a report)"
            ) from None
        finally:
            self.deadline = None

    async def stop(self) -> None:
        """Stop what runs for a caller that went away. A run in flight is ended by killing its
        processes (the harness reports, its reply is read and dropped) so the worker stays warm:
        with a scientific environment a restart costs seconds of CPU. Anything else, or a harness
        that does not answer, kills the worker."""
        if self.in_flight and self.alive:
            zygote = self._zygote()
            try:
                async with asyncio.timeout(KILL_WAIT_S):
                    reading = asyncio.ensure_future(self._read())
                    try:
                        # Until the reply comes: the run may not have been forked yet at the first kill.
                        while not reading.done():
                            for pid in _children(zygote) if zygote else []:
                                with contextlib.suppress(ProcessLookupError, PermissionError):
                                    os.kill(pid, signal.SIGKILL)
                            await asyncio.wait({reading}, timeout=0.05)
                        reading.result()
                    finally:
                        reading.cancel()
                self.in_flight = False
                return
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
                pass
        await self.kill()

    def _zygote(self) -> int | None:
        """Host pid of the harness's zygote: the launcher itself without a sandbox, else the
        child of bubblewrap's init."""
        if self.proc is None:
            return None
        if not self.sandbox_pids:
            return self.proc.pid
        inside = _children(self.sandbox_pids[0])
        return inside[0] if inside else None

    async def kill(self) -> None:
        """Kill the sandbox and everything in it, waiting first (bounded) for a start in progress
        so that the process it spawns is killed too."""
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            await asyncio.wait({starting}, timeout=self.settings.startup_timeout_s + KILL_WAIT_S)
            starting.cancel()
        if starting is not None and starting.done() and not starting.cancelled():
            starting.exception()  # retrieved: the caller of ensure_started has seen it, or left
        await self._kill_process()

    async def _kill_process(self) -> None:
        # Taken at once: a new start may reuse these fields while this kill waits below.
        proc, self.proc = self.proc, None
        self.in_flight = False
        pids, self.sandbox_pids = self.sandbox_pids, []
        stderr_task, self._stderr_task = self._stderr_task, None
        if stderr_task is not None:
            stderr_task.cancel()
        if proc is not None:
            # The launcher leads its own process group (start_new_session); the sandbox init is
            # killed by pid too. killpg rather than proc.kill(): Popen.kill() may reap the child
            # behind asyncio's watcher.
            targets = [(os.killpg, proc.pid)] if proc.returncode is None else []
            for kill, pid in [*targets, *((os.kill, p) for p in pids)]:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)
            try:
                async with asyncio.timeout(KILL_WAIT_S):
                    await proc.wait()
            except TimeoutError:
                # Something still holds the pipes: close our ends so nothing here waits on them.
                log.warning("sandbox worker %d (pid %s) did not exit after SIGKILL", self.index, proc.pid)
                if proc.stdin is not None:
                    proc.stdin.close()


@dataclass(frozen=True)
class PoolStats:
    isolation: str
    workers: int
    busy: int
    waiting: int
    executions: int
    worker_restarts: int
    stuck: int = 0  # busy past their deadline without an answer: the pool cannot get them back
    environment: SandboxEnvironment | None = None  # None: the bare interpreter, standard library only


class _Lane:
    """Workers of one kind and the queue of the idle ones; None in the queue tells the executions
    still waiting that the pool closed."""

    def __init__(self, workers: list[_Worker]) -> None:
        self.idle: asyncio.Queue[_Worker | None] = asyncio.Queue()
        for worker in workers:
            self.idle.put_nowait(worker)


class SandboxPool:
    """Runs ``ExecutionRequest``s in warm sandboxed workers. Use as ``async with SandboxPool() as pool``."""

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        *,
        isolation: Isolation | None = None,
        lazy: bool = False,
    ) -> None:
        self.settings = settings or SandboxSettings()
        self._isolation = isolation
        # Lazy: a worker starts when its first execution comes (one-shot pools, the CLI), so a
        # program that needs no preloaded module never waits for them to load.
        self._lazy = lazy
        self._workers: list[_Worker] = []
        self._lanes: tuple[_Lane, _Lane | None] | None = None  # (plain, preloaded); None: not running
        self._heavy: re.Pattern[str] | None = None  # an import of a preloaded module
        self._waiting = 0
        self._executions = 0

    @property
    def isolation(self) -> Isolation:
        if self._isolation is None:
            self._isolation = select_isolation(self.settings)
        return self._isolation

    async def start(self) -> None:
        """Start every worker; raises ``SandboxUnavailable`` if the sandbox cannot run at all."""
        if self._lanes is not None:
            return
        isolation = self.isolation
        count = self.settings.workers
        environment = isolation.environment
        roots = sorted({name.split(".")[0] for name in environment.preload}) if environment else []
        plain = [_Worker(isolation, self.settings, i, preload=False) for i in range(count)]
        preloaded = []
        if roots and self.settings.preload:
            preloaded = [_Worker(isolation, self.settings, count + i, preload=True) for i in range(count)]
            names = "|".join(map(re.escape, roots))
            self._heavy = re.compile(
                rf"^[ \t]*(?:from[ \t]+(?:{names})\b|import[ \t][^\n]*\b(?:{names})\b)", re.M
            )
        self._workers = plain + preloaded
        try:
            await asyncio.gather(*(w.ensure_started() for w in ([] if self._lazy else self._workers)))
        except BaseException:
            await asyncio.gather(*(w.kill() for w in self._workers))
            raise
        self._lanes = (_Lane(plain), _Lane(preloaded) if preloaded else None)
        log.info("sandbox ready: %d %s workers", len(self._workers), isolation.name)

    async def close(self) -> None:
        lanes, self._lanes = self._lanes, None
        await asyncio.gather(*(w.kill() for w in self._workers))
        for lane in lanes or ():
            if lane is not None:
                lane.idle.put_nowait(None)

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def stats(self) -> PoolStats:
        idle = sum(lane.idle.qsize() for lane in self._lanes or () if lane is not None)
        return PoolStats(
            isolation=self.isolation.name,
            workers=len(self._workers),
            busy=len(self._workers) - idle,
            waiting=self._waiting,
            executions=self._executions,
            worker_restarts=sum(max(w.starts - 1, 0) for w in self._workers),
            stuck=sum(w.overdue for w in self._workers),
            environment=self._environment(),
        )

    def _environment(self) -> SandboxEnvironment | None:
        environment = self.isolation.environment
        hello = next((w.hello for w in self._workers if w.preload and w.hello), None)
        if environment is None or hello is None:
            return environment
        return environment.model_copy(
            update={"preload": hello["preloaded"], "preload_mb": hello["preload_mb"]}
        )

    def _release(self, lanes: tuple[_Lane, _Lane | None], lane: _Lane, worker: _Worker) -> None:
        if self._lanes is lanes:  # a closed pool's workers stay dead
            lane.idle.put_nowait(worker)

    def _lane(self, lanes: tuple[_Lane, _Lane | None], request: ExecutionRequest) -> _Lane:
        plain, preloaded = lanes  # the second lane exists exactly when _heavy is set
        heavy = self._heavy
        if preloaded is None or heavy is None:
            return plain
        return preloaded if any(heavy.search(source) for source in [request.code, *request.tests]) else plain

    async def execute(self, request: ExecutionRequest) -> ExecutionResult:
        """Run the code and its tests. Raises ``LimitExceeded`` for limits above the maxima and
        ``SandboxBusy`` when the queue is full; cancelling the caller kills the run."""
        limits = resolve_limits(self.settings, request.timeout_s, request.memory_mb)
        lanes = self._lanes
        if lanes is None:
            raise SandboxUnavailable("the sandbox pool is not started")
        lane = self._lane(lanes, request)
        idle = lane.idle
        if idle.empty() and self._waiting >= self.settings.queue_size:
            raise SandboxBusy(f"the sandbox queue is full ({self._waiting} executions waiting)")
        self._waiting += 1
        try:
            worker = await idle.get()
        finally:
            self._waiting -= 1
        if worker is None:
            idle.put_nowait(None)  # for the next waiter
            raise SandboxUnavailable("the sandbox pool was closed while this execution waited")
        job = {
            "code": request.code,
            "tests": request.tests,
            "io_tests": [t.model_dump() for t in request.io_tests],
            "timeout_s": limits.timeout_s,
            "memory_mb": limits.memory_mb,
            "capture_bytes": self.settings.capture_bytes,
            "output_limit_bytes": self.settings.output_limit_bytes,
            "max_processes": self.settings.max_processes,
            "max_open_files": self.settings.max_open_files,
        }
        started = time.monotonic()
        release = True
        try:
            await worker.ensure_started()
            reply = await worker.run(job, limits.timeout_s + HOST_MARGIN_S)
        except _WorkerLost as lost:
            return lost_result(
                request, lost.status, lost.why, self.isolation.name, (time.monotonic() - started) * 1000
            )
        except asyncio.CancelledError:
            # The caller went away: stop the program now. The worker goes back to the pool only
            # once its run is over, even if this caller is cancelled again while it waits for that.
            release = False
            killing = asyncio.create_task(worker.stop())
            killing.add_done_callback(lambda _: self._release(lanes, lane, worker))
            await asyncio.shield(killing)
            raise
        finally:
            self._executions += 1
            if release:
                self._release(lanes, lane, worker)
        if "harness_error" in reply:
            raise WorkerCrashed("the sandbox harness failed: " + reply["harness_error"])
        return build_result(request, reply, self.isolation.name)


def execute_sync(request: ExecutionRequest, settings: SandboxSettings | None = None) -> ExecutionResult:
    """One execution from synchronous code (CLI, scripts): starts a one-worker pool and closes it."""
    base = settings or SandboxSettings()

    async def _run() -> ExecutionResult:
        async with SandboxPool(base.model_copy(update={"workers": 1}), lazy=True) as pool:
            return await pool.execute(request)

    return asyncio.run(_run())
