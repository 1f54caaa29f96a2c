"""The CPU image, built and run for real with podman (`make test-docker`, marker `docker`).

The image is built from the repository's Dockerfile on the registry's base image when it can be
pulled, else on the stand-in `docker/standin-base.sh` makes (the report says which). It then runs
as docs/docker.md says, with the model cache in a named volume seeded from this machine's cache:
the healthcheck must turn healthy, and through the published port the sandbox must be bubblewrap,
verdicts right, candidate code offline, and a chat with tests answered by the real model. Then
the compose stack (podman-compose): a job run by the worker, one cache shared by two server
replicas, Redis stopped without a 5xx. Everything the test made (containers, volumes, networks,
images) is removed at the end. Measurements go to `runs/test-docker.json`.

`MUCODE_PODMAN` is the podman command line (default: runc, cgroupfs and the rlimits a VM without
systemd needs; see docs/docker.md).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .helpers import free_port

# The build alone takes ~30 min on a busy 2-core machine (llama.cpp compiles from source).
pytestmark = [pytest.mark.docker, pytest.mark.timeout(5400)]

ROOT = Path(__file__).resolve().parent.parent
PODMAN = shlex.split(os.environ.get("MUCODE_PODMAN", "podman --runtime runc --cgroup-manager cgroupfs"))
# This VM refuses to raise these rlimits to podman's defaults; a normal host needs neither.
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
BASE = "python:3.11-slim-bookworm"
IMAGE = "localhost/mucode:test-docker"
# What bubblewrap needs in a podman container (docs/docker.md says why): podman's default seccomp
# profile allows namespaces but not naming one (sethostname), and its masks over /proc stop the
# kernel from mounting a fresh one.
SANDBOX_OPTIONS = [
    "--security-opt", f"seccomp={ROOT / 'docker' / 'seccomp-bwrap.json'}",
    "--security-opt", "unmask=/proc/*",
]  # fmt: skip
REPORT = ROOT / "runs" / "test-docker.json"


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, (
            f"podman {shlex.join(args)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return done


@dataclass
class Made:
    """What this test created, removed at the end whatever happened."""

    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    images: set[str] = field(default_factory=set)
    report: dict[str, object] = field(default_factory=dict)

    def clean(self) -> None:
        for name in self.containers:
            podman("rm", "-f", "-t", "5", name, check=False)
        for name in self.volumes:
            podman("volume", "rm", "-f", name, check=False)
        for name in self.networks:
            podman("network", "rm", "-f", name, check=False)
        for image in self.images:
            podman("rmi", "-f", image, check=False)


def image_ids() -> set[str]:
    return set(podman("images", "--all", "--quiet", "--no-trunc").stdout.split())


@pytest.fixture(scope="module")
def made() -> Iterator[Made]:
    if shutil.which(PODMAN[0]) is None:
        pytest.skip("podman is not installed (apt-get install podman runc; .ci/run installs it)")
    info = podman("info", check=False)
    if info.returncode:
        pytest.skip(f"podman cannot run containers here: {info.stderr.strip()[-300:]}")
    before = image_ids()
    things = Made()
    try:
        yield things
    finally:
        things.images |= image_ids() - before
        things.clean()
        REPORT.parent.mkdir(exist_ok=True)
        REPORT.write_text(json.dumps(things.report, indent=2) + "\n")


@pytest.fixture(scope="module")
def image(made: Made) -> str:
    pulled = podman("pull", "--quiet", f"docker.io/library/{BASE}", timeout=300, check=False)
    if pulled.returncode == 0:
        made.report["base"] = f"docker.io/library/{BASE} (pulled)"
    else:
        standin = subprocess.run(
            [str(ROOT / "docker" / "standin-base.sh"), BASE], capture_output=True, text=True, timeout=900
        )
        assert standin.returncode == 0, standin.stderr[-3000:]
        made.report["base"] = f"stand-in (docker/standin-base.sh): {standin.stdout.strip()}"
    started = time.monotonic()
    podman("build", "--format", "docker", "--network", "host", *LIMITS, "-t", IMAGE, str(ROOT), timeout=3600)
    made.report["build_seconds"] = round(time.monotonic() - started)
    made.report["image_bytes"] = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    return IMAGE


def model_volume(made: Made, image: str, name: str) -> str:
    """A named volume holding a copy of this machine's model cache, owned by the image's user:
    what a user's volume holds after the first start, without downloading 490 MB again."""
    podman("volume", "create", name)
    made.volumes.append(name)
    models = Path.home() / ".cache" / "mucode" / "models"
    seed = "mkdir -p /var/cache/mucode/models && cp -a /seed/. /var/cache/mucode/models/"
    seed += " && chown -R 10001 /var/cache/mucode"
    podman(
        "run", "--rm", *LIMITS, "--user", "0", "--network", "none", "-v", f"{name}:/var/cache/mucode",
        "-v", f"{models}:/seed:ro", "--entrypoint", "sh", image, "-c", seed,
    )  # fmt: skip
    return name


def wait_healthy(name: str, timeout: float) -> float:
    """Runs the image's own HEALTHCHECK until it passes (podman runs it on a systemd timer, which a
    machine without systemd lacks); the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if podman("healthcheck", "run", name, check=False).returncode == 0:
            return time.monotonic() - started
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        assert state == "running", podman("logs", name, check=False).stderr[-3000:]
        time.sleep(2)
    raise AssertionError(f"{name} not healthy after {timeout} s:\n{podman('logs', name).stderr[-3000:]}")


def wait_model(url: str, timeout: float = 600) -> dict[str, Any]:
    """/health once the model is loaded: healthy means the sandbox runs code, and the model may
    still be loading then (status `loading`)."""
    deadline = time.monotonic() + timeout
    while (health := httpx.get(url + "/health", timeout=10).json())["status"] == "loading":
        assert time.monotonic() < deadline, health
        time.sleep(1)
    result: dict[str, Any] = health
    return result


def test_the_image_serves_with_the_documented_options(made: Made, image: str) -> None:
    volume = model_volume(made, image, "mucode-test-docker-models")
    port = free_port()
    name = "mucode-test-docker"
    made.containers.append(name)
    podman(
        "run", "-d", "--name", name, *LIMITS, *SANDBOX_OPTIONS, "-p", f"127.0.0.1:{port}:8000",
        "-v", f"{volume}:/var/cache/mucode", image,
    )  # fmt: skip
    started = time.monotonic()
    made.report["start_to_healthy_seconds"] = round(wait_healthy(name, timeout=600), 1)
    url = f"http://127.0.0.1:{port}"
    health = wait_model(url)
    made.report["start_to_model_ready_seconds"] = round(time.monotonic() - started, 1)
    assert health["status"] == "ok", health
    assert health["sandbox"]["isolation"] == "bubblewrap", health
    assert health["sandbox"]["environment"]["profile"] == "scientific", health
    assert health["generator"]["backend"] == "llama-cpp", health

    def execute(code: str, tests: list[str] | None = None) -> dict[str, object]:
        body = {"code": code, "tests": tests or []}
        result: dict[str, object] = httpx.post(url + "/v1/execute", json=body, timeout=60).json()
        return result

    right = execute(
        "import pandas as pd\ndef f(x):\n    return pd.Series([x]).mul(2).item()", ["assert f(21) == 42"]
    )
    assert right["passed"] is True, right
    wrong = execute("def f(x):\n    return x", ["assert f(21) == 42"])
    assert wrong["passed"] is False, wrong
    # Neither the server (port 8000 in the container's network) nor the host (podman's gateway)
    # can be reached: a candidate has a network of its own, with nothing in it.
    for host in ("127.0.0.1", "10.88.0.1"):
        offline = execute(
            f"import socket\ntry:\n    socket.create_connection(({host!r}, 8000), timeout=3)\n"
            "    print('reached')\nexcept OSError as exc:\n    print('blocked', exc)\n"
        )
        assert str(offline["stdout"]).startswith("blocked"), offline
    chat = {
        "model": "mucode",
        "messages": [{"role": "user", "content": "def add(a, b):\n    '''Return a + b.'''\n"}],
        "tests": ["assert add(2, 3) == 5"],
        "n": 2,
        "max_tokens": 256,
    }
    answer = httpx.post(url + "/v1/chat/completions", json=chat, timeout=600).json()
    assert answer["mucode"]["public_all_passed"] is True, answer
    made.report["chat_seconds"] = round(answer["mucode"]["timings"]["total_ms"] / 1000, 1)


def redis_image(made: Made) -> str:
    """The registry's redis:7-alpine, else Debian's Redis 7 on the stand-in base."""
    registry = "docker.io/library/redis:7-alpine"
    if podman("pull", "--quiet", registry, timeout=300, check=False).returncode == 0:
        made.report["redis"] = f"{registry} (pulled)"
        return registry
    standin = "localhost/mucode-redis"
    dockerfile = ROOT / "docker" / "redis-standin.Dockerfile"
    podman("build", "--network", "host", *LIMITS, "-t", standin, "-f", str(dockerfile), str(ROOT / "docker"))
    made.report["redis"] = f"stand-in ({dockerfile.relative_to(ROOT)})"
    return standin


def test_the_compose_stack_runs(made: Made, image: str) -> None:
    """docker-compose.yml on podman-compose with the `workers` profile: the server leaves jobs to
    the worker (MUCODE_JOB_WORKERS=0), a second server replica answers from the first one's cache,
    and with Redis stopped both still answer, uncached, without a 5xx."""
    compose = shutil.which("podman-compose", path=str(Path(sys.executable).parent)) or shutil.which(
        "podman-compose"
    )
    assert compose, "podman-compose is installed with the dev extra"
    project = "mucodetest"
    made.networks.append(f"{project}_default")
    model_volume(made, image, f"{project}_models")
    ports = free_port(), free_port()
    env = {
        **os.environ,
        "MUCODE_IMAGE": image,
        "MUCODE_REDIS_IMAGE": redis_image(made),
        "MUCODE_PUBLISH": str(ports[0]),
        "MUCODE_JOB_WORKERS": "0",
    }
    options = [
        "-p",
        project,
        "--podman-args",
        shlex.join(PODMAN[1:]),
        "--podman-run-args",
        shlex.join(LIMITS),
    ]

    def run(*args: str, timeout: float = 600) -> str:
        done = subprocess.run(
            [compose, *options, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, (
            f"compose {shlex.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        return done.stdout

    try:
        started = time.monotonic()
        run("--profile", "workers", "up", "-d", "--no-build")
        server = f"{project}_mucode_1"
        wait_healthy(server, timeout=600)
        made.report["compose_up_to_healthy_seconds"] = round(time.monotonic() - started, 1)
        # A second replica of the server service, on its own port.
        run("run", "-d", "--name", f"{project}_mucode_2", "-p", f"127.0.0.1:{ports[1]}:8000", "mucode")
        wait_healthy(f"{project}_mucode_2", timeout=600)
        for port in ports:
            wait_model(f"http://127.0.0.1:{port}")
        one, two = (httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=600) for p in ports)
        assert one.get("/health").json()["redis"]["reachable"] is True

        problem = {"prompt": "def add(a, b):\n    '''Return a + b.'''\n", "tests": ["assert add(2, 3) == 5"]}
        options_ = {"n": 1, "turns": 1, "temperature": 0.0, "max_tokens": 128}
        job = one.post("/v1/jobs", json={**problem, "options": options_}).json()
        deadline = time.monotonic() + 600
        while (state := one.get(f"/v1/jobs/{job['id']}").json())["status"] not in {"succeeded", "failed"}:
            assert time.monotonic() < deadline, state
            time.sleep(2)
        assert state["status"] == "succeeded", state  # by the worker: the servers run none

        solve = {**problem, "options": {**options_, "seed": 7}}
        first = one.post("/v1/solve", json=solve)
        assert first.headers["x-mucode-cache"] == "miss", first.text
        again = two.post("/v1/solve", json=solve)
        assert again.headers["x-mucode-cache"] == "hit" and again.json()["cached"] is True

        podman("stop", "-t", "5", f"{project}_redis_1")
        for client in (one, two):
            health = client.get("/health")
            assert health.status_code == 200 and health.json()["redis"]["reachable"] is False, health.text
            uncached = client.post("/v1/solve", json={**solve, "options": {**options_, "seed": 8}})
            assert uncached.status_code == 200, uncached.text
            executed = client.post("/v1/execute", json={"code": "print(6 * 7)"})
            assert executed.status_code == 200 and executed.json()["stdout"] == "42\n"
    finally:
        # The `run` replica first: while it holds the project's network, `down` cannot remove it.
        podman("rm", "-f", "-t", "5", f"{project}_mucode_2", check=False)
        subprocess.run(
            [compose, *options, "--profile", "workers", "down", "-v", "-t", "5"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=300,
        )
        left = podman("ps", "-a", "--filter", f"name={project}_", "--format", "{{.Names}}").stdout.split()
        made.containers += left
        assert not left, f"compose down left {left}"
