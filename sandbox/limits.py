"""Every sandbox knob, declared once with its default and its hard maximum.

Read from ``MUCODE_SANDBOX_*`` environment variables (and ``MUCODE_SANDBOX`` for the mode) when a
``SandboxSettings`` is built, never at import time. A request may lower a limit; asking for more
than the configured maximum is an error that names the parameter, never a silent clamp.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import LimitExceeded

KIB = 1024
MIB = 1024 * KIB


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUCODE_SANDBOX_", extra="ignore")

    mode: Literal["bubblewrap", "unsafe"] = Field(
        "bubblewrap",
        validation_alias=AliasChoices("MUCODE_SANDBOX", "mode"),
        description="`bubblewrap` (default) or `unsafe`: no isolation, for trusted setups only.",
    )
    workers: int = Field(default_factory=default_workers, ge=1, le=256, description="Warm sandboxed workers.")
    queue_size: int = Field(256, ge=0, description="Executions allowed to wait for a worker before 'busy'.")
    timeout_s: float = Field(10.0, gt=0, description="Default wall-clock limit of one execution.")
    max_timeout_s: float = Field(60.0, gt=0, description="Largest timeout a request may ask for.")
    memory_mb: int = Field(512, ge=64, description="Default address-space limit of the program.")
    max_memory_mb: int = Field(4096, ge=64, description="Largest memory limit a request may ask for.")
    capture_bytes: int = Field(64 * KIB, ge=1 * KIB, description="stdout/stderr kept in the result.")
    output_limit_bytes: int = Field(16 * MIB, ge=64 * KIB, description="Largest file (stdout included).")
    tmp_size_mb: int = Field(64, ge=1, description="Size of the private writable /tmp.")
    max_processes: int = Field(64, ge=4, description="Processes and threads of one execution.")
    max_open_files: int = Field(256, ge=16, description="Open file descriptors of one execution.")
    python: str = Field(
        "auto", description="Interpreter inside the sandbox; `auto` picks one the sandbox user can run."
    )
    env: str = Field(
        "auto",
        description="Python environment the code runs in (`mucode sandbox setup`): `auto` = the scientific "
        "profile where setup put it, else the bare interpreter; `none`; or the environment's path.",
    )
    preload: bool = Field(
        True, description="Import the environment's heavy modules once per worker, before forking runs."
    )
    bwrap: str = Field("bwrap", description="The bubblewrap binary.")
    run_as_uid: int = Field(65534, ge=1, description="Host uid for the sandbox when the server runs as root.")
    startup_timeout_s: float = Field(20.0, gt=0, description="Time a worker may take to become ready.")

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_alias(cls, value: object) -> object:
        return "bubblewrap" if value in ("bwrap", "") else value


class Limits:
    """The limits of one execution after applying defaults and checking maxima."""

    __slots__ = ("memory_mb", "timeout_s")

    def __init__(self, timeout_s: float, memory_mb: int) -> None:
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb


def resolve_limits(settings: SandboxSettings, timeout_s: float | None, memory_mb: int | None) -> Limits:
    timeout = settings.timeout_s if timeout_s is None else timeout_s
    memory = settings.memory_mb if memory_mb is None else memory_mb
    if timeout > settings.max_timeout_s:
        raise LimitExceeded(f"timeout_s may be at most {settings.max_timeout_s:g}", "timeout_s")
    if memory > settings.max_memory_mb:
        raise LimitExceeded(f"memory_mb may be at most {settings.max_memory_mb}", "memory_mb")
    if memory < 64:
        raise LimitExceeded("memory_mb must be at least 64", "memory_mb")
    return Limits(timeout, memory)
