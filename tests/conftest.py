"""Shared fixtures: a real sandbox pool and a live HTTP server, each started once per session.
The classes behind them, and the helpers the test modules share, are in helpers.py."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator

import httpx
import pytest

from mucode.sandbox import SandboxSettings

from .helpers import DEFAULT_SCRIPT, WRITTEN_TESTS, LiveServer, Sandbox, processes_of, server_settings

# Workers start in milliseconds on the bare interpreter and in seconds with the scientific
# environment: tests that need numpy and friends ask for it (the `science` fixture).
os.environ["MUCODE_SANDBOX_ENV"] = "none"
# A checkpoint installed in this user's cache (`mucode models install-checkpoint`) would otherwise
# become every test server's generator and verifier; the tests that want one name it.
os.environ["MUCODE_CHECKPOINT"] = "none"


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


@pytest.fixture(scope="session")
def agreeing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Turn 1 writes two different programs (the greedy candidate and the first sample the wrong
    `x + 2`, the next sample the right `2 * x`), and the generator writes three test calls."""
    wrong, right = DEFAULT_SCRIPT[0][0], DEFAULT_SCRIPT[1][0]
    script = {"script": [[wrong, right]], "tests": WRITTEN_TESTS}
    server = LiveServer(server_settings(tmp_path_factory.mktemp("agree"), script=script))
    yield server
    server.stop()


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        yield client


@pytest.fixture
def own_bwrap() -> Iterator[str]:
    """A copy of bwrap under a name of its own, so the processes of this test's sandboxes can be
    told apart from any other (orphans included: they are reparented to init)."""
    folder = tempfile.mkdtemp(prefix="mucode-faults-")
    os.chmod(folder, 0o755)  # the sandbox's unprivileged host user must reach it
    path = os.path.join(folder, "bwrap")
    found = shutil.which("bwrap")
    assert found is not None
    shutil.copy2(found, path)
    os.chmod(path, 0o755)
    yield path
    for pid in processes_of(path):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder)


@pytest.fixture(scope="session")
def science() -> Iterator[Sandbox]:
    """A pool running the scientific environment that `make test` prepares (`make sandbox-env`)."""
    from mucode.sandbox.environment import MANIFEST, default_path

    path = default_path("scientific")
    if not (path / MANIFEST).exists():
        pytest.fail(f"no scientific sandbox environment at {path}: run `make sandbox-env`")
    box = Sandbox(SandboxSettings(workers=2, timeout_s=10, env=str(path)))
    yield box
    box.close()
