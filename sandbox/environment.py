"""The Python environment candidate code runs in: a virtual environment that ``mucode sandbox
setup`` builds from a profile (``scientific``: numpy, pandas, polars, scipy, matplotlib, seaborn,
scikit-learn, statsmodels and what DataFrameBench's tasks import), bound read-only into every
worker. Its manifest (``mucode-sandbox.json`` at the environment's root) names the profile, the
installed packages and the modules each worker imports once, before it forks a run.

Without one, the sandbox runs the bare interpreter: the standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from .errors import SandboxUnavailable

MANIFEST = "mucode-sandbox.json"
MPLCONFIG = "mplconfig"  # matplotlib's font cache, built once at setup

# What each profile installs, and which of its modules a worker imports before forking: the
# common heavy ones (numpy, pandas, matplotlib, scipy, scikit-learn's base) cost seconds to import
# and would otherwise be paid by every run. polars and statsmodels are left to the runs that use
# them: polars alone reserves ~400 MB of address space.
PROFILES: dict[str, tuple[list[str], list[str]]] = {
    "scientific": (
        [
            "numpy", "pandas", "polars", "pyarrow", "scipy", "matplotlib", "seaborn", "scikit-learn",
            "statsmodels", "pytest",
            # DataFrameBench's data/requirements.txt, less its dataframe-library choice
            "beautifulsoup4", "faker", "folium", "geopy", "holidays", "lxml", "openpyxl",
            "python-dateutil", "pytz", "regex", "requests",
        ],
        [
            "numpy", "pandas", "matplotlib", "matplotlib.pyplot", "scipy", "scipy.stats", "seaborn",
            "sklearn", "sklearn.base", "sklearn.linear_model", "sklearn.model_selection",
            "sklearn.preprocessing",
        ],
    ),
    "minimal": ([], []),
}  # fmt: skip


class SandboxEnvironment(BaseModel):
    """A prepared environment, as its manifest describes it (and ``/health`` reports it)."""

    path: str = Field(..., description="Root of the virtual environment, bound read-only into the sandbox.")
    profile: str = Field(..., description="`scientific`, `minimal`, or `custom` for a venv made elsewhere.")
    python: str = Field("", description="The environment's Python version.")
    packages: dict[str, str] = Field(
        default_factory=dict, description="Installed distributions and versions."
    )
    preload: list[str] = Field(default_factory=list, description="Modules each worker imports once.")
    preload_mb: float | None = Field(
        None,
        description="Address space the preloaded modules take in a worker; runs get it on top of memory_mb.",
    )

    @property
    def interpreter(self) -> str:
        return str(Path(self.path) / "bin" / "python")


def default_path(profile: str = "scientific") -> Path:
    """Where ``mucode sandbox setup`` puts a profile: under the user's cache, or under /var/lib
    for root, whose home the sandbox's unprivileged user cannot enter."""
    if os.geteuid() == 0:
        return Path("/var/lib/mucode/sandbox") / profile
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mucode" / "sandbox" / profile


def read_environment(path: str | Path) -> SandboxEnvironment:
    """The environment at ``path``: its manifest, or (a virtualenv made by hand) a ``custom`` one."""
    root = Path(path)
    if not (root / "bin" / "python").exists():
        raise SandboxUnavailable(f"no Python environment at {root} (expected {root}/bin/python)")
    manifest = root / MANIFEST
    if manifest.exists():
        return SandboxEnvironment.model_validate_json(manifest.read_text(encoding="utf-8"))
    return SandboxEnvironment(path=str(root), profile="custom")


def resolve_environment(choice: str) -> SandboxEnvironment | None:
    """``MUCODE_SANDBOX_ENV``: ``auto`` takes the scientific profile where setup put it (else none),
    ``none`` the bare interpreter, anything else is the path of an environment."""
    if choice == "none":
        return None
    if choice == "auto":
        path = default_path()
        return read_environment(path) if (path / MANIFEST).exists() else None
    return read_environment(choice)


def setup_environment(
    profile: str, path: Path, python: str, say: Callable[[str], None] = lambda _: None, update: bool = False
) -> SandboxEnvironment:
    """Create the environment: a venv of ``python`` (the interpreter the sandbox runs), the
    profile's packages installed by this process's pip, matplotlib's font cache built, the
    manifest written last so a half-built environment is never taken for a ready one. One that is
    complete already is left alone (a running server may be using it) unless ``update``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose from {', '.join(PROFILES)}")
    packages, preload = PROFILES[profile]
    if not update and (path / MANIFEST).exists():
        current = read_environment(path)
        if (
            current.profile == profile
            and set(packages) <= set(current.packages)
            and current.preload == preload
        ):
            say(f"{path} is complete already (--update to upgrade it)")
            return current
    (path / MANIFEST).unlink(missing_ok=True)
    say(f"creating the environment at {path} with {python}")
    _run([python, "-m", "venv", "--without-pip", str(path)])
    interpreter = str(path / "bin" / "python")
    if packages:
        say(f"installing {len(packages)} packages: {' '.join(packages)}")
        _run([sys.executable, "-m", "pip", "--python", interpreter, "install", "--quiet", *packages])
    if "matplotlib" in packages:
        say("building matplotlib's font cache")
        env = {**os.environ, "MPLCONFIGDIR": str(path / MPLCONFIG), "MPLBACKEND": "Agg"}
        _run([interpreter, "-I", "-c", "import matplotlib.pyplot"], env=env)
    found = _run([interpreter, "-I", "-c", _LIST_PACKAGES])  # -I: not the caller's folder
    versions = json.loads(found.stdout)
    environment = SandboxEnvironment(
        path=str(path), profile=profile, python=versions.pop("python"), packages=versions, preload=preload
    )
    for root, dirs, files in os.walk(path):  # the sandbox's unprivileged user reads it
        for name in [*dirs, *files]:
            target = Path(root) / name
            if not target.is_symlink():
                target.chmod(target.stat().st_mode | 0o444 | (0o111 if target.is_dir() else 0))
    path.chmod(0o755)
    (path / MANIFEST).write_text(environment.model_dump_json(indent=2), encoding="utf-8")
    (path / MANIFEST).chmod(0o644)
    return environment


_LIST_PACKAGES = (
    "import json, sys, importlib.metadata as m\n"
    "found = {d.metadata['Name'].lower(): d.version for d in m.distributions()}\n"
    "found['python'] = sys.version.split()[0]\n"
    "print(json.dumps(found))"
)


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SandboxUnavailable(f"`{' '.join(argv[:6])} ...` failed: " + " / ".join(tail))
    return done
