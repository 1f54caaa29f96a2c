"""``mucode serve`` (the HTTP server) and ``mucode worker`` (job workers on other machines)."""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._output import fail, user_errors, with_download_bar

if TYPE_CHECKING:
    from mucode.server.settings import ServerSettings


def serve(
    host: Annotated[str | None, typer.Option(help="Interface (MUCODE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (MUCODE_PORT).")] = None,
    generator: Annotated[
        str | None, typer.Option(help="auto, vllm, llama-cpp, transformers, openai (MUCODE_GENERATOR).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model path, GGUF or hub id (MUCODE_MODEL).")] = None,
    verifier: Annotated[str | None, typer.Option(help="Verifier folder or `none` (MUCODE_VERIFIER).")] = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="Training checkpoint: its generator and verifier (MUCODE_CHECKPOINT).")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="Redis for cache, limits, jobs (MUCODE_REDIS_URL).")
    ] = None,
    api_key: Annotated[
        list[str] | None, typer.Option(help="Accepted Bearer key; repeat for several (MUCODE_API_KEYS).")
    ] = None,
    n: Annotated[int | None, typer.Option(help="Default candidates per turn (MUCODE_DEFAULT_N).")] = None,
    turns: Annotated[int | None, typer.Option(help="Default most turns (MUCODE_DEFAULT_TURNS).")] = None,
    selection: Annotated[
        str | None, typer.Option(help="Default selection rule (MUCODE_DEFAULT_SELECTION).")
    ] = None,
    max_concurrent: Annotated[
        int | None, typer.Option(help="Searches at once (MUCODE_MAX_CONCURRENT_SOLVES).")
    ] = None,
    max_queued: Annotated[
        int | None, typer.Option(help="Searches waiting before 503 (MUCODE_MAX_QUEUED_SOLVES).")
    ] = None,
) -> None:
    """Start the HTTP server (OpenAPI docs at /docs). Flags override MUCODE_* variables."""
    import uvicorn

    from mucode.engine.loading import ensure_model
    from mucode.server.app import create_app

    engine = {"generator": generator, "model": model, "verifier": verifier, "checkpoint": checkpoint}
    server = {
        "host": host,
        "port": port,
        "redis_url": redis_url,
        "api_keys": api_key,
        "default_n": n,
        "default_turns": turns,
        "default_selection": selection,
        "max_concurrent_solves": max_concurrent,
        "max_queued_solves": max_queued,
    }
    settings = _server_settings(server, engine)
    with_download_bar(lambda progress: ensure_model(settings.engine, progress))
    # access_log off: the server writes its own structured line per request (mucode.access).
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        # Bounded: a stream that never ends (an idle IDE) must not hold a shutdown forever.
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )


def worker(
    redis_url: Annotated[str | None, typer.Option(help="The server's Redis (MUCODE_REDIS_URL).")] = None,
    jobs: Annotated[int | None, typer.Option(help="Jobs at once (MUCODE_JOB_WORKERS).")] = None,
) -> None:
    """Run /v1/jobs solves from Redis on this machine, with its own model and sandbox; start as
    many as you like, anywhere that reaches the Redis. Settings as for `serve`."""
    import asyncio

    from mucode.engine.loading import ensure_model
    from mucode.server.runtime import Runtime

    settings = _server_settings({"redis_url": redis_url, "job_workers": jobs}, {})
    if not settings.redis_url:
        raise fail("a worker needs Redis: set --redis-url or MUCODE_REDIS_URL")
    with_download_bar(lambda progress: ensure_model(settings.engine, progress))

    async def run() -> None:
        runtime = Runtime(settings.model_copy(update={"job_workers": max(1, settings.job_workers)}))
        await runtime.start()
        try:
            await runtime.wait_ready()
            if runtime.model_state != "ready" or runtime.worker is None:
                raise fail(f"the model did not load: {runtime.model_error}")
            logging.getLogger("mucode.server").info("worker ready: %s", runtime.health().model_dump_json())
            stop = asyncio.Event()  # jobs run on the runtime's worker until SIGTERM or Ctrl-C
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await runtime.close()

    asyncio.run(run())


def _server_settings(server: dict[str, Any], engine: dict[str, Any]) -> ServerSettings:
    """ServerSettings from MUCODE_* variables with the given (non-None) overrides; logging set up.
    A bad value is a one-line error, not a traceback."""

    from mucode.engine.settings import EngineSettings
    from mucode.server.settings import ServerSettings

    with user_errors():
        overrides = {k: v for k, v in server.items() if v is not None}
        engine_overrides = {k: v for k, v in engine.items() if v is not None}
        if engine_overrides:
            overrides["engine"] = EngineSettings(**engine_overrides)
        settings = ServerSettings(**overrides)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return settings
