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

from mucode.engine.options import Selection, SolveOptions
from mucode.engine.settings import EngineSettings
from mucode.sandbox import SandboxSettings

MIB = 1024 * 1024


# Search presets served as model ids (server/model_ids.py); options left out are the defaults.
BUILTIN_PRESETS = {
    "mucode-fast": SolveOptions(n=1, turns=1, temperature=0.0),  # one greedy answer, checked
    "mucode-thorough": SolveOptions(n=8, turns=4),
}


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUCODE_", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    log_level: str = Field("info", description="Python log level of the server.")
    max_body_bytes: int = Field(4 * MIB, ge=1024, description="Largest request body; larger gets 413.")
    max_code_bytes: int = Field(1 * MIB, ge=1024, description="Largest `code` field; larger gets 413.")
    max_tests: int = Field(256, ge=1, description="Most tests (asserts plus io tests) in one request.")
    max_context_chars: int = Field(
        16000,
        ge=0,
        description="Characters of earlier conversation (chat) the first turn shows; oldest dropped first.",
    )
    responses_ttl_s: int = Field(
        3600, ge=0, description="How long /v1/responses keeps a response for previous_response_id (memory)."
    )
    max_stored_responses: int = Field(1000, ge=0, description="Most responses kept for previous_response_id.")
    presets: dict[str, SolveOptions] = Field(
        default_factory=dict,
        description='More search presets served as model ids, JSON: {"mucode-wide": {"n": 16, "turns": 2}}.',
    )
    max_batch_programs: int = Field(
        1024, ge=1, description="Most programs in one `/v1/execute/batch` request; more gets 422."
    )
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

    redis_url: str | None = Field(
        None,
        description="Redis for the solve cache, rate limits and jobs (e.g. redis://localhost:6379/0); "
        "unset = the same features in-process.",
    )
    redis_prefix: str = Field("mucode", description="Prefix of every Redis key (and the job queue's name).")
    cache_ttl_s: int = Field(3600, ge=0, description="How long a deterministic solve stays cached; 0 = off.")
    rate_limit_per_minute: int = Field(
        0, ge=0, description="Requests per minute per API key (per client address without keys); 0 = off."
    )
    max_concurrent_solves: int = Field(
        4, ge=1, description="Searches running at once (solve, chat, completions, score)."
    )
    max_queued_solves: int = Field(
        64, ge=0, description="Searches waiting for a slot; beyond this the server answers 503."
    )
    job_workers: int = Field(
        2, ge=0, description="Jobs this server runs at once; 0 = leave jobs to `mucode worker` processes."
    )
    job_ttl_s: int = Field(86400, ge=60, description="How long a finished job and its result are kept.")
    max_pending_jobs: int = Field(
        256, ge=1, description="Jobs queued or running (this server's, or the Redis queue's); beyond: 503."
    )
    max_pending_jobs_per_key: int = Field(
        32, ge=1, description="Unfinished jobs one API key (or address) may have on this server; beyond: 429."
    )
    max_job_records: int = Field(
        2000, ge=10, description="Job records this server keeps in memory (oldest finished ones go first)."
    )
    shutdown_timeout_s: int = Field(
        10,
        ge=1,
        description="On SIGTERM, how long open requests and streams may finish before they are cut.",
    )
    metrics_require_key: bool = Field(False, description="Ask for an API key on /metrics too.")

    default_n: int = Field(5, ge=1, le=64, description="Candidates per turn when a request does not say.")
    default_turns: int = Field(3, ge=1, le=10, description="Most turns when a request does not say.")
    default_selection: Selection = Field(
        "auto",
        description="Selection rule when a request does not say (`auto`: `pt+lv` with tests, `agree` "
        "without).",
    )

    sandbox: SandboxSettings = Field(default_factory=SandboxSettings, description="See MUCODE_SANDBOX_*.")
    engine: EngineSettings = Field(default_factory=EngineSettings, description="Generator and verifier.")

    def default_options(self) -> SolveOptions:
        return SolveOptions(n=self.default_n, turns=self.default_turns, selection=self.default_selection)

    def all_presets(self) -> dict[str, SolveOptions]:
        """The built-in presets, with the operator's (``MUCODE_PRESETS``) added or replacing them."""
        return {**BUILTIN_PRESETS, **self.presets}


@lru_cache
def get_settings() -> ServerSettings:
    return ServerSettings()
