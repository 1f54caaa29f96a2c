"""The wheel holds the whole package: every module under every mapped folder and the data files the
code reads, and it imports from outside the checkout (no editable install to lean on)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .helpers import ROOT, package_roots

# Data files the code reads at run time, by folder (pyproject.toml's package-data).
DATA = {
    "mucode": ["py.typed", "checkpoints/dataframebench-sft/mucode.json"],
    "sandbox": ["py.typed"],
    "server": ["static/index.html", "static/playground.js", "static/playground.css"],
    "training": ["configs/cpu.yaml", "configs/ddp.yaml", "configs/zero3.yaml"],
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of a copy of the repository's files (what git tracks or would), so the build's
    egg-info and build/ stay out of the checkout."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
        text=True,
    )
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    done = subprocess.run([*pip, "-w", str(out), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = out.glob("mucode-*.whl")
    return found


def test_the_wheel_holds_every_module_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for package, folder in package_roots().items():
        prefix = package.replace(".", "/")
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in path.parts:
                expected.add(f"{prefix}/{path.relative_to(ROOT / folder).as_posix()}")
        expected.update(f"{prefix}/{data}" for data in DATA.get(folder, []))
    missing = sorted(expected - names)
    assert missing == [], f"not in {wheel.name}: {missing}"


def test_the_installed_wheel_imports_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """Installed into a folder of its own and imported from elsewhere: every top-level package and
    the CLI load from the wheel's files, not from this checkout."""
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)]
    subprocess.run(pip, check=True, capture_output=True)
    code = (
        "import mucode, mucode.engine, mucode.server, mucode.training, mucode.clients, mucode.sandbox\n"
        "import mucode.cli, mucode.server.app\n"
        "print(mucode.__file__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert Path(done.stdout.strip()).is_relative_to(target), done.stdout
