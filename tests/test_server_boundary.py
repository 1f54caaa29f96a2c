"""Bad and abandoned input at the HTTP boundary: answered in the OpenAI error shape with the right
status, never a 500, never a dropped connection, and no work left running for nobody."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mucode.server.deps import get_execute_service
from mucode.server.services.execute import ExecuteService

from .helpers import SLOW, LiveServer, assert_openai_error, sandbox_busy_processes, server_settings

JSON = {"content-type": "application/json"}


CHAT = '{"model": "mucode", "messages": [{"role": "user", "content": "x \\ud800 y"}]}'
COMPLETION = '{"model": "mucode", "prompt": "x \\udfff", "echo": true, "max_tokens": 2}'
EXECUTE = '{"code": "x = 1", "tests": ["assert \\"\\ud800\\""]}'
SOLVE = '{"prompt": "def f():\\n    \\"\\"\\"\\ud83d\\"\\"\\"", "tests": []}'


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", CHAT, "messages.0.content"),
        ("/v1/completions", COMPLETION, "prompt"),
        ("/v1/execute", EXECUTE, "tests.0"),
        ("/v1/solve", SOLVE, "prompt"),
    ],
)
def test_a_lone_surrogate_is_a_400_and_the_connection_lives_on(
    http: httpx.Client, path: str, body: str, param: str
) -> None:
    """Valid JSON, invalid text: refused where it enters, and the same keep-alive connection
    serves the next request (a 500 mid-response used to reset it)."""
    error = assert_openai_error(http.post(path, content=body, headers=JSON), 400, param)
    assert error["code"] == "invalid_unicode"
    assert http.get("/health").status_code == 200


def test_a_surrogate_pair_is_text_and_passes(http: httpx.Client) -> None:
    body = '{"code": "s = \\"\\ud83d\\ude00\\"", "tests": ["assert len(s) == 1"]}'
    response = http.post("/v1/execute", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["passed"] is True


def test_a_chunked_body_over_the_limit_is_413(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"code": "'
        for _ in range(5 * 64):  # 5 MB, no Content-Length
            yield b"x" * 16384
        yield b'"}'

    response = http.post("/v1/execute", content=chunks(), headers=JSON)
    error = assert_openai_error(response, 413)
    assert error["code"] == "payload_too_large"


def test_an_abandoned_execute_stops_its_run(tmp_path: Path) -> None:
    """A client that gives up on /v1/execute (its timeout) does not leave the program running."""
    server = LiveServer(server_settings(tmp_path, timeout_s=50))
    try:
        body = {"code": "import time\ntime.sleep(40)", "tests": [], "timeout_s": 45}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url + "/v1/execute", json=body, timeout=1.5)
        deadline = time.monotonic() + 10
        while sandbox_busy_processes(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sandbox_busy_processes(server) == 0
        pool = server.runtime.pool
        assert pool is not None
        assert pool.stats().busy == 0
    finally:
        server.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_an_abandoned_batch_stops_its_runs(tmp_path: Path, stream: bool) -> None:
    """A client that leaves mid-batch (streamed or not) leaves no program running or waiting: the
    two that had started are killed and the two still queued never start."""
    server = LiveServer(server_settings(tmp_path, timeout_s=50))
    try:
        pool = server.runtime.pool
        assert pool is not None
        before = pool.stats().executions
        sleepy = {"code": "import time\ntime.sleep(40)", "tests": [], "timeout_s": 45}
        body = {"requests": [sleepy] * 4, "stream": stream}
        url = server.url + "/v1/execute/batch"
        with pytest.raises(httpx.ReadTimeout), httpx.stream("POST", url, json=body, timeout=1.5) as response:
            response.read()
        deadline = time.monotonic() + 10
        while (sandbox_busy_processes(server) or pool.stats().busy) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sandbox_busy_processes(server) == 0
        assert pool.stats().busy == 0
        time.sleep(1)  # the two that waited would have started by now
        assert pool.stats().busy == 0
        assert pool.stats().executions - before <= 2
    finally:
        server.stop()


def test_jobs_are_admitted_within_a_queue_limit_and_a_per_key_quota(tmp_path: Path) -> None:
    """A key with too many unfinished jobs gets 429, a full queue 503, both with Retry-After;
    cancelling frees the quota. (A fuzzer once queued 5,565 jobs and grew the server by 700 MB.)"""
    settings = {"api_keys": "ka,kb", "max_pending_jobs": 3, "max_pending_jobs_per_key": 2, "job_workers": 1}
    server = LiveServer(server_settings(tmp_path, script=[[SLOW]], server=settings, timeout_s=50))
    a, b = {"Authorization": "Bearer ka"}, {"Authorization": "Bearer kb"}
    body = {"prompt": "def double(x):\n    pass\n", "tests": ["assert double(1) == 2"], "options": {"n": 1}}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            mine = [http.post("/v1/jobs", json=body, headers=a) for _ in range(2)]
            assert [r.status_code for r in mine] == [202, 202]
            quota = http.post("/v1/jobs", json=body, headers=a)
            assert assert_openai_error(quota, 429)["code"] == "job_quota_exceeded"
            assert quota.headers["retry-after"] == "10"
            assert http.post("/v1/jobs", json=body, headers=b).status_code == 202
            full = http.post("/v1/jobs", json=body, headers=b)
            assert assert_openai_error(full, 503)["code"] == "jobs_full"
            assert full.headers["retry-after"] == "10"
            for response in mine:
                assert http.delete(f"/v1/jobs/{response.json()['id']}", headers=a).status_code == 200
            assert http.post("/v1/jobs", json=body, headers=a).status_code == 202
    finally:
        server.stop()


def test_an_unexpected_error_is_a_500_that_keeps_the_connection(tmp_path: Path) -> None:
    """A bug deep inside a route: the client gets a 500 in the OpenAI shape, and the same
    keep-alive connection serves its next request (a raw socket: httpx would quietly reconnect)."""
    server = LiveServer(server_settings(tmp_path))

    def broken() -> ExecuteService:
        raise RuntimeError("a bug")

    server.app.dependency_overrides[get_execute_service] = broken
    body = b'{"code": "x = 1"}'
    request = b"POST /v1/execute HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    request += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(request)
            first = read_response(conn)
            assert first.startswith(b"HTTP/1.1 500"), first
            assert b'"type":"server_error"' in first
            assert b"x-request-id" in first  # the request log saw it too
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(conn).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()


def read_response(conn: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length, or what came before the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        chunk = conn.recv(4096)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest
