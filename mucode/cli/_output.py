"""What every command group shares: the consoles, one way to fail, and progress bars."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:
    from pydantic import ValidationError

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")
Progress = Callable[[str, int, int], None]
"""A progress callback: (stage, done, total)."""


def fail(message: str) -> typer.Exit:
    """A one-line error on stderr and exit status 2; callers ``raise fail(...) from None``."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(2)


@contextlib.contextmanager
def user_errors(*also: type[Exception]) -> Iterator[None]:
    """What the user can fix — a bad option (pydantic's ValidationError), an unreadable or invalid
    file (OSError, ValueError), and the ``also`` types — becomes a one-line error and exit 2."""
    from pydantic import ValidationError

    fixable: tuple[type[Exception], ...] = (OSError, ValueError, *also)
    try:
        yield
    except ValidationError as exc:
        raise invalid(exc) from None
    except fixable as exc:
        raise fail(str(exc)) from None


def invalid(exc: ValidationError) -> typer.Exit:
    """A pydantic validation error as a CLI error naming the offending option."""
    first = exc.errors()[0]
    where = first["loc"][-1] if first["loc"] else "input"
    return fail(f"{where}: {first['msg']}")


@contextlib.contextmanager
def stage_bars() -> Iterator[tuple[Console, Progress]]:
    """A progress bar per training stage, with ETA, on stderr: yields (console, callback)."""
    from rich.progress import BarColumn, TaskID, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bars

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Bars(*columns, TimeRemainingColumn(), console=err_console) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield bar.console, progress


def with_download_bar(pull: Callable[[Progress], T]) -> T:
    """Run ``pull(progress)`` with a download bar on stderr; bundle errors become a clean exit."""
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bars

    from mucode.engine.model_store import BundleError

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Bars(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("model", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        try:
            return pull(progress)
        except BundleError as exc:
            raise fail(str(exc)) from None
