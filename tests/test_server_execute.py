"""``POST /v1/execute`` and ``GET /health`` over real HTTP against a live uvicorn server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from mucode.server.app import create_app

from .helpers import LiveServer, assert_openai_error, server_settings


def test_execute_acceptance_example(http: httpx.Client) -> None:
    response = http.post("/v1/execute", json={"code": "def f(x): return x+1", "tests": ["assert f(1) == 3"]})
    assert response.status_code == 200
    body = response.json()
    assert body["passed"] is False
    assert {"passed", "results", "stdout", "stderr", "duration_ms", "feedback"} <= set(body)
    assert body["results"][0] == {
        "test": "assert f(1) == 3",
        "kind": "assert",
        "status": "failed",
        "message": "f(1) returned 2, expected 3",
        "duration_ms": body["results"][0]["duration_ms"],
    }
    assert "f(1)" in body["feedback"]
    assert "2" in body["feedback"]
    assert "3" in body["feedback"]


def test_execute_io_tests_and_limits(http: httpx.Client) -> None:
    payload = {
        "code": "print(input()[::-1])",
        "io_tests": [{"input": "abc\n", "output": "cba\n"}],
        "timeout_s": 5,
        "memory_mb": 256,
    }
    body = http.post("/v1/execute", json=payload).json()
    assert body["passed"] is True
    assert body["stdout"] == "cba\n"


def test_code_over_one_megabyte_is_413(http: httpx.Client) -> None:
    error = assert_openai_error(http.post("/v1/execute", json={"code": "x" * (1024 * 1024 + 1)}), 413, "code")
    assert error["code"] == "payload_too_large"


def test_body_over_the_limit_is_413(http: httpx.Client) -> None:
    response = http.post(
        "/v1/execute",
        content=b"{" + b" " * (5 * 1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert_openai_error(response, 413)


def test_too_many_tests_is_422(http: httpx.Client) -> None:
    error = assert_openai_error(
        http.post("/v1/execute", json={"code": "x = 1", "tests": ["assert True"] * 257}), 422, "tests"
    )
    assert "256" in str(error["message"])


def test_bad_bodies(http: httpx.Client) -> None:
    assert_openai_error(http.post("/v1/execute", json={"code": 1}), 422, "code")
    assert_openai_error(http.post("/v1/execute", json={"tests": []}), 422, "code")
    assert_openai_error(http.post("/v1/execute", json={"code": "x", "timeout_s": -1}), 422, "timeout_s")
    assert_openai_error(http.post("/v1/execute", json={"code": "x", "timeout_s": 1e9}), 422, "timeout_s")
    assert_openai_error(http.post("/v1/execute", json={"code": "x", "unknown": 1}), 422, "unknown")
    assert_openai_error(
        http.post("/v1/execute", content=b'{"code": ', headers={"content-type": "application/json"}), 400
    )
    assert_openai_error(http.get("/v1/nothing-here"), 404)


def test_health_and_openapi(http: httpx.Client) -> None:
    health = http.get("/health").json()
    assert health["status"] == "ok"
    assert health["sandbox"]["ready"] is True
    assert health["sandbox"]["isolation"] == "bubblewrap"
    assert health["generator"]["state"] == "ready"
    assert health["generator"]["backend"] == "scripted"
    assert health["generator"]["verifier"] == "none"
    spec = http.get("/openapi.json").json()
    assert "/v1/execute" in spec["paths"]
    assert "ExecutionResult" in spec["components"]["schemas"]


def test_sandbox_that_cannot_start_is_reported_not_bypassed(tmp_path: Path) -> None:
    settings = server_settings(tmp_path, bwrap="/nonexistent/bwrap")
    with TestClient(create_app(settings)) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert "bubblewrap" in health.json()["sandbox"]["error"]
        response = client.post("/v1/execute", json={"code": "x = 1"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "sandbox_unavailable"


def test_model_that_fails_to_load_is_reported(tmp_path: Path) -> None:
    settings = server_settings(tmp_path)
    settings.engine.script = None  # the scripted backend without its script cannot load
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 10
        while (health := client.get("/health")).json()["generator"]["state"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert health.status_code == 200  # the sandbox still serves /v1/execute
        body = health.json()
        assert body["status"] == "degraded"
        assert body["generator"]["state"] == "error"
        assert "MUCODE_SCRIPT" in body["generator"]["error"]
        assert client.post("/v1/execute", json={"code": "x = 1"}).json()["passed"] is True


BATCH = [
    {"code": "def f(x): return x+1", "tests": ["assert f(1) == 2"]},
    {"code": "def f(x): return x+2", "tests": ["assert f(1) == 2"]},
    {"code": "print(input()[::-1])", "io_tests": [{"input": "ab\n", "output": "ba\n"}]},
    {"code": "import time\ntime.sleep(0.3)\nx = 1", "tests": ["assert x == 1"]},
]


def test_execute_batch_answers_in_order(http: httpx.Client) -> None:
    response = http.post("/v1/execute/batch", json={"requests": BATCH})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["passed"] for r in results] == [True, False, True, True]
    assert results[1]["results"][0]["message"] == "f(1) returned 3, expected 2"
    assert results[2]["stdout"] == "ba\n"
    # The same as one /v1/execute each.
    single = http.post("/v1/execute", json=BATCH[1]).json()
    assert single["feedback"] == results[1]["feedback"]


def test_execute_batch_streams_each_result_as_it_lands(http: httpx.Client) -> None:
    events = []
    with http.stream("POST", "/v1/execute/batch", json={"requests": BATCH, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line.removeprefix("data: "))
    assert events[-1] == "[DONE]"
    landed = [json.loads(e) for e in events[:-1]]
    assert sorted(e["index"] for e in landed) == [0, 1, 2, 3]
    assert {e["index"]: e["result"]["passed"] for e in landed} == {0: True, 1: False, 2: True, 3: True}


def test_execute_batch_limits_are_checked_before_anything_runs(tmp_path: Path) -> None:
    server = LiveServer(server_settings(tmp_path, server={"max_batch_programs": 3}))
    try:
        client = httpx.Client(base_url=server.url, timeout=30)
        error = assert_openai_error(
            client.post("/v1/execute/batch", json={"requests": BATCH}), 422, "requests"
        )
        assert error["code"] == "too_many_programs"
        big = [BATCH[0], {"code": "x" * (1024 * 1024 + 1)}]
        error = assert_openai_error(
            client.post("/v1/execute/batch", json={"requests": big}), 413, "requests.1.code"
        )
        assert error["code"] == "payload_too_large"
        many = [BATCH[0], BATCH[0], {"code": "x = 1", "tests": ["assert True"] * 257}]
        assert_openai_error(
            client.post("/v1/execute/batch", json={"requests": many}), 422, "requests.2.tests"
        )
        assert_openai_error(client.post("/v1/execute/batch", json={"requests": []}), 422, "requests")
        assert_openai_error(client.post("/v1/execute/batch", json={"requests": [{"tests": []}]}), 422)
        body = b'{"requests": [' + b" " * (5 * 1024 * 1024) + b"]}"
        headers = {"content-type": "application/json"}
        assert_openai_error(client.post("/v1/execute/batch", content=body, headers=headers), 413)
        assert server.runtime.pool is not None
        assert server.runtime.pool.stats().executions == 0  # nothing ran
    finally:
        server.stop()
