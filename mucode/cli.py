"""The ``mucode`` command. Each verb is a thin shell over a library call."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="mucode: multi-turn fix-and-rerank code generation (µCode).", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

STATUS_STYLE = {"passed": "green", "failed": "red", "error": "red", "timeout": "yellow"}


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(2)


@app.command()
def execute(
    solution: Annotated[Path, typer.Argument(help="Python file with the code to run.")],
    tests: Annotated[Path | None, typer.Option("--tests", "-t", help="Python file of assert tests.")] = None,
    io_tests: Annotated[
        Path | None, typer.Option("--io-tests", help='JSON list of {"input": ..., "output": ...}.')
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Wall-clock limit in seconds.")] = None,
    memory: Annotated[int | None, typer.Option(help="Memory limit in MB.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ExecutionResult as JSON.")] = False,
) -> None:
    """Run SOLUTION against tests in the sandbox. Exit status 0 when every test passes, 1 otherwise."""
    from mucode.sandbox import ExecutionRequest, IOTest, SandboxError, execute_sync
    from mucode.sandbox.feedback import headline
    from mucode.sandbox.testfile import split_tests

    try:
        code = solution.read_text(encoding="utf-8")
        test_list = split_tests(tests.read_text(encoding="utf-8")) if tests else []
        io_list = (
            [IOTest.model_validate(t) for t in json.loads(io_tests.read_text(encoding="utf-8"))]
            if io_tests
            else []
        )
    except OSError as exc:
        raise _fail(f"cannot read {exc.filename}: {exc.strerror}") from None
    except SyntaxError as exc:
        raise _fail(f"{tests}: line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise _fail(f"{io_tests}: {exc}") from None
    request = ExecutionRequest(
        code=code, tests=test_list, io_tests=io_list, timeout_s=timeout, memory_mb=memory
    )
    try:
        result = execute_sync(request)
    except SandboxError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        table = Table(show_header=True, header_style="bold")
        table.add_column("#", justify="right")
        table.add_column("test")
        table.add_column("status")
        table.add_column("message")
        for k, r in enumerate(result.results, start=1):
            style = STATUS_STYLE[r.status.value]
            table.add_row(str(k), headline(r.test)[:60], f"[{style}]{r.status.value}[/]", r.message)
        if result.results:
            console.print(table)
        verdict = "[bold green]PASSED[/]" if result.passed else "[bold red]FAILED[/]"
        console.print(
            f"{verdict} {result.passed_count}/{len(result.results)} in {result.duration_ms:.0f} ms "
            f"({result.isolation})"
        )
        if not result.passed:
            console.print(result.feedback, markup=False, highlight=False)
    raise typer.Exit(0 if result.passed else 1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (MUCODE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (MUCODE_PORT).")] = None,
) -> None:
    """Start the HTTP server (OpenAPI docs at /docs)."""
    import logging

    import uvicorn

    from mucode.server.app import create_app
    from mucode.server.settings import ServerSettings

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = ServerSettings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)


if __name__ == "__main__":
    app()
