"""Shared fixtures: a real sandbox pool and a live HTTP server, each started once per session.
The classes behind them, and the helpers the test modules share, are in helpers.py."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mucode.sandbox import SandboxSettings

from .helpers import LiveServer, Sandbox, server_settings


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(SandboxSettings(workers=2, timeout_s=5))
    yield box
    box.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(server_settings(tmp_path_factory.mktemp("server")))
    yield server
    server.stop()


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        yield client
