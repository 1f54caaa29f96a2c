"""Against the real bubblewrap sandbox: the code cannot reach out, and abuse ends as a failed test
within the time limit, with the pool healthy and nothing left running."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from mucode.sandbox import SandboxSettings, TestStatus
from mucode.sandbox.environment import MANIFEST, default_path

from .helpers import Sandbox, descendants

pytestmark = pytest.mark.skipif(
    os.system("command -v bwrap >/dev/null") != 0, reason="bwrap is not installed"
)

TIMEOUT = 2.0
MARGIN = 2.5  # harness reaction plus host scheduling on a loaded 2-core machine


@pytest.fixture(scope="module", params=["bare", "scientific"])
def box(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """Every attack twice: on the bare interpreter, and with the scientific environment loaded."""
    env = "none"
    if request.param == "scientific":
        path = default_path("scientific")
        if not (path / MANIFEST).exists():
            pytest.fail(f"no scientific sandbox environment at {path}: run `make sandbox-env`")
        env = str(path)
    os.environ["MUCODE_TEST_SERVER_SECRET"] = "hunter2-server-secret"
    try:
        sandbox = Sandbox(SandboxSettings(workers=2, timeout_s=TIMEOUT, env=env))
    finally:
        del os.environ["MUCODE_TEST_SERVER_SECRET"]
    yield sandbox
    sandbox.close()


def sandbox_processes(box: Sandbox) -> list[int]:
    """Processes below each worker beyond bubblewrap's init and the harness itself."""
    extra = []
    for worker in box.pool._workers:
        if worker.proc is not None:
            below = descendants(worker.proc.pid)
            extra += below[2:] if len(below) > 2 else []
    return extra


def assert_healthy(box: Sandbox) -> None:
    deadline = time.monotonic() + 5
    while sandbox_processes(box) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes(box) == [], "processes left behind"
    for _ in range(2):  # each worker
        assert box.run("def f(): return 1", ["assert f() == 1"]).passed


def run_timed(box: Sandbox, code: str, test: str = "assert f() == 1") -> tuple[object, float]:
    started = time.monotonic()
    result = box.run(code, [test], timeout_s=TIMEOUT)
    return result, time.monotonic() - started


def test_network_is_unreachable(box: Sandbox) -> None:
    code = (
        "import socket\n"
        "def f():\n"
        "    errors = []\n"
        "    for host, port in [('127.0.0.1', 6379), ('1.1.1.1', 53), ('::1', 6379)]:\n"
        "        try:\n"
        "            socket.create_connection((host, port), timeout=1).close()\n"
        "            errors.append('connected')\n"
        "        except OSError as exc:\n"
        "            errors.append(type(exc).__name__)\n"
        "    return errors\n"
    )
    result = box.run(
        code, ["assert 'connected' not in f()", "import socket\nassert socket.gethostname() == 'sandbox'"]
    )
    assert result.passed, result.feedback


def test_host_files_are_invisible_or_read_only(box: Sandbox, tmp_path: object) -> None:
    secret = "/var/tmp/mucode-test-secret"
    with open(secret, "w") as handle:
        handle.write("top secret")
    os.chmod(secret, 0o644)
    target = os.path.join(str(tmp_path), "escaped")
    code = (
        "import os\n"
        "def tries():\n"
        "    out = {}\n"
        f"    for path in ['/usr/bin/owned', '/etc/passwd', '{target}', '/escaped', '{os.getcwd()}/owned']:\n"
        "        try:\n"
        "            open(path, 'w').write('x')\n"
        "            out[path] = 'written'\n"
        "        except OSError as exc:\n"
        "            out[path] = type(exc).__name__\n"
        "    return out\n"
        "def readable():\n"
        f"    return os.path.exists('{secret}') or os.path.exists('{os.getcwd()}/pyproject.toml')\n"
    )
    result = box.run(code, ["assert 'written' not in tries().values()", "assert readable() is False"])
    assert result.passed, result.feedback
    assert not os.path.exists(target)
    os.unlink(secret)


def test_server_environment_is_invisible(box: Sandbox) -> None:
    code = (
        "import os, glob\n"
        "def leaks():\n"
        "    text = repr(dict(os.environ))\n"
        "    for path in glob.glob('/proc/*/environ'):\n"
        "        try:\n"
        "            text += open(path, 'rb').read().decode('latin-1')\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 'hunter2' in text\n"
        "def identity():\n"
        "    status = open('/proc/self/status').read()\n"
        "    cap = [l for l in status.splitlines() if l.startswith('CapEff')][0].split()[1]\n"
        "    return os.getuid(), int(cap, 16), len([p for p in os.listdir('/proc') if p.isdigit()]) < 10\n"
    )
    result = box.run(code, ["assert leaks() is False", "assert identity() == (65534, 0, True)"])
    assert result.passed, result.feedback


ABUSE = {
    "fork bomb": (
        "import os\ndef f():\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            pass\n"
    ),
    "memory bomb": "def f():\n    blocks = []\n    while True:\n        blocks.append(bytearray(64 << 20))\n",
    "cpu spin ignoring signals": (
        "import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "def f():\n    while True:\n        pass\n"
    ),
    "1 GB of output": (
        "import sys\ndef f():\n    chunk = 'x' * (1 << 20)\n"
        "    for _ in range(1024):\n        sys.stdout.write(chunk)\n"
    ),
    "filled tmp": (
        "def f():\n    for i in range(1000):\n        with open(f'/tmp/fill{i}', 'wb') as h:\n"
        "            h.write(b'x' * (8 << 20))\n"
    ),
    "filled /dev/shm": (
        "def f():\n    for i in range(1000):\n        with open(f'/dev/shm/fill{i}', 'wb') as h:\n"
        "            h.write(b'x' * (8 << 20))\n"
    ),
    "daemon left running": (
        "import os, time\ndef f():\n    if os.fork() == 0:\n        os.setsid()\n"
        "        if os.fork() == 0:\n            time.sleep(3600)\n        os._exit(0)\n    return 2\n"
    ),
    "stopping the harness": "import os, signal\ndef f():\n    os.kill(os.getppid(), signal.SIGSTOP)\n",
    "killing the harness": "import os, signal\ndef f():\n    os.kill(os.getppid(), signal.SIGKILL)\n",
    "killing everything": "import os, signal\ndef f():\n    os.kill(-1, signal.SIGKILL)\n",
}


@pytest.mark.parametrize("name", sorted(ABUSE))
def test_abuse_ends_as_failure_within_the_limit(box: Sandbox, name: str) -> None:
    result, elapsed = run_timed(box, ABUSE[name])
    assert not result.passed  # type: ignore[attr-defined]
    assert result.results[0].status is not TestStatus.passed  # type: ignore[attr-defined]
    limit = TIMEOUT + MARGIN + (2.0 if name == "stopping the harness" else 0.0)  # host backstop margin
    assert elapsed < limit, f"{name} took {elapsed:.1f}s"
    assert_healthy(box)


def test_tmp_is_private_and_empty_for_each_run(box: Sandbox) -> None:
    box.run("open('/tmp/leftover', 'w').write('x')\nopen('/dev/shm/leftover', 'w').write('x')\n")
    code = (
        "import os\ndef f():\n    open('/tmp/new', 'w').write('y' * 1000)\n"
        "    return sorted(os.listdir('/tmp')), os.listdir('/dev/shm')\n"
    )
    for _ in range(2):
        result = box.run(code, ["names, shm = f()\nassert 'leftover' not in names and shm == []"])
        assert result.passed, result.feedback
