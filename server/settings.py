"""Server settings: every knob once, read from ``MUCODE_*`` variables when built (never at import).

``get_settings`` is the single place the environment is read; the app receives the result and
tests replace it through ``app.dependency_overrides`` or by passing their own ``ServerSettings``.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mucode.sandbox import SandboxSettings

from .engine.settings import EngineSettings

MIB = 1024 * 1024


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUCODE_", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    log_level: str = Field("info", description="Python log level of the server.")
    max_body_bytes: int = Field(4 * MIB, ge=1024, description="Largest request body; larger gets 413.")
    max_code_bytes: int = Field(1 * MIB, ge=1024, description="Largest `code` field; larger gets 413.")
    max_tests: int = Field(256, ge=1, description="Most tests (asserts plus io tests) in one request.")
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings, description="See MUCODE_SANDBOX_*.")
    engine: EngineSettings = Field(default_factory=EngineSettings, description="Generator and verifier.")


@lru_cache
def get_settings() -> ServerSettings:
    return ServerSettings()
