"""The Python clients: against a live server (solve, stream, jobs, execute and its
batches, score, health, errors), their error mapping through httpx's MockTransport, and
`mucode solve --server`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from mucode.clients import (
    AsyncMucodeClient,
    ExecutionRequest,
    MucodeClient,
    MucodeError,
    SolveOptions,
    SolveResult,
    TurnRecord,
    TurnStarted,
)

from .helpers import LiveServer, run_cli, unset_env

PROMPT = 'def double(x):\n    """Return twice x."""\n'
TESTS = ["assert double(2) == 4", "assert double(0) == 0"]


def test_sync_client_against_a_live_server(live_server: LiveServer) -> None:
    with MucodeClient(live_server.url) as client:
        assert client.health().sandbox.ready
        result = client.solve(PROMPT, TESTS, options=SolveOptions(n=2))
        assert result.public_all_passed
        assert "2 * x" in (result.final_code or "")
        assert result.options.n == 2
        assert result.options.turns == 3  # the rest: server defaults
        events = list(client.solve_stream(PROMPT, TESTS, options={"n": 2}))
        assert [type(e) for e in events] == [TurnStarted, TurnRecord, TurnStarted, TurnRecord, SolveResult]
        assert isinstance(events[1], TurnRecord)
        assert not events[1].chosen.public_all_passed
        executed = client.execute("def double(x):\n    return 2 * x", TESTS)
        assert executed.passed
        assert executed.passed_count == 2
        batch = client.execute_batch(
            [
                ExecutionRequest(code="def double(x):\n    return x", tests=TESTS),
                {"code": "def double(x):\n    return 2 * x", "tests": TESTS},
            ]
        )
        assert [r.passed_count for r in batch] == [1, 2]
        with pytest.raises(MucodeError) as empty:
            client.execute_batch([])
        assert (empty.value.status_code, empty.value.param) == (422, "requests")
        scored = client.score(
            PROMPT, ["def double(x):\n    return x", "def double(x):\n    return 2 * x"], TESTS
        )
        assert scored.ranking == [1, 0]
        job = client.submit_job(PROMPT, TESTS, options={"n": 2})
        done = client.wait_job(job.id, poll_s=0.05, timeout_s=30)
        assert done.status == "succeeded"
        assert done.result is not None
        assert done.result.public_all_passed
        with pytest.raises(MucodeError) as missing:
            client.get_job("job-missing")
        assert missing.value.status_code == 404
        assert missing.value.code == "job_not_found"
        with pytest.raises(MucodeError) as invalid:
            client.solve(PROMPT, TESTS, options={"n": 0})
        assert invalid.value.status_code == 422
        assert invalid.value.param == "options.n"


def test_async_client_against_a_live_server(live_server: LiveServer) -> None:
    async def main() -> None:
        async with AsyncMucodeClient(live_server.url) as client:
            result = await client.solve(PROMPT, TESTS, options={"n": 2})
            assert result.public_all_passed
            kinds = [type(e) async for e in client.solve_stream(PROMPT, TESTS, options={"n": 1})]
            assert kinds[-1] is SolveResult
            assert kinds.count(TurnRecord) == 2
            job = await client.submit_job(PROMPT, TESTS)
            assert (await client.wait_job(job.id, poll_s=0.05, timeout_s=30)).status == "succeeded"
            assert (await client.execute("print(1)")).passed
            batch = await client.execute_batch([{"code": "print(1)"}, {"code": "raise SystemExit(3)"}])
            assert [r.passed for r in batch] == [True, False]

    asyncio.run(main())


def test_errors_become_mucode_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer secret"
        if request.url.path == "/v1/solve":
            body = {"error": {"message": "busy", "type": "server_busy", "param": None, "code": "queue_full"}}
            return httpx.Response(503, json=body, headers={"Retry-After": "2"})
        return httpx.Response(502, text="bad gateway")

    client = MucodeClient("http://mucode.test", api_key="secret", transport=httpx.MockTransport(handler))
    with pytest.raises(MucodeError) as busy:
        client.solve(PROMPT, TESTS)
    assert busy.value.status_code == 503
    assert busy.value.code == "queue_full"
    assert busy.value.retry_after == 2
    with pytest.raises(MucodeError) as proxy:
        client.execute("print(1)")
    assert proxy.value.status_code == 502
    assert "bad gateway" in proxy.value.message


def test_stream_error_event_raises() -> None:
    error = {
        "error": {
            "message": "generator down",
            "type": "server_error",
            "param": None,
            "code": "generator_error",
        }
    }
    started = json.dumps({"turn": 1, "turns": 3})
    stream = f"event: turn_started\ndata: {started}\n\nevent: error\ndata: {json.dumps(error)}\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=stream, headers={"content-type": "text/event-stream"})

    client = MucodeClient("http://mucode.test", transport=httpx.MockTransport(handler))
    events = client.solve_stream(PROMPT, TESTS)
    assert next(events) == TurnStarted(turn=1, turns=3)
    with pytest.raises(MucodeError) as failed:
        next(events)
    assert failed.value.code == "generator_error"


def test_unreachable_server_is_a_clear_error() -> None:
    with MucodeClient("http://127.0.0.1:9", timeout=2) as client, pytest.raises(MucodeError) as gone:
        client.health()
    assert gone.value.status_code is None
    assert "cannot reach the mucode server" in gone.value.message


def test_cli_solve_on_a_server(live_server: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "problem.md").write_text(PROMPT)
    (tmp_path / "tests.py").write_text("\n".join(TESTS) + "\n")
    env = unset_env()
    done = run_cli(
        "solve", str(tmp_path / "problem.md"), "--tests", str(tmp_path / "tests.py"),
        "--n", "2", "--server", live_server.url, "--json", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = SolveResult.model_validate_json(done.stdout)
    assert result.public_all_passed
    assert len(result.turns) == 2
    assert "turn 2/3" in done.stderr
    assert "passes 2/2" in done.stderr
    refused = run_cli(
        "solve", str(tmp_path / "problem.md"), "--tests", str(tmp_path / "tests.py"),
        "--server", "http://127.0.0.1:9", env=env,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "cannot reach the mucode server" in refused.stderr
    assert "Traceback" not in refused.stderr
