"""``mucode sandbox ...``: the Python environment candidate code runs in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ._output import console, user_errors

app = typer.Typer(help="The sandbox's Python environment.", no_args_is_help=True)


@app.command("setup")
def setup(
    profile: Annotated[
        str, typer.Option(help="`scientific` (numpy, pandas, ...) or `minimal`.")
    ] = "scientific",
    path: Annotated[
        Path | None, typer.Option(help="Where to build it (default: where MUCODE_SANDBOX_ENV=auto looks).")
    ] = None,
    update: Annotated[
        bool, typer.Option(help="Upgrade the packages of an environment built before.")
    ] = False,
) -> None:
    """Build the environment once (a venv of the sandbox's interpreter, bound read-only into every
    worker); a complete one is left as it is unless --update. Uses pip's configured index."""
    from mucode.sandbox import SandboxSettings, SandboxUnavailable
    from mucode.sandbox.environment import default_path, setup_environment
    from mucode.sandbox.isolation import resolve_python

    with user_errors(SandboxUnavailable):
        settings = SandboxSettings()
        # The interpreter the sandbox's user can run: the environment is a venv of it.
        python = resolve_python(settings.python, settings.run_as_uid if os.geteuid() == 0 else os.geteuid())
        environment = setup_environment(
            profile,
            path or default_path(profile),
            python,
            say=lambda line: console.print(line, style="dim"),
            update=update,
        )
    console.print(
        f"{environment.path}: {environment.profile}, Python {environment.python}, "
        f"{len(environment.packages)} packages, preloads {', '.join(environment.preload) or 'nothing'}"
    )


@app.command("info")
def info() -> None:
    """The environment the sandbox would run now (MUCODE_SANDBOX_ENV), as JSON."""
    from mucode.sandbox import SandboxSettings, SandboxUnavailable
    from mucode.sandbox.environment import resolve_environment

    with user_errors(SandboxUnavailable):
        environment = resolve_environment(SandboxSettings().env)
    console.print_json(environment.model_dump_json() if environment else "null")
