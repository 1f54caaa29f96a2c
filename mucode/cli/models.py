"""``mucode models ...``: the default model bundle and installed checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._output import console, user_errors, with_download_bar

app = typer.Typer(help="The default model bundle.", no_args_is_help=True)


@app.command("pull")
def pull(
    hf: Annotated[bool, typer.Option("--hf", help="Also build the bf16 Hugging Face folder.")] = False,
) -> None:
    """Download, verify (sha256) and prepare the default model once, into the cache."""
    from mucode.engine.model_store import pull_gguf, pull_hf

    path = with_download_bar(
        lambda progress: pull_hf(progress=progress) if hf else pull_gguf(progress=progress)
    )
    console.print(str(path))


@app.command("install-checkpoint")
def install_checkpoint(
    source: Annotated[
        Path | None,
        typer.Argument(help="An exported checkpoint (`mucode train export`); default: the one shipped."),
    ] = None,
    base: Annotated[
        str | None, typer.Option(help="Base model folder (default: the manifest's; `bundled` pulls it).")
    ] = None,
    target: Annotated[
        Path | None, typer.Option(help="Where to (default: the cache, which serve uses).")
    ] = None,
) -> None:
    """Install trained adapters: the generator merged into its base, the verifier beside it. The
    server then uses them by default (unless MUCODE_CHECKPOINT says otherwise)."""
    from mucode.engine import checkpoint
    from mucode.engine.model_store import BundleError

    with user_errors(BundleError):
        path = checkpoint.install_checkpoint(source or checkpoint.shipped_checkpoint(), target, base)
    console.print(str(path))
