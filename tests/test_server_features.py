"""Native endpoints and server behaviour without Redis: the in-process cache, jobs, streaming
/v1/solve, /v1/score, the admission gate, metrics, the request log, and cancelling a plain
(non-streamed) request when its client goes away."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .helpers import (
    PROMPT,
    SLOW,
    TESTS,
    LiveServer,
    assert_openai_error,
    sandbox_busy_processes,
    server_settings,
    solve_body,
    sse_events,
    wait_job,
)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One search at a time, none waiting; its candidates sleep until cancelled."""
    settings = server_settings(
        tmp_path_factory.mktemp("slow"),
        script=[[SLOW]],
        server={"max_concurrent_solves": 1, "max_queued_solves": 0, "job_workers": 1},
        timeout_s=50,
    )
    server = LiveServer(settings)
    yield server
    server.stop()


def test_deterministic_solve_is_cached_in_process(http: httpx.Client, live_server: LiveServer) -> None:
    generator = live_server.runtime.generator
    assert generator is not None
    body = solve_body(seed=7)
    first = http.post("/v1/solve", json=body)
    assert first.status_code == 200
    assert first.headers["x-mucode-cache"] == "miss"
    calls = len(generator.calls)  # type: ignore[attr-defined]
    second = http.post("/v1/solve", json=body)
    assert second.headers["x-mucode-cache"] == "hit"
    assert second.json()["cached"] is True
    assert second.json()["final_code"] == first.json()["final_code"]
    assert len(generator.calls) == calls  # type: ignore[attr-defined]  # the model was not asked again
    # Sampling without an explicit seed is not deterministic: never cached.
    unseeded = solve_body()
    assert http.post("/v1/solve", json=unseeded).headers["x-mucode-cache"] == "miss"
    assert http.post("/v1/solve", json=unseeded).headers["x-mucode-cache"] == "miss"


def test_solve_streams_progress_then_the_result(http: httpx.Client) -> None:
    with http.stream("POST", "/v1/solve", json={**solve_body(), "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    names = [name for name, _ in events]
    turn = ["turn_started", "generating", "candidates_written", "candidate_ran", "turn_finished"]
    assert names == [*turn, *turn, "result", "done"]
    # Tokens each candidate has written so far: the scripted backend reports half its words, and
    # the greedy candidate's request (#1) reports before the sampled one's.
    assert events[1][1] == {"kind": "generating", "turn": 1, "turns": 3, "tokens": [4, 0]}
    assert events[2][1] == {
        "kind": "candidates_written",
        "turn": 1,
        "turns": 3,
        "candidates": 2,
        "programs": 1,
    }
    # each program's public-test result as it lands, before the turn's record
    assert events[3][1] == {
        "kind": "candidate_ran",
        "turn": 1,
        "turns": 3,
        "candidate": 0,
        "passed": 1,
        "total": 2,
    }
    first_turn = events[4][1]
    assert first_turn["turn"] == 1
    assert first_turn["candidates"][0]["execution"]["passed"] is False
    assert events[8][1]["passed"] == 2
    result = events[10][1]
    assert result["stop_reason"] == "passed"
    assert "2 * x" in result["final_code"]


def test_solve_stream_refuses_bad_options_before_streaming(http: httpx.Client) -> None:
    body = {**solve_body(selection="lv"), "stream": True}
    response = http.post("/v1/solve", json=body)
    # The check happens before the first byte: a plain 422, not a stream.
    assert_openai_error(response, 422, "options.selection")


def test_job_lifecycle_in_process(http: httpx.Client) -> None:
    created = http.post("/v1/jobs", json=solve_body())
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["status"] in {"queued", "running"}
    assert created.headers["location"] == f"/v1/jobs/{job['id']}"
    done = wait_job(http, job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    assert done["progress"]["turn"] == 2
    assert done["progress"]["phase"] == "done"
    assert len(done["turns"]) == 2
    assert "2 * x" in done["result"]["final_code"]
    # Cancelling a finished job answers it unchanged.
    assert http.delete(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"
    assert_openai_error(http.get("/v1/jobs/job-nope"), 404)


def test_job_cancel_stops_its_sandbox_runs(slow_server: LiveServer) -> None:
    with httpx.Client(base_url=slow_server.url, timeout=30) as http:
        job = http.post("/v1/jobs", json=solve_body()).json()
        running = wait_job(http, job["id"], {"running"})
        assert running["progress"]["phase"] in {"waiting", "sampling", "testing"}
        deadline = time.monotonic() + 10
        while sandbox_busy_processes(slow_server) == 0:
            assert time.monotonic() < deadline, "the candidate never started"
            time.sleep(0.05)
        cancelled = http.delete(f"/v1/jobs/{job['id']}")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        deadline = time.monotonic() + 5
        while sandbox_busy_processes(slow_server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sandbox_busy_processes(slow_server) == 0
        assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"


def test_admission_gate_answers_503_instead_of_queueing(slow_server: LiveServer) -> None:
    with httpx.Client(base_url=slow_server.url, timeout=30) as http:

        def hold() -> None:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(slow_server.url + "/v1/solve", json=solve_body(), timeout=3)

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()  # takes the only slot, then gives up after 3 s (its search is cancelled)
        deadline = time.monotonic() + 10
        while http.get("/health").json()["queue"]["running"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        busy = http.post("/v1/solve", json=solve_body())
        assert_openai_error(busy, 503)
        assert busy.json()["error"]["code"] == "queue_full"
        assert busy.headers["retry-after"] == "2"
        holder.join(10)
        # The client that gave up freed its slot: its search was cancelled, not left running.
        deadline = time.monotonic() + 10
        while http.get("/health").json()["queue"]["running"]:
            assert time.monotonic() < deadline, "the abandoned search still holds its slot"
            time.sleep(0.05)
        assert sandbox_busy_processes(slow_server) == 0


def test_score_ranks_given_programs(http: httpx.Client) -> None:
    body = {
        "prompt": PROMPT,
        "tests": TESTS,
        "candidates": [
            "def double(x):\n    return x + 2",
            "def double(x):\n    return 2 * x",
            "def double(x):\n    return x + 2",
        ],
    }
    response = http.post("/v1/score", json=body)
    assert response.status_code == 200, response.text
    scored = response.json()
    assert scored["verifier"] == "none"
    assert scored["ranking"][0] == 1
    passed = [c["execution"]["passed_count"] for c in scored["candidates"]]
    assert passed == [1, 2, 1]
    assert scored["candidates"][2]["duplicate_of"] == 0
    no_tests = http.post("/v1/score", json={**body, "tests": []})
    assert_openai_error(no_tests, 422, "tests")
    assert no_tests.json()["error"]["code"] == "no_verifier"
    assert_openai_error(http.post("/v1/score", json={**body, "candidates": ["  "]}), 422, "candidates.0")
    assert_openai_error(http.post("/v1/score", json={**body, "candidates": []}), 422, "candidates")


def test_the_likelihood_verifier_scores_what_the_server_samples(tmp_path: Path) -> None:
    """`MUCODE_VERIFIER=likelihood`: /health names it, a search's candidates carry the generator's
    log-probabilities and their mean as the score; given programs have none, so /v1/score needs
    tests, and says why."""
    wrong = "```python\ndef double(x):\n    return x + 2\n```"
    right = "```python\ndef double(x):\n    return 2 * x\n```"
    settings = server_settings(tmp_path, script=[[wrong, right]])
    settings.engine = settings.engine.model_copy(update={"verifier": "likelihood"})
    server = LiveServer(settings)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            assert http.get("/health").json()["generator"]["verifier"] == "likelihood"
            options = {"turns": 1, "selection": "lv", "temperature": 0.7, "greedy_candidate": False}
            solved = http.post("/v1/solve", json=solve_body(**options))
            assert solved.status_code == 200, solved.text
            trace = solved.json()
            assert trace["verifier"] == "likelihood"
            candidates = trace["turns"][0]["candidates"]
            for c in candidates:
                assert c["verifier_score"] == pytest.approx(c["logprob"] / c["usage"]["completion_tokens"])
            best = max(candidates, key=lambda c: c["verifier_score"])["index"]
            assert trace["turns"][0]["selected"] == best
            body = {"prompt": PROMPT, "candidates": ["def double(x):\n    return 2 * x"]}
            refused = http.post("/v1/score", json=body)
            assert_openai_error(refused, 422, "tests")
            assert "likelihood" in refused.json()["error"]["message"]
            ranked = http.post("/v1/score", json={**body, "tests": TESTS})
            assert ranked.status_code == 200, ranked.text
            assert ranked.json()["candidates"][0]["verifier_score"] is None
    finally:
        server.stop()


def access_line(caplog: pytest.LogCaptureFixture, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The server's access line for a request. It is written once the response has gone out, so
    the client can see the response first: wait for it (the server runs in a thread)."""
    deadline = time.monotonic() + 10
    while True:
        lines: list[dict[str, Any]] = [
            json.loads(r.getMessage()) for r in caplog.records if r.name == "mucode.access"
        ]
        found = [entry for entry in lines if match(entry)]
        if found or time.monotonic() > deadline:
            assert found, f"no matching access line in {lines}"
            return found[0]
        time.sleep(0.02)


def test_metrics_and_one_log_line_per_request(http: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mucode.access"):
        response = http.post("/v1/solve", json=solve_body(), headers={"X-Request-ID": "req-123"})
        line = access_line(caplog, lambda entry: entry["request_id"] == "req-123")
    assert response.headers["x-request-id"] == "req-123"
    assert line["route"] == "/v1/solve"
    assert line["status"] == 200
    assert line["ms"] > 0
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for name in (
        'mucode_requests_total{method="POST",route="/v1/solve",status="200"}',
        "mucode_request_seconds_bucket",
        'mucode_tokens_total{kind="completion"}',
        "mucode_candidates_total",
        'mucode_sandbox_runs_total{outcome="passed"}',
        'mucode_phase_seconds_count{phase="generation"}',
        "mucode_queue_depth",
        'mucode_solves_total{stop_reason="passed"}',
    ):
        assert name in text, name
    sample = next(line for line in text.splitlines() if line.startswith("mucode_candidates_total"))
    assert float(sample.split()[-1]) >= 4


def test_plain_request_cancelled_when_the_client_leaves(slow_server: LiveServer) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(slow_server.url + "/v1/solve", json=solve_body(), timeout=2)
    deadline = time.monotonic() + 5
    while (sandbox_busy_processes(slow_server) or slow_server.runtime.gate.running) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert sandbox_busy_processes(slow_server) == 0
    assert slow_server.runtime.gate.running == 0


def test_openapi_documents_every_route(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/solve", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/score", "/v1/execute",
        "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics",
    ):  # fmt: skip
        assert path in paths, path
    assert set(paths["/v1/jobs/{job_id}"]) == {"get", "delete"}
    assert "text/event-stream" in paths["/v1/solve"]["post"]["responses"]["200"]["content"]
    assert "/" not in paths  # the playground page is not part of the API


def test_chat_log_line_names_model_and_user(http: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    body = {
        "model": "mucode",
        "user": "alice",
        "messages": [{"role": "user", "content": PROMPT}],
        "tests": TESTS,
    }
    with caplog.at_level(logging.INFO, logger="mucode.access"):
        assert http.post("/v1/chat/completions", json=body).status_code == 200
        line = access_line(caplog, lambda entry: entry["route"] == "/v1/chat/completions")
    assert line["model"] == "mucode"
    assert line["user"] == "alice"
    assert line["stream"] is False
