"""Soak: mixed traffic against a live `mucode serve` (scripted generator) for a long time, to show
that nothing grows and nothing is left behind.

Clients (default 4) loop over: /v1/solve, a streamed `mucode` chat closed mid-search (an IDE's
Stop), /v1/execute, a job posted then polled or cancelled, and malformed requests (not JSON, a lone
surrogate, a chunked body over the limit, a wrong model, a field out of range). Reported: the
server's RSS and open fds at start (after a warm-up minute) and end, requests and errors by kind
(an error is a 5xx, a dropped connection, or a status the request should not get), and the
sandbox processes left once the server has stopped. Targets: growth under 10 %, 0 unexpected
errors, 0 processes left.

    .venv/bin/python bench/soak.py [--minutes 30] [--clients 4] [--out docs/bench-data/soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _machine import machine
from _server import scripted_server

SLOWISH = "```python\ndef double(x):\n    import time\n    time.sleep(0.5)\n    return 2 * x\n```"
SCRIPT = [
    ["```python\ndef double(x):\n    return x + 2\n```", SLOWISH],
    ["```python\ndef double(x):\n    return 2 * x\n```"],
]
PROMPT = 'def double(x):\n    """Return twice x."""\n'
TESTS = ["assert double(2) == 4", "assert double(0) == 0"]
OPTIONS = {"n": 2, "turns": 3}
SOLVE: dict[str, Any] = {"prompt": PROMPT, "tests": TESTS, "options": OPTIONS}
CHAT = {
    "model": "mucode",
    "stream": True,
    "n": 2,
    "messages": [{"role": "user", "content": PROMPT}],
    "tests": TESTS,
}
JSON = {"content-type": "application/json"}


def sample(pid: int) -> dict[str, int]:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return {"rss_bytes": rss, "open_fds": len(os.listdir(f"/proc/{pid}/fd"))}


def idle_sample(url: str, pid: int) -> dict[str, int]:
    """RSS and fds once the server is idle (jobs done, no search running, sockets closed)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        health = httpx.get(url + "/health").json()
        if health["sandbox"]["busy"] == 0 and health["queue"]["running"] == 0:
            break
        time.sleep(1)
    time.sleep(3)
    return sample(pid)


def processes_of(binary: str) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # it ended while we looked
                count += (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode() == binary
    return count


class Tally:
    def __init__(self) -> None:
        self.requests: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()

    def check(self, kind: str, status: int, expected: set[int]) -> None:
        self.requests[kind] += 1
        if status not in expected:
            self.errors[f"{kind}: {status}"] += 1


async def client(http: httpx.AsyncClient, rng: random.Random, tally: Tally, until: float) -> None:
    while time.monotonic() < until:
        kind = rng.choice(["solve", "stream_cancel", "execute", "job", "malformed"])
        try:
            if kind == "solve":
                r = await http.post(
                    "/v1/solve", json={**SOLVE, "options": {**OPTIONS, "seed": rng.randrange(10**6)}}
                )
                tally.check(kind, r.status_code, {200})
            elif kind == "stream_cancel":
                async with http.stream("POST", "/v1/chat/completions", json=CHAT) as r:
                    tally.check(kind, r.status_code, {200})
                    with contextlib.suppress(TimeoutError):  # leaving early is the point
                        async with asyncio.timeout(rng.uniform(0.05, 1.0)):
                            async for _ in r.aiter_raw():
                                pass
            elif kind == "execute":
                r = await http.post(
                    "/v1/execute", json={"code": "def double(x):\n    return 2 * x\n", "tests": TESTS}
                )
                tally.check(kind, r.status_code, {200})
            elif kind == "job":
                r = await http.post("/v1/jobs", json=SOLVE)
                tally.check(kind, r.status_code, {202, 429, 503})
                if r.status_code == 202:
                    job_id = r.json()["id"]
                    if rng.random() < 0.5:
                        tally.check(
                            "job_cancel", (await http.delete(f"/v1/jobs/{job_id}")).status_code, {200}
                        )
                    else:
                        await asyncio.sleep(rng.uniform(0, 2))
                        tally.check("job_get", (await http.get(f"/v1/jobs/{job_id}")).status_code, {200})
            else:
                await malformed(http, rng, tally)
        except httpx.HTTPError as exc:
            tally.errors[f"{kind}: {type(exc).__name__}"] += 1


async def malformed(http: httpx.AsyncClient, rng: random.Random, tally: Tally) -> None:
    which = rng.randrange(5)
    if which == 0:
        r = await http.post("/v1/solve", content=b"{not json", headers=JSON)
        tally.check("bad_json", r.status_code, {400})
    elif which == 1:
        r = await http.post("/v1/execute", content=b'{"code": "x = \\"\\ud800\\""}', headers=JSON)
        tally.check("surrogate", r.status_code, {400})
    elif which == 2:

        async def chunks() -> Any:
            for _ in range(5 * 16):
                yield b"x" * 65536

        r = await http.post("/v1/execute", content=chunks(), headers=JSON)
        tally.check("too_large", r.status_code, {413})
    elif which == 3:
        r = await http.post("/v1/chat/completions", json={**CHAT, "stream": False, "model": "nope"})
        tally.check("wrong_model", r.status_code, {404})
    else:
        r = await http.post("/v1/solve", json={**SOLVE, "options": {"n": 0}})
        tally.check("out_of_range", r.status_code, {422})


async def traffic(url: str, clients: int, seconds: float, seed: int) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        await asyncio.gather(*(client(http, random.Random(seed + k), tally, until) for k in range(clients)))
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument(
        "--warmup", type=float, default=60, help="Seconds of traffic before the start sample."
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("soak.json"))
    args = parser.parse_args()

    # A bwrap of its own, so the sandbox processes of this server can be counted (orphans too).
    folder = tempfile.mkdtemp(prefix="mucode-soak-")
    os.chmod(folder, 0o755)
    bwrap = os.path.join(folder, "bwrap")
    shutil.copy2(shutil.which("bwrap") or "/usr/bin/bwrap", bwrap)
    os.chmod(bwrap, 0o755)
    env = {"MUCODE_SANDBOX_BWRAP": bwrap, "MUCODE_SANDBOX_WORKERS": "2", "MUCODE_CACHE_TTL_S": "0"}
    started = time.time()
    with scripted_server(SCRIPT, env) as server:
        pid = server.proc.pid
        warm = asyncio.run(traffic(server.url, args.clients, args.warmup, args.seed))
        start = idle_sample(server.url, pid)
        series: list[dict[str, float]] = []
        stop = threading.Event()

        def watch() -> None:  # RSS and fds every minute, under load
            begun = time.monotonic()
            while not stop.wait(60):
                series.append({"minute": round((time.monotonic() - begun) / 60, 1), **sample(pid)})

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        tally = asyncio.run(traffic(server.url, args.clients, args.minutes * 60, args.seed + 1000))
        stop.set()
        watcher.join()
        end = idle_sample(server.url, pid)
        health = httpx.get(server.url + "/health").json()
    time.sleep(2)
    left = processes_of(bwrap)
    shutil.rmtree(folder, ignore_errors=True)
    growth = {k: round((end[k] - start[k]) / max(start[k], 1) * 100, 1) for k in start}
    # The bounded stores (job records, up to MUCODE_MAX_JOB_RECORDS) fill in the first minutes; a
    # leak keeps growing after that, a full store does not.
    third = series[len(series) // 3] if series else start
    later = {k: round((end[k] - third[k]) / max(third[k], 1) * 100, 1) for k in start}
    report = {
        "date": time.strftime("%Y-%m-%d", time.localtime(started)),
        "machine": machine(),
        "minutes": args.minutes,
        "clients": args.clients,
        "start": start,
        "end": end,
        "growth_percent": growth,
        "growth_percent_last_two_thirds": later,
        "series": series,
        "requests": dict(tally.requests),
        "requests_total": sum(tally.requests.values()),
        "errors": dict(tally.errors),
        "warmup_errors": dict(warm.errors),
        "sandbox": {k: health["sandbox"][k] for k in ("executions", "worker_restarts", "busy", "stuck")},
        "processes_left": left,
        "targets_met": max(growth.values()) < 10 and not tally.errors and left == 0,
        "targets_met_once_filled": max(later.values()) < 10 and not tally.errors and left == 0,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
