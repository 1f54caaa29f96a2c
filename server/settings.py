"""Server settings: every knob once, read from ``MUCODE_*`` variables when built (never at import).

``get_settings`` is the single place the environment is read; the app receives the result and
tests replace it through ``app.dependency_overrides`` or by passing their own ``ServerSettings``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens accepted on /v1 routes (JSON list or comma-separated); empty = open.",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    sandbox: SandboxSettings = Field(default_factory=SandboxSettings, description="See MUCODE_SANDBOX_*.")
    engine: EngineSettings = Field(default_factory=EngineSettings, description="Generator and verifier.")


@lru_cache
def get_settings() -> ServerSettings:
    return ServerSettings()
