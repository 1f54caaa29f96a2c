"""Redis features against a real Redis: the shared solve cache, rate limits shared by replicas,
jobs through arq with progress and cancel, and Redis dying mid-test (served without it).

The shared Redis is the one on 127.0.0.1:6379 (CI starts it); each test uses its own key prefix.
The outage test starts and kills its own redis-server so the shared one is never touched."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from mucode.server.jobs import LocalJobs
from mucode.server.metrics import Metrics
from mucode.server.redis_link import RedisLink

from .helpers import (
    SLOW,
    LiveServer,
    assert_openai_error,
    free_port,
    sandbox_busy_processes,
    server_settings,
    solve_body,
    unset_env,
    wait_job,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
SCRIPTED_PASS = "```python\ndef double(x):\n    return x * 2\n```"


@pytest.fixture(scope="module")
def shared_redis() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"the Redis tests need Redis on 127.0.0.1:6379 (`.ci/run` starts it): {exc}")
    return client


@pytest.fixture
def prefix(shared_redis: redis.Redis) -> Iterator[str]:
    name = f"mucode-test-{uuid.uuid4().hex[:8]}"
    yield name
    keys = list(shared_redis.scan_iter(f"{name}:*"))
    if keys:
        shared_redis.delete(*keys)


def redis_server(tmp: Path, script: list[list[str]] | None = None, **server: Any) -> LiveServer:
    return LiveServer(server_settings(tmp, script=script, server=server))


def test_cache_hit_on_repeat_is_shared_through_redis(
    tmp_path: Path, prefix: str, shared_redis: redis.Redis
) -> None:
    a = redis_server(tmp_path, redis_url=REDIS_URL, redis_prefix=prefix, cache_ttl_s=120)
    b = redis_server(tmp_path, redis_url=REDIS_URL, redis_prefix=prefix, cache_ttl_s=120)
    try:
        body = solve_body(temperature=0)
        first = httpx.post(a.url + "/v1/solve", json=body, timeout=30)
        assert first.headers["x-mucode-cache"] == "miss"
        keys = list(shared_redis.scan_iter(f"{prefix}:solve:*"))
        assert len(keys) == 1
        ttl: int = shared_redis.ttl(keys[0])  # type: ignore[assignment]
        assert 0 < ttl <= 120
        # Another replica answers the repeat from Redis without asking its model.
        second = httpx.post(b.url + "/v1/solve", json=body, timeout=30)
        assert second.headers["x-mucode-cache"] == "hit"
        assert second.json()["cached"] is True
        assert second.json()["final_code"] == first.json()["final_code"]
        assert b.runtime.generator is not None
        assert len(b.runtime.generator.calls) == 0  # type: ignore[attr-defined]
        assert 'mucode_cache_total{result="hit"} 1.0' in httpx.get(b.url + "/metrics").text
    finally:
        a.stop()
        b.stop()


def test_rate_limit_per_key_is_shared_by_replicas(tmp_path: Path, prefix: str) -> None:
    settings: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "rate_limit_per_minute": 3,
        "api_keys": "k1,k2",
    }
    a, b = redis_server(tmp_path, **settings), redis_server(tmp_path, **settings)
    try:
        key1 = {"Authorization": "Bearer k1"}
        assert httpx.get(a.url + "/v1/models", headers=key1).status_code == 200
        assert httpx.get(b.url + "/v1/models", headers=key1).status_code == 200
        assert httpx.get(a.url + "/v1/models", headers=key1).status_code == 200
        limited = httpx.get(b.url + "/v1/models", headers=key1)
        assert_openai_error(limited, 429)
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(limited.headers["retry-after"]) <= 61
        # Another key has its own allowance; a wrong key is refused before it is counted.
        assert httpx.get(a.url + "/v1/models", headers={"Authorization": "Bearer k2"}).status_code == 200
        assert httpx.get(a.url + "/v1/models", headers={"Authorization": "Bearer bad"}).status_code == 401
        assert httpx.get(a.url + "/health").status_code == 200  # /health is never limited
    finally:
        a.stop()
        b.stop()


def test_job_lifecycle_through_arq(tmp_path: Path, prefix: str, shared_redis: redis.Redis) -> None:
    server = redis_server(tmp_path, redis_url=REDIS_URL, redis_prefix=prefix, job_workers=1)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            job = http.post("/v1/jobs", json=solve_body()).json()
            assert shared_redis.exists(f"{prefix}:job:{job['id']}")  # queued in Redis, not in-process
            local = next(s for s in server.runtime.jobs.stores if isinstance(s, LocalJobs))
            assert job["id"] not in local.jobs
            done = wait_job(http, job["id"], {"succeeded", "failed"})
            assert done["status"] == "succeeded", done
            assert [t["turn"] for t in done["turns"]] == [1, 2]
            assert "2 * x" in done["result"]["final_code"]
            assert done["progress"]["phase"] == "done"
    finally:
        server.stop()


def test_job_cancel_through_arq(tmp_path: Path, prefix: str) -> None:
    server = redis_server(tmp_path, script=[[SLOW]], redis_url=REDIS_URL, redis_prefix=prefix, job_workers=1)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            job = http.post("/v1/jobs", json=solve_body()).json()
            wait_job(http, job["id"], {"running"})
            deadline = time.monotonic() + 10
            while sandbox_busy_processes(server) == 0:
                assert time.monotonic() < deadline, "the candidate never started"
                time.sleep(0.05)
            assert http.delete(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
            deadline = time.monotonic() + 10  # arq polls its abort set every 0.1 s here
            while sandbox_busy_processes(server) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sandbox_busy_processes(server) == 0
            time.sleep(0.5)  # the worker's own last write must not resurrect the job
            assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    finally:
        server.stop()


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A redis-server of the test's own on ``port``, answering pings."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (`.ci/run` installs it)")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = start_redis(port, tmp_path)
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.kill()
    proc.wait()


def test_health_says_whether_redis_answers_now(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    """Not the outcome of the last request that used Redis: with no other traffic, /health sees
    Redis go away and come back (what a container healthcheck or an operator polls)."""
    url, proc = own_redis
    server = redis_server(tmp_path, redis_url=url)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.get("/health").json()["redis"]["reachable"] is True
            proc.kill()
            proc.wait()
            gone = http.get("/health")
            assert gone.status_code == 200 and gone.json()["redis"]["reachable"] is False
            replacement = start_redis(int(url.rsplit(":", 1)[1].split("/")[0]), tmp_path)
            try:
                assert http.get("/health").json()["redis"]["reachable"] is True
            finally:
                replacement.kill()
                replacement.wait()
    finally:
        server.stop()


def test_redis_dying_mid_test_degrades_to_serving_without_it(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, proc = own_redis
    server = redis_server(tmp_path, redis_url=url, rate_limit_per_minute=100)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            body = solve_body(seed=3)
            assert http.post("/v1/solve", json=body).headers["x-mucode-cache"] == "miss"
            assert http.post("/v1/solve", json=body).headers["x-mucode-cache"] == "hit"
            proc.kill()
            proc.wait()
            for _ in range(3):  # cache, rate limit: all fail over, none fails the request
                response = http.post("/v1/solve", json=body)
                assert response.status_code == 200, response.text
                assert response.headers["x-mucode-cache"] == "miss"
            job = http.post("/v1/jobs", json=solve_body())
            assert job.status_code == 202, job.text  # runs in-process instead
            assert wait_job(http, job.json()["id"], {"succeeded", "failed"})["status"] == "succeeded"
            health = http.get("/health").json()
            assert health["redis"]["reachable"] is False
            metrics = http.get("/metrics").text
            errors = [line for line in metrics.splitlines() if line.startswith("mucode_redis_errors_total{")]
            assert errors
            assert sum(float(line.split()[-1]) for line in errors) >= 3
    finally:
        server.stop()


def test_a_separate_mucode_worker_runs_the_jobs(tmp_path: Path, prefix: str) -> None:
    """The server runs no jobs itself (job_workers=0); a `mucode worker` process — another
    machine, as far as the server can tell — takes them from Redis."""
    import json as jsonlib
    import sys

    server = redis_server(tmp_path, redis_url=REDIS_URL, redis_prefix=prefix, job_workers=0)
    script = tmp_path / "worker-script.json"
    script.write_text(jsonlib.dumps([[SCRIPTED_PASS]]))
    env = unset_env()
    env |= {
        "MUCODE_REDIS_URL": REDIS_URL,
        "MUCODE_REDIS_PREFIX": prefix,
        "MUCODE_GENERATOR": "scripted",
        "MUCODE_SCRIPT": str(script),
        "MUCODE_SANDBOX_WORKERS": "1",
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen([sys.executable, "-m", "mucode.cli", "worker"], env=env, stdout=log, stderr=log)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            job = http.post("/v1/jobs", json=solve_body()).json()
            done = wait_job(http, job["id"], {"succeeded", "failed"}, timeout=60)
            assert done["status"] == "succeeded", (tmp_path / "worker.log").read_text()[-2000:]
            # The worker's own generator answered: one turn, its script's passing answer.
            assert len(done["turns"]) == 1
            assert "x * 2" in done["result"]["final_code"]
    finally:
        worker.terminate()
        worker.wait(30)


def test_redis_killed_and_restarted_under_load_loses_no_request(tmp_path: Path) -> None:
    """Solves, executions and jobs keep coming while Redis is killed and started again: every one
    is answered (in-process fallbacks while it is down), and the server goes back to Redis."""
    port = free_port()
    redis_proc = start_redis(port, tmp_path)
    url = f"redis://127.0.0.1:{port}/0"
    # Limits out of the way: this test is about Redis, and on a slow machine jobs pile up.
    limits: dict[str, Any] = {
        "rate_limit_per_minute": 10000,
        "max_pending_jobs": 10000,
        "max_pending_jobs_per_key": 10000,
    }
    server = redis_server(tmp_path, redis_url=url, **limits)
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            k = 0
            while not stop.is_set():
                k += 1
                if k % 3 == 0:
                    statuses.append(http.post("/v1/jobs", json=solve_body()).status_code)
                elif k % 3 == 1:
                    statuses.append(http.post("/v1/solve", json=solve_body(seed=k % 5)).status_code)
                else:
                    statuses.append(http.post("/v1/execute", json={"code": "x = 1", "tests": []}).status_code)

    clients = [threading.Thread(target=load) for _ in range(3)]
    try:
        for client in clients:
            client.start()
        time.sleep(1.5)
        redis_proc.kill()
        redis_proc.wait()
        time.sleep(2.0)
        redis_proc = start_redis(port, tmp_path)
        time.sleep(2.0)
        stop.set()
        for client in clients:
            client.join(60)
        assert statuses
        assert {s for s in statuses} <= {200, 202}, sorted(set(statuses))
        with httpx.Client(base_url=server.url, timeout=30) as http:
            deadline = time.monotonic() + 15
            while not http.get("/health").json()["redis"]["reachable"]:
                assert time.monotonic() < deadline, "the server never went back to Redis"
                http.post("/v1/solve", json=solve_body(seed=99))  # a call that notices Redis is back
                time.sleep(0.2)
            body = solve_body(seed=1234)
            assert http.post("/v1/solve", json=body).headers["x-mucode-cache"] == "miss"
            assert http.post("/v1/solve", json=body).headers["x-mucode-cache"] == "hit"
            job = http.post("/v1/jobs", json=solve_body()).json()
            assert redis.Redis(port=port).exists(f"mucode:job:{job['id']}")  # queued in Redis again
    finally:
        stop.set()
        server.stop()
        redis_proc.kill()
        redis_proc.wait()


def test_a_socket_closed_under_the_event_loop_is_an_outage_too() -> None:
    """uvloop reports a write to a socket Redis just closed as a RuntimeError, not a redis-py
    ConnectionError (seen in CI under load): the link serves the fallback, as for any outage."""
    metrics = Metrics()
    link = RedisLink("redis://127.0.0.1:1/0", "mucode-test", metrics)

    async def closed(_: Any) -> str:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed")

    async def both() -> tuple[str, bool]:
        value = await link.call("cache_get", closed, "fallback")
        return value, await link.ping()

    assert asyncio.run(both()) == ("fallback", False)
    assert not link.healthy
    assert metrics.registry.get_sample_value("mucode_redis_errors_total", {"op": "cache_get"}) == 1
