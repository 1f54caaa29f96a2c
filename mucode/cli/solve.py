"""``mucode execute`` and ``mucode solve``: run a program on tests, or solve a problem."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ._output import console, err_console, fail, user_errors

if TYPE_CHECKING:
    from mucode.problems import Problem
    from mucode.sandbox import IOTest

STATUS_STYLE = {"passed": "green", "failed": "red", "error": "red", "timeout": "yellow"}


def _read_inputs(
    main: Path, tests: Path | None, io_tests: Path | None
) -> tuple[str, list[str], list[IOTest]]:
    """The main file's text, the tests split from a Python file, the io tests from a JSON file."""
    from mucode.sandbox import IOTest
    from mucode.sandbox.testfile import split_tests

    try:
        text = main.read_text(encoding="utf-8")
        test_list = split_tests(tests.read_text(encoding="utf-8")) if tests else []
        raw_io = json.loads(io_tests.read_text(encoding="utf-8")) if io_tests else []
        io_list = [IOTest.model_validate(t) for t in raw_io]
    except OSError as exc:
        raise fail(f"cannot read {exc.filename}: {exc.strerror}") from None
    except SyntaxError as exc:
        raise fail(f"{tests}: line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise fail(f"{io_tests}: {exc}") from None
    return text, test_list, io_list


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

    from mucode.sandbox import ExecutionRequest, SandboxError, execute_sync
    from mucode.sandbox.feedback import headline

    code, test_list, io_list = _read_inputs(solution, tests, io_tests)
    with user_errors(SandboxError):
        request = ExecutionRequest(
            code=code, tests=test_list, io_tests=io_list, timeout_s=timeout, memory_mb=memory
        )
        result = execute_sync(request)
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


def _problem_from_files(
    problem_file: Path, tests: Path | None, io_tests: Path | None, entry_point: str | None
) -> Problem:
    from mucode.problems import Problem, guess_entry_point

    prompt, test_list, io_list = _read_inputs(problem_file, tests, io_tests)
    return Problem(
        id=problem_file.stem,
        prompt=prompt,
        entry_point=entry_point or guess_entry_point(prompt, test_list),
        public_tests=test_list,
        public_io_tests=io_list,
    )


def solve(
    problem_file: Annotated[
        Path, typer.Argument(help="Text (or Markdown) of the problem, with the signature.")
    ],
    tests: Annotated[
        Path | None, typer.Option("--tests", "-t", help="Python file of public assert tests.")
    ] = None,
    io_tests: Annotated[
        Path | None, typer.Option("--io-tests", help="JSON list of stdin/stdout tests.")
    ] = None,
    entry_point: Annotated[
        str | None, typer.Option(help="Function the tests call (found if omitted).")
    ] = None,
    n: Annotated[int, typer.Option(help="Candidates per turn.")] = 5,
    turns: Annotated[int, typer.Option(help="Most turns.")] = 3,
    selection: Annotated[
        str, typer.Option(help="auto (pt+lv with tests, agree without), pt+lv, pt, lv, random or agree.")
    ] = "auto",
    temperature: Annotated[float, typer.Option()] = 0.7,
    greedy_candidate: Annotated[
        bool,
        typer.Option(
            "--greedy-candidate/--all-sampled",
            help="Candidate 0 of each turn is the greedy answer, or all n are sampled (the paper).",
        ),
    ] = True,
    max_tokens: Annotated[int, typer.Option(help="Tokens per candidate.")] = 768,
    seed: Annotated[int, typer.Option()] = 0,
    generator: Annotated[str | None, typer.Option(help="Backend (MUCODE_GENERATOR).")] = None,
    model: Annotated[str | None, typer.Option(help="Model path or id (MUCODE_MODEL).")] = None,
    verifier: Annotated[str | None, typer.Option(help="Verifier folder (MUCODE_VERIFIER).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the SolveResult trace as JSON.")] = False,
    server: Annotated[
        str | None,
        typer.Option(help="Solve on a mucode server (URL) instead of locally.", envvar="MUCODE_SERVER"),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="API key for --server.", envvar="MUCODE_API_KEY")
    ] = None,
) -> None:
    """Solve a problem with multi-turn fix-and-rerank, locally or on a server (--server); prints
    the final code. Exit status 0 when the answer passes the public tests, 1 otherwise (also when
    no tests were given: nothing checked the answer)."""
    import asyncio

    from mucode.engine.generators.base import GeneratorError
    from mucode.engine.loading import configured_prompt, load_configured_verifier, load_generator
    from mucode.engine.options import SolveOptions
    from mucode.engine.search import SearchEngine
    from mucode.engine.settings import EngineSettings
    from mucode.engine.trace import SolveResult, TurnRecord
    from mucode.sandbox import SandboxError, SandboxPool
    from mucode.server.protocol.solve import TurnStarted

    from ._trace_display import TraceDisplay

    problem = _problem_from_files(problem_file, tests, io_tests, entry_point)
    with user_errors():
        options = SolveOptions(
            n=n,
            turns=turns,
            selection=selection,
            temperature=temperature,
            greedy_candidate=greedy_candidate,
            max_tokens=max_tokens,
            seed=seed,
        )
        overrides = {
            k: v for k, v in {"generator": generator, "model": model, "verifier": verifier}.items() if v
        }
        settings = EngineSettings(**overrides)  # type: ignore[arg-type]
    display = TraceDisplay(
        err_console if as_json else console,
        n=options.n,
        public_total=len(problem.public_tests) + len(problem.public_io_tests),
    )

    async def local() -> SolveResult:
        with display.console.status("loading the model ..."):
            gen = await asyncio.to_thread(load_generator, settings)
            ver = await asyncio.to_thread(load_configured_verifier, settings)
        async with SandboxPool() as pool:
            try:
                return await SearchEngine(gen, pool, ver, configured_prompt(settings)).solve(
                    problem, options, on_event=display.on_event
                )
            finally:
                await gen.close()

    def remote(url: str) -> SolveResult:
        from mucode.clients import MucodeClient, MucodeError

        try:
            with MucodeClient(url, api_key=api_key) as client:
                for event in client.solve_stream(
                    problem.prompt,
                    problem.public_tests,
                    io_tests=problem.public_io_tests,
                    entry_point=problem.entry_point,
                    options=options,
                ):
                    if isinstance(event, TurnStarted):
                        display.started(event.turn, event.turns)
                    elif isinstance(event, TurnRecord):
                        display.finished(event)
                    else:
                        return event
        except MucodeError as exc:
            raise fail(exc.message) from None
        raise fail("the server's stream ended without a result")

    with user_errors(SandboxError, GeneratorError):
        result = remote(server) if server else asyncio.run(local())
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        from rich.syntax import Syntax

        display.verdict(result)
        if result.final_code:
            console.print(Syntax(result.final_code, "python"))
    raise typer.Exit(0 if result.public_all_passed else 1)
