"""A live `mucode serve` on the scripted generator, for the benchmarks that load the server
(server_load.py, soak.py): what they measure is the server and the sandbox, not a model."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def scripted_server(script: list[list[str]], env: dict[str, str]) -> Iterator[Server]:
    """`mucode serve` in a subprocess answering with ``script``, ``env`` on top of MUCODE_*; ready
    (health `ok`) when yielded, SIGTERM'd afterwards."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "script.json"
        path.write_text(json.dumps(script))
        full = {
            **os.environ,
            "MUCODE_GENERATOR": "scripted",
            "MUCODE_SCRIPT": str(path),
            "MUCODE_PORT": str(port),
            **env,
        }
        log = Path(tmp) / "server.log"
        with log.open("w") as out:  # a file: a pipe nobody reads would block the server
            proc = subprocess.Popen(
                [sys.executable, "-m", "mucode.cli", "serve"], env=full, stdout=out, stderr=out
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/health").json()["status"] == "ok":
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("server did not start:\n" + log.read_text())
                time.sleep(0.2)
            yield Server(url, proc, log)
        finally:
            proc.terminate()
            proc.wait(60)
