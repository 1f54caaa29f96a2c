"""The server under faults, end to end: clients that cancel at any moment (an IDE's Stop button,
DELETE right after POST), and SIGTERM with work in flight. Nothing may wedge, nothing may be left
running."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Literal

import httpx
import pytest

from .helpers import (
    DEFAULT_SCRIPT,
    SLOW,
    LiveServer,
    free_port,
    processes_of,
    server_settings,
    wait_healthy,
)

PROBLEM = 'def double(x):\n    """Return twice x."""\n'
BODY = {"prompt": PROBLEM, "tests": ["assert double(2) == 4"], "options": {"n": 2, "turns": 2}}
CHAT = {
    "model": "mucode",
    "stream": True,
    "n": 2,
    "messages": [{"role": "user", "content": PROBLEM}],
    "tests": ["assert double(2) == 4"],
}


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_server_serves_on_either_event_loop(tmp_path: Path, loop: Literal["asyncio", "uvloop"]) -> None:
    """uvicorn takes uvloop when it is installed, asyncio otherwise: a search, a stream and an
    execution work on both (uvloop's subprocess API once refused the sandbox's arguments)."""
    server = LiveServer(server_settings(tmp_path), loop=loop)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            solved = http.post("/v1/solve", json=BODY)
            assert solved.status_code == 200, solved.text
            assert solved.json()["public_all_passed"] is True
            with http.stream("POST", "/v1/chat/completions", json=CHAT) as response:
                lines = [line for line in response.iter_lines() if line]
            assert lines[-1] == "data: [DONE]"
            executed = http.post("/v1/execute", json={"code": "x = 1", "tests": ["assert x == 1"]})
            assert executed.json()["passed"] is True
    finally:
        server.stop()


def test_a_cancel_storm_through_http_leaves_the_server_serving(tmp_path: Path, own_bwrap: str) -> None:
    """300 cancels at random points: jobs deleted 0-30 ms after they were posted, and streamed
    chats closed while their search runs. Afterwards no worker is busy, executions go on, and
    once the server stops no process of its sandbox is left."""
    server = LiveServer(
        server_settings(
            tmp_path, script=[[SLOW, SLOW]], server={"job_workers": 2}, timeout_s=30, bwrap=own_bwrap
        )
    )
    rng = random.Random(0)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for k in range(300):
                if k % 2:
                    job = http.post("/v1/jobs", json=BODY).json()
                    time.sleep(rng.uniform(0, 0.03))
                    assert http.delete(f"/v1/jobs/{job['id']}").status_code == 200
                else:
                    # The client stops reading after a random wait and closes the connection.
                    wait = httpx.Timeout(30, read=rng.uniform(0.02, 0.3))
                    with http.stream("POST", "/v1/chat/completions", json=CHAT, timeout=wait) as response:
                        assert response.status_code == 200
                        with contextlib.suppress(httpx.ReadTimeout):
                            for _ in response.iter_raw():
                                pass
            pool = server.runtime.pool
            assert pool is not None
            deadline = time.monotonic() + 20
            while pool.stats().busy and time.monotonic() < deadline:
                time.sleep(0.1)
            stats = pool.stats()
            assert stats.busy == 0, stats
            assert stats.stuck == 0, stats
            quick = http.post("/v1/execute", json={"code": "x = 1", "tests": ["assert x == 1"]})
            assert quick.json()["passed"] is True
            assert pool.stats().executions == stats.executions + 1
            assert http.get("/health").json()["status"] == "ok"
    finally:
        server.stop()
    deadline = time.monotonic() + 10
    while processes_of(own_bwrap) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(own_bwrap) == []


def test_sigterm_under_load_exits_in_bounded_time_leaving_nothing(tmp_path: Path, own_bwrap: str) -> None:
    """`mucode serve` with searches, jobs and streams in flight: SIGTERM ends it within the
    shutdown timeout plus the sandbox's kill time, and no process of its sandbox survives."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps([[SLOW, SLOW], *DEFAULT_SCRIPT]))
    port = free_port()
    env = {
        **os.environ,
        "MUCODE_GENERATOR": "scripted",
        "MUCODE_SCRIPT": str(script),
        "MUCODE_PORT": str(port),
        "MUCODE_SANDBOX_BWRAP": own_bwrap,
        "MUCODE_SANDBOX_WORKERS": "2",
        "MUCODE_SANDBOX_TIMEOUT_S": "50",
        "MUCODE_SHUTDOWN_TIMEOUT_S": "3",
    }
    log = tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mucode.cli", "serve"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    try:
        wait_healthy(url, proc, log, timeout=60)

        def stream() -> None:
            try:
                with httpx.stream("POST", url + "/v1/chat/completions", json=CHAT, timeout=60) as response:
                    for _ in response.iter_raw():
                        pass
            except httpx.HTTPError:
                pass  # the server going away is what this test does

        clients = [threading.Thread(target=stream, daemon=True) for _ in range(3)]
        for client in clients:
            client.start()
        for _ in range(3):
            httpx.post(url + "/v1/jobs", json=BODY, timeout=10)
        time.sleep(1.5)
        assert processes_of(own_bwrap), "the load never reached the sandbox"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        took = time.monotonic() - started
        assert took < 3 + 10, f"shutdown took {took:.1f} s\n{log.read_text()[-3000:]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 5
    while processes_of(own_bwrap) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_of(own_bwrap) == [], log.read_text()[-3000:]
