"""``MucodeClient`` (blocking) and ``AsyncMucodeClient``: the native API (solve, streaming
progress, jobs, execute and batches of it, score, health) with the server's own models in and out.

Both build requests and read answers through the same module functions; only the I/O differs.
Every error answer raises ``MucodeError`` with the server's ``type``/``code``/``param``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from mucode.engine.options import SolveOptions
from mucode.engine.trace import SolveResult, TurnRecord
from mucode.sandbox import ExecutionRequest, ExecutionResult, IOTest
from mucode.server.protocol.execute import ExecutionBatchResponse
from mucode.server.protocol.health import Health
from mucode.server.protocol.jobs import Job
from mucode.server.protocol.score import ScoreResponse
from mucode.server.protocol.solve import TurnStarted

from .errors import MucodeError

M = TypeVar("M", bound=BaseModel)
SolveEvent = TurnStarted | TurnRecord | SolveResult
DEFAULT_URL = "http://127.0.0.1:8000"


def io_list(io_tests: Iterable[IOTest | dict[str, Any]]) -> list[dict[str, Any]]:
    return [t.model_dump() if isinstance(t, IOTest) else dict(t) for t in io_tests]


def solve_body(
    prompt: str,
    tests: Iterable[str],
    io_tests: Iterable[IOTest | dict[str, Any]],
    entry_point: str | None,
    options: SolveOptions | dict[str, Any] | None,
    stream: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": prompt,
        "tests": list(tests),
        "io_tests": io_list(io_tests),
        "stream": stream,
    }
    if entry_point:
        body["entry_point"] = entry_point
    if options is not None:
        # Only what the caller set: the rest takes the server's defaults.
        body["options"] = (
            options.model_dump(exclude_unset=True) if isinstance(options, SolveOptions) else options
        )
    return body


def batch_body(requests: Iterable[ExecutionRequest | dict[str, Any]]) -> dict[str, Any]:
    return {
        "requests": [
            r.model_dump(exclude_unset=True) if isinstance(r, ExecutionRequest) else r for r in requests
        ]
    }


def parse(response: httpx.Response, model: type[M], ok: tuple[int, ...] = (200, 202)) -> M:
    if response.status_code not in ok:
        raise MucodeError.from_response(response)
    return model.model_validate_json(response.content)


class EventDecoder:
    """Server-Sent Events of ``/v1/solve`` (``stream: true``) into models, one line at a time."""

    def __init__(self) -> None:
        self.event: str | None = None

    def feed(self, line: str) -> SolveEvent | None:
        if line.startswith("event: "):
            self.event = line[len("event: ") :]
            return None
        if not line.startswith("data: "):
            return None
        data = line[len("data: ") :]
        if self.event == "turn_started":
            return TurnStarted.model_validate_json(data)
        if self.event == "turn_finished":
            return TurnRecord.model_validate_json(data)
        if self.event == "result":
            return SolveResult.model_validate_json(data)
        if self.event == "error":
            raise MucodeError.from_event(json.loads(data))
        return None


def unreachable(base_url: httpx.URL, exc: httpx.HTTPError) -> MucodeError:
    return MucodeError(f"cannot reach the mucode server at {base_url}: {exc}")


class _BaseClient:
    """The base of both clients: what they take (the server, the key, the timeout, an optional
    httpx transport), turned into the keyword arguments of their httpx client."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 600.0,
        transport: Any = None,
    ) -> None:
        self.kwargs: dict[str, Any] = {
            "base_url": base_url.rstrip("/"),
            "headers": {"Authorization": f"Bearer {api_key}"} if api_key else {},
            "timeout": timeout,
        }
        if transport is not None:
            self.kwargs["transport"] = transport


class MucodeClient(_BaseClient):
    def __init__(self, base_url: str = DEFAULT_URL, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._http = httpx.Client(**self.kwargs)

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise unreachable(self._http.base_url, exc) from exc

    def health(self) -> Health:
        """The server's state; a degraded server (503) still answers with its Health."""
        return parse(self._send("GET", "/health"), Health, ok=(200, 503))

    def solve(
        self,
        prompt: str,
        tests: Iterable[str] = (),
        *,
        io_tests: Iterable[IOTest | dict[str, Any]] = (),
        entry_point: str | None = None,
        options: SolveOptions | dict[str, Any] | None = None,
    ) -> SolveResult:
        body = solve_body(prompt, tests, io_tests, entry_point, options)
        return parse(self._send("POST", "/v1/solve", body), SolveResult)

    def solve_stream(
        self,
        prompt: str,
        tests: Iterable[str] = (),
        *,
        io_tests: Iterable[IOTest | dict[str, Any]] = (),
        entry_point: str | None = None,
        options: SolveOptions | dict[str, Any] | None = None,
    ) -> Iterator[SolveEvent]:
        """The search as it runs: ``TurnStarted``, ``TurnRecord`` per finished turn, then the
        ``SolveResult``. Leaving the loop early closes the connection and cancels the search."""
        body = solve_body(prompt, tests, io_tests, entry_point, options, stream=True)
        try:
            with self._http.stream("POST", "/v1/solve", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise MucodeError.from_response(response)
                decoder = EventDecoder()
                for line in response.iter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
        except httpx.HTTPError as exc:
            raise unreachable(self._http.base_url, exc) from exc

    def execute(
        self, code: str, tests: Iterable[str] = (), *, io_tests: Iterable[IOTest | dict[str, Any]] = ()
    ) -> ExecutionResult:
        body = {"code": code, "tests": list(tests), "io_tests": io_list(io_tests)}
        return parse(self._send("POST", "/v1/execute", body), ExecutionResult)

    def execute_batch(self, requests: Iterable[ExecutionRequest | dict[str, Any]]) -> list[ExecutionResult]:
        """Many programs with their tests in one request; the results in the same order."""
        response = self._send("POST", "/v1/execute/batch", batch_body(requests))
        return parse(response, ExecutionBatchResponse).results

    def score(
        self,
        prompt: str,
        candidates: Iterable[str],
        tests: Iterable[str] = (),
        *,
        io_tests: Iterable[IOTest | dict[str, Any]] = (),
    ) -> ScoreResponse:
        body = {
            "prompt": prompt,
            "candidates": list(candidates),
            "tests": list(tests),
            "io_tests": io_list(io_tests),
        }
        return parse(self._send("POST", "/v1/score", body), ScoreResponse)

    def submit_job(
        self,
        prompt: str,
        tests: Iterable[str] = (),
        *,
        io_tests: Iterable[IOTest | dict[str, Any]] = (),
        entry_point: str | None = None,
        options: SolveOptions | dict[str, Any] | None = None,
    ) -> Job:
        body = solve_body(prompt, tests, io_tests, entry_point, options)
        return parse(self._send("POST", "/v1/jobs", body), Job)

    def get_job(self, job_id: str) -> Job:
        return parse(self._send("GET", f"/v1/jobs/{job_id}"), Job)

    def cancel_job(self, job_id: str) -> Job:
        return parse(self._send("DELETE", f"/v1/jobs/{job_id}"), Job)

    def wait_job(self, job_id: str, *, poll_s: float = 0.5, timeout_s: float | None = None) -> Job:
        """Polls until the job has finished (succeeded, failed or cancelled)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not (job := self.get_job(job_id)).finished:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout_s} s")
            time.sleep(poll_s)
        return job

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MucodeClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncMucodeClient(_BaseClient):
    def __init__(self, base_url: str = DEFAULT_URL, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._http = httpx.AsyncClient(**self.kwargs)

    async def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return await self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise unreachable(self._http.base_url, exc) from exc

    async def health(self) -> Health:
        return parse(await self._send("GET", "/health"), Health, ok=(200, 503))

    async def solve(
        self,
        prompt: str,
        tests: Iterable[str] = (),
        *,
        io_tests: Iterable[IOTest | dict[str, Any]] = (),
        entry_point: str | None = None,
        options: SolveOptions | dict[str, Any] | None = None,
    ) -> SolveResult:
        body = solve_body(prompt, tests, io_tests, entry_point, options)
        return parse(await self._send("POST", "/v1/solve", body), SolveResult)

    async def solve_stream(
        self,
        prompt: str,
        tests: Iterable[str] = (),
        *,
        io_tests: Iterable[IOTest | dict[str, Any]] = (),
        entry_point: str | None = None,
        options: SolveOptions | dict[str, Any] | None = None,
    ) -> AsyncIterator[SolveEvent]:
        body = solve_body(prompt, tests, io_tests, entry_point, options, stream=True)
        try:
            async with self._http.stream("POST", "/v1/solve", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise MucodeError.from_response(response)
                decoder = EventDecoder()
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
        except httpx.HTTPError as exc:
            raise unreachable(self._http.base_url, exc) from exc

    async def execute(
        self, code: str, tests: Iterable[str] = (), *, io_tests: Iterable[IOTest | dict[str, Any]] = ()
    ) -> ExecutionResult:
        body = {"code": code, "tests": list(tests), "io_tests": io_list(io_tests)}
        return parse(await self._send("POST", "/v1/execute", body), ExecutionResult)

    async def execute_batch(
        self, requests: Iterable[ExecutionRequest | dict[str, Any]]
    ) -> list[ExecutionResult]:
        """Many programs with their tests in one request; the results in the same order."""
        response = await self._send("POST", "/v1/execute/batch", batch_body(requests))
        return parse(response, ExecutionBatchResponse).results

    async def score(
        self,
        prompt: str,
        candidates: Iterable[str],
        tests: Iterable[str] = (),
        *,
        io_tests: Iterable[IOTest | dict[str, Any]] = (),
    ) -> ScoreResponse:
        body = {
            "prompt": prompt,
            "candidates": list(candidates),
            "tests": list(tests),
            "io_tests": io_list(io_tests),
        }
        return parse(await self._send("POST", "/v1/score", body), ScoreResponse)

    async def submit_job(
        self,
        prompt: str,
        tests: Iterable[str] = (),
        *,
        io_tests: Iterable[IOTest | dict[str, Any]] = (),
        entry_point: str | None = None,
        options: SolveOptions | dict[str, Any] | None = None,
    ) -> Job:
        body = solve_body(prompt, tests, io_tests, entry_point, options)
        return parse(await self._send("POST", "/v1/jobs", body), Job)

    async def get_job(self, job_id: str) -> Job:
        return parse(await self._send("GET", f"/v1/jobs/{job_id}"), Job)

    async def cancel_job(self, job_id: str) -> Job:
        return parse(await self._send("DELETE", f"/v1/jobs/{job_id}"), Job)

    async def wait_job(self, job_id: str, *, poll_s: float = 0.5, timeout_s: float | None = None) -> Job:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not (job := await self.get_job(job_id)).finished:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout_s} s")
            await asyncio.sleep(poll_s)
        return job

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncMucodeClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
