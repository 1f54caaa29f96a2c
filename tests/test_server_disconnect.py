"""A client that goes away mid-stream stops the search: no sandbox run is left behind."""

from __future__ import annotations

import time

import httpx
import pytest

from .helpers import SLOW, LiveServer, sandbox_busy_processes, server_settings


def test_disconnect_mid_stream_kills_the_sandbox_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = LiveServer(server_settings(tmp_path_factory.mktemp("slow"), script=[[SLOW]], timeout_s=50))
    try:
        body = {
            "model": "mucode",
            "stream": True,
            "n": 2,
            "tests": ["assert double(2) == 4"],
            "messages": [{"role": "user", "content": "def double(x):\n    pass\n"}],
        }
        with (
            httpx.Client(base_url=server.url, timeout=30) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            lines = response.iter_lines()  # kept: closing this iterator would close the connection
            for line in lines:
                if "sampling candidates" in line:
                    break
            deadline = time.monotonic() + 10
            while sandbox_busy_processes(server) == 0:
                assert time.monotonic() < deadline, "the candidate never started"
                time.sleep(0.05)
        # The connection is closed here: the client has gone away mid-search.
        deadline = time.monotonic() + 5
        while sandbox_busy_processes(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sandbox_busy_processes(server) == 0
        runtime = server.runtime
        assert runtime.pool is not None
        assert runtime.pool.stats().busy == 0
    finally:
        server.stop()
