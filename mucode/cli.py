"""The ``mucode`` command. Each verb is a thin shell over a library call."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

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


def _read_inputs(main: Path, tests: Path | None, io_tests: Path | None) -> tuple[str, list[str], list[Any]]:
    """The main file's text, the tests split from a Python file, the io tests from a JSON file."""
    from mucode.sandbox import IOTest
    from mucode.sandbox.testfile import split_tests

    try:
        text = main.read_text(encoding="utf-8")
        test_list = split_tests(tests.read_text(encoding="utf-8")) if tests else []
        raw_io = json.loads(io_tests.read_text(encoding="utf-8")) if io_tests else []
        io_list = [IOTest.model_validate(t) for t in raw_io]
    except OSError as exc:
        raise _fail(f"cannot read {exc.filename}: {exc.strerror}") from None
    except SyntaxError as exc:
        raise _fail(f"{tests}: line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise _fail(f"{io_tests}: {exc}") from None
    return text, test_list, io_list


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
    from mucode.sandbox import ExecutionRequest, SandboxError, execute_sync
    from mucode.sandbox.feedback import headline

    code, test_list, io_list = _read_inputs(solution, tests, io_tests)
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


def _problem_from_files(
    problem_file: Path, tests: Path | None, io_tests: Path | None, entry_point: str | None
) -> Any:
    from mucode.problems import Problem, guess_entry_point

    prompt, test_list, io_list = _read_inputs(problem_file, tests, io_tests)
    return Problem(
        id=problem_file.stem,
        prompt=prompt,
        entry_point=entry_point or guess_entry_point(prompt, test_list),
        public_tests=test_list,
        public_io_tests=io_list,
    )


@app.command()
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
    selection: Annotated[str, typer.Option(help="pt+lv, pt, lv or random.")] = "pt+lv",
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
    the final code."""
    import asyncio

    from pydantic import ValidationError

    from mucode.sandbox import SandboxError, SandboxPool
    from mucode.server.engine.generators.base import GeneratorError
    from mucode.server.engine.loading import load_configured_verifier, load_generator
    from mucode.server.engine.options import SolveOptions
    from mucode.server.engine.search import SearchEngine, SearchEvent
    from mucode.server.engine.settings import EngineSettings
    from mucode.server.engine.trace import SolveResult, TurnRecord
    from mucode.server.protocol.solve import TurnStarted

    problem = _problem_from_files(problem_file, tests, io_tests, entry_point)
    try:
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
    except ValidationError as exc:
        raise _fail(str(exc.errors()[0]["msg"]) + f" ({exc.errors()[0]['loc'][-1]})") from None
    display = err_console if as_json else console

    def show_started(turn: int, of: int) -> None:
        display.print(f"[bold]turn {turn}/{of}[/]: sampling {options.n} candidates ...")

    def show_record(record: TurnRecord) -> None:
        total = len(problem.public_tests) + len(problem.public_io_tests)
        for c in record.candidates:
            mark = "→" if c.index == record.selected else " "
            score = "" if c.verifier_score is None else f" verifier {c.verifier_score:+.2f}"
            dup = f" (same code as #{c.duplicate_of + 1})" if c.duplicate_of is not None else ""
            display.print(
                f"  {mark} #{c.index + 1}: passes {c.public_passed}/{total}{score} [{c.extraction}]{dup}"
            )
        t = record.timings
        display.print(
            f"  [dim]{record.usage.completion_tokens} tokens, generation {t.generation_ms:.0f} ms, "
            f"sandbox {t.sandbox_ms:.0f} ms[/]"
        )

    def show(event: SearchEvent) -> None:
        if event.record is None:
            show_started(event.turn, event.turns)
        else:
            show_record(event.record)

    async def run() -> Any:
        with display.status("loading the model ..."):
            gen = await asyncio.to_thread(load_generator, settings)
            ver = await asyncio.to_thread(load_configured_verifier, settings)
        async with SandboxPool() as pool:
            try:
                return await SearchEngine(gen, pool, ver).solve(problem, options, on_event=show)
            finally:
                await gen.close()

    def remote() -> SolveResult:
        from mucode.clients import MucodeClient, MucodeError

        assert server is not None
        try:
            with MucodeClient(server, api_key=api_key) as client:
                for event in client.solve_stream(
                    problem.prompt,
                    problem.public_tests,
                    io_tests=problem.public_io_tests,
                    entry_point=problem.entry_point,
                    options=options,
                ):
                    if isinstance(event, TurnStarted):
                        show_started(event.turn, event.turns)
                    elif isinstance(event, TurnRecord):
                        show_record(event)
                    else:
                        return event
        except MucodeError as exc:
            raise _fail(exc.message) from None
        raise _fail("the server's stream ended without a result")

    try:
        result = remote() if server else asyncio.run(run())
    except (SandboxError, GeneratorError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        from rich.syntax import Syntax

        verdict = "[bold green]PASSED[/]" if result.passed_public else "[bold red]FAILED[/]"
        console.print(
            f"{verdict} {result.public_passed}/{result.public_total} public tests after "
            f"{len(result.turns)} turn(s), {result.usage.total_tokens} tokens, "
            f"{result.timings.total_ms / 1000:.1f} s"
        )
        if result.final_code:
            console.print(Syntax(result.final_code, "python"))
    raise typer.Exit(0 if result.passed_public else 1)


train_app = typer.Typer(help="Training: µCode expert iteration and its stages.", no_args_is_help=True)
app.add_typer(train_app, name="train")


@contextlib.contextmanager
def _stage_bars() -> Iterator[tuple[Any, Any]]:
    """A progress bar per training stage, with ETA, on stderr: yields (console, callback)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TimeRemainingColumn(), console=err_console) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield bar.console, progress


def _policy(policy_script: Path | None) -> Any:
    """Rollout generator factory: a scripted policy, or the model folder it is given."""

    def make(model: str) -> Any:
        from mucode.server.engine.generators.scripted import ScriptedGenerator
        from mucode.server.engine.loading import load_generator
        from mucode.server.engine.settings import EngineSettings

        if policy_script is not None:
            return ScriptedGenerator.from_file(policy_script)
        return load_generator(EngineSettings(model=model))

    return make


@train_app.command("rollouts")
def train_rollouts_command(
    problems: Annotated[
        str, typer.Option(help="humaneval:fold0, humaneval:fold1, humaneval or a JSONL file.")
    ],
    model: Annotated[str, typer.Option(help="The generator to roll out (HF folder, GGUF or hub id).")],
    out: Annotated[Path, typer.Option(help="JSONL of Rollout rows (appended; a rerun resumes).")],
    per_problem: Annotated[int, typer.Option(help="Episodes per problem.")] = 4,
    iteration: Annotated[int, typer.Option(help="Recorded in the rows; seeds them.")] = 1,
    turns: Annotated[int, typer.Option()] = 3,
    temperature: Annotated[float, typer.Option()] = 0.7,
    max_tokens: Annotated[int, typer.Option()] = 768,
    seed: Annotated[int, typer.Option()] = 0,
    policy_script: Annotated[Path | None, typer.Option(help="Roll out a scripted policy instead.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first K problems of the set.")] = None,
    concurrency: Annotated[int, typer.Option(help="Episodes in flight (vLLM batches them).")] = 4,
) -> None:
    """Multi-turn episodes through the server's search engine, labelled by the private tests."""
    import asyncio

    from mucode.training.problems import load_problem_set
    from mucode.training.rollouts import rollout_options, rollout_stage

    try:
        problem_set = load_problem_set(problems)[:limit]
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    options = rollout_options(turns, temperature, max_tokens, seed)
    with _stage_bars() as (_, progress):
        rollouts = asyncio.run(
            rollout_stage(
                problem_set, _policy(policy_script)(model), out, iteration=iteration,
                per_problem=per_problem, options=options, progress=progress, concurrency=concurrency,
            )
        )  # fmt: skip
    solved = sum(r.success for r in rollouts)
    console.print(f"{len(rollouts)} episodes, {solved} solved ({solved / len(rollouts):.0%}) -> {out}")


@train_app.command("relabel")
def train_relabel_command(
    problems: Annotated[str, typer.Option(help="The problem set the rollouts came from.")],
    rollouts: Annotated[
        list[Path], typer.Option(help="Rollout JSONL files (repeat: all iterations so far).")
    ],
    out: Annotated[Path, typer.Option(help="JSONL of SFT rows.")],
    verifier: Annotated[
        str | None, typer.Option(help="Verifier folder for tie-breaks (none: oracle only).")
    ] = None,
) -> None:
    """Local experts (100·oracle + verifier) and the SFT rows they give every state."""
    from mucode.server.engine.verifier import load_verifier
    from mucode.training.problems import load_problem_set
    from mucode.training.relabel import experts, labeled_codes, relabel
    from mucode.training.rollouts import Rollout
    from mucode.training.schemas import read_jsonl, write_jsonl

    try:
        prompts = {p.id: p.prompt for p in load_problem_set(problems)}
        episodes = [r for path in rollouts for r in read_jsonl(path, Rollout)]
        codes = labeled_codes(episodes, prompts)
    except KeyError as exc:
        raise _fail(f"a rollout's problem {exc} is not in {problems}") from None
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    scorer = load_verifier(verifier)
    rows = relabel(episodes, experts(codes, scorer.score_sync if scorer else None))
    write_jsonl(rows, out)
    own = sum(r.source == "own" for r in rows)
    console.print(f"{len(rows)} rows ({own} own, {len(rows) - own} expert) -> {out}")


@train_app.command("sft")
def train_sft_command(
    rows: Annotated[Path, typer.Argument(help="JSONL of SFT rows (mucode train relabel).")],
    base: Annotated[str, typer.Option(help="The model to fine-tune.")],
    out: Annotated[Path, typer.Option(help="Output: OUT/model (merged HF folder), OUT/adapter with --lora.")],
    lora: Annotated[bool, typer.Option()] = False,
    lr: Annotated[float, typer.Option()] = 5e-7,
    epochs: Annotated[int, typer.Option()] = 2,
    holdout: Annotated[float, typer.Option()] = 0.2,
    seed: Annotated[int, typer.Option()] = 0,
    tensorboard: Annotated[bool, typer.Option()] = False,
) -> None:
    """TRL SFT with the loss on the assistant answers only; prints held-out log-likelihoods."""
    from mucode.training.relabel import SFTRow
    from mucode.training.schemas import read_jsonl
    from mucode.training.sft import SFTSettings, train_generator

    try:
        records = read_jsonl(rows, SFTRow)
        settings = SFTSettings(
            base=base, out=out, lora=lora, lr=lr, epochs=epochs, holdout=holdout, seed=seed,
            report_to=["tensorboard"] if tensorboard else [],
        )  # fmt: skip
        report = train_generator(records, settings)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print_json(report.model_dump_json())


@train_app.command("verifier")
def train_verifier_command(
    codes: Annotated[Path, typer.Argument(help="JSONL of LabeledCode: problem_id, prompt, code, passed.")],
    base: Annotated[str, typer.Option(help="Base model: HF folder or hub id.")],
    out: Annotated[Path, typer.Option(help="Where the verifier is saved (load it with MUCODE_VERIFIER).")],
    loss: Annotated[str, typer.Option(help="bt (Bradley–Terry pairs) or bce (pointwise).")] = "bt",
    lora: Annotated[bool, typer.Option(help="Train a LoRA adapter instead of the full model.")] = False,
    epochs: Annotated[int, typer.Option()] = 2,
    lr: Annotated[float, typer.Option()] = 1e-5,
    pairs_per_problem: Annotated[int, typer.Option()] = 32,
    holdout: Annotated[float, typer.Option(help="Share of problems held out for the metrics.")] = 0.2,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train the verifier R(problem, code) on labelled programs; prints held-out pairwise accuracy
    and AUC, and saves a folder the server loads as its verifier."""
    from pydantic import ValidationError

    from mucode.training.schemas import LabeledCode, read_jsonl
    from mucode.training.verifier import VerifierConfig, train_verifier

    try:
        config = VerifierConfig(
            base=base, out=out, loss=loss, lora=lora, epochs=epochs, lr=lr,
            pairs_per_problem=pairs_per_problem, holdout=holdout, seed=seed,
        )  # fmt: skip
        records = read_jsonl(codes, LabeledCode)
    except ValidationError as exc:
        raise _fail(f"{exc.errors()[0]['loc'][-1]}: {exc.errors()[0]['msg']}") from None
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    from rich.progress import Progress as Bar

    with Bar(console=err_console, transient=True) as bar:
        task = bar.add_task("verifier", total=None)
        try:
            report = train_verifier(
                records, config, lambda stage, done, total: bar.update(task, completed=done, total=total)
            )
        except ValueError as exc:
            raise _fail(str(exc)) from None
    console.print_json(report.model_dump_json())


@train_app.command("export")
def train_export_command(
    run: Annotated[Path, typer.Argument(help="A LoRA run folder (`mucode train iterate --lora`).")],
    out: Annotated[Path, typer.Option(help="Folder for the shippable checkpoint (replaced).")],
) -> None:
    """The run's generator and verifier adapters in bf16 with a manifest: a few MB that ship and
    install anywhere (`mucode models install-checkpoint`)."""
    from mucode.training.export import export_checkpoint

    try:
        export_checkpoint(run, out)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    console.print(f"{out} ({size / 1e6:.1f} MB)")


@train_app.command("iterate")
def train_iterate_command(
    problems: Annotated[
        str, typer.Option(help="humaneval:fold0, humaneval:fold1, humaneval or a JSONL file.")
    ],
    base: Annotated[str, typer.Option(help="The generator's base model (HF folder or hub id).")],
    out: Annotated[Path, typer.Option(help="Run folder; the checkpoint for `mucode serve --checkpoint`.")],
    iterations: Annotated[int, typer.Option()] = 2,
    verifier_base: Annotated[str | None, typer.Option(help="Verifier base (default: --base).")] = None,
    rollouts_per_problem: Annotated[int, typer.Option()] = 4,
    turns: Annotated[int, typer.Option()] = 3,
    temperature: Annotated[float, typer.Option()] = 0.7,
    max_tokens: Annotated[int, typer.Option(help="Tokens per rollout answer.")] = 768,
    lora: Annotated[bool, typer.Option(help="LoRA adapters for the generator and the verifier.")] = False,
    lora_rank: Annotated[int, typer.Option(help="Rank of both LoRA adapters.")] = 16,
    micro_batch_size: Annotated[
        int, typer.Option(help="Examples per forward pass (verifier, SFT); raise it on GPUs.")
    ] = 1,
    sft_lr: Annotated[float, typer.Option()] = 5e-7,
    sft_epochs: Annotated[int, typer.Option()] = 2,
    verifier_lr: Annotated[float, typer.Option()] = 1e-6,
    verifier_epochs: Annotated[int, typer.Option()] = 2,
    pairs_per_problem: Annotated[int, typer.Option()] = 32,
    holdout: Annotated[float, typer.Option(help="Share of problems held out for the stage metrics.")] = 0.2,
    seed: Annotated[int, typer.Option()] = 0,
    policy_script: Annotated[
        Path | None, typer.Option(help="Roll out a scripted policy (JSON script) instead of the generator.")
    ] = None,
    tensorboard: Annotated[
        bool, typer.Option(help="Log SFT to TensorBoard (OUT/iter-i/generator/trainer).")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Only the first K problems of the set.")] = None,
    rollout_concurrency: Annotated[int, typer.Option(help="Episodes in flight (vLLM batches them).")] = 4,
) -> None:
    """µCode expert iteration: rollouts, verifier, relabel, SFT, `--iterations` times; resumes a
    crashed run where it stopped. Prints a summary table and writes OUT/mucode.json."""
    from pydantic import ValidationError

    from mucode.training.iterate import IterateConfig, StageFailure, iterate
    from mucode.training.problems import load_problem_set

    try:
        config = IterateConfig(
            problems=problems, base=base, verifier_base=verifier_base, out=out, iterations=iterations,
            rollouts_per_problem=rollouts_per_problem, turns=turns, temperature=temperature,
            max_tokens=max_tokens, lora=lora, lora_rank=lora_rank, micro_batch_size=micro_batch_size,
            sft_lr=sft_lr, sft_epochs=sft_epochs,
            verifier_lr=verifier_lr,
            verifier_epochs=verifier_epochs, pairs_per_problem=pairs_per_problem, holdout=holdout, seed=seed,
            report_to=["tensorboard"] if tensorboard else [], limit=limit,
            rollout_concurrency=rollout_concurrency,
        )  # fmt: skip
        problem_set = load_problem_set(problems)[:limit]
    except ValidationError as exc:
        raise _fail(f"{exc.errors()[0]['loc'][-1]}: {exc.errors()[0]['msg']}") from None
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None

    with _stage_bars() as (bar_console, progress):
        try:
            manifest = iterate(config, problem_set, _policy(policy_script), progress, log=bar_console.print)
        except StageFailure as exc:
            raise _fail(str(exc)) from None
    table = Table(
        "iteration", "rollout success", "verifier AUC", "SFT rows", "held-out log p before -> after"
    )
    for m in manifest.iterations:
        sft = m["sft"]
        table.add_row(
            str(m["iteration"]),
            f"{m['rollouts']['success_rate']:.2f}",
            "n/a" if m["verifier"]["auc"] is None else f"{m['verifier']['auc']:.3f}",
            str(m["relabel"]["rows"]),
            f"{sft['heldout_logprob_before']} -> {sft['heldout_logprob_after']}",
        )
    console.print(table)
    console.print(f"checkpoint: {out} (mucode serve --checkpoint {out})")


@app.command("eval")
def eval_command(
    problems: Annotated[
        str, typer.Option(help="humaneval:fold0, humaneval:fold1, humaneval or a JSONL file.")
    ],
    out: Annotated[Path, typer.Option(help="Report JSON; rows and the PNG plot go next to it.")],
    configs: Annotated[
        str,
        typer.Option(help="Comma-separated: greedy-1, greedy-3, bon5-random, bon5-lv, bon5-pt, bon5-pt+lv."),
    ] = "greedy-1,greedy-3,bon5-random,bon5-lv,bon5-pt,bon5-pt+lv",
    checkpoint: Annotated[str | None, typer.Option(help="A training checkpoint (MUCODE_CHECKPOINT).")] = None,
    generator: Annotated[str | None, typer.Option(help="Backend (MUCODE_GENERATOR).")] = None,
    model: Annotated[str | None, typer.Option(help="Model (MUCODE_MODEL).")] = None,
    verifier: Annotated[str | None, typer.Option(help="Verifier folder (MUCODE_VERIFIER).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first K problems.")] = None,
    max_tokens: Annotated[int, typer.Option()] = 768,
    seed: Annotated[int, typer.Option()] = 0,
    concurrency: Annotated[int, typer.Option(help="Problems in flight (vLLM batches them).")] = 4,
) -> None:
    """Pass rates (private tests) per configuration and per turn; JSON report and PNG plot. An
    interrupted evaluation resumes. Rules that need a verifier are skipped without one."""
    import asyncio

    from pydantic import ValidationError

    from mucode.server.engine.loading import load_configured_verifier, load_generator
    from mucode.server.engine.settings import EngineSettings
    from mucode.training.evaluate import evaluate, runnable
    from mucode.training.problems import load_problem_set

    overrides: dict[str, Any] = {
        "checkpoint": checkpoint,
        "generator": generator,
        "model": model,
        "verifier": verifier,
    }
    try:
        settings = EngineSettings(**{k: v for k, v in overrides.items() if v is not None})
        problem_set = load_problem_set(problems)[:limit]
        names = [c for c in configs.split(",") if c]
        runnable(names, None)  # unknown names fail here, before a model loads
    except ValidationError as exc:
        raise _fail(f"{exc.errors()[0]['loc'][-1]}: {exc.errors()[0]['msg']}") from None
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None

    async def run() -> None:
        gen = await asyncio.to_thread(load_generator, settings)
        ver = await asyncio.to_thread(load_configured_verifier, settings)
        try:
            await evaluate(
                problem_set, gen, ver, names, out, problem_set=problems, max_tokens=max_tokens, seed=seed,
                concurrency=concurrency, log=console.print,
            )  # fmt: skip
        finally:
            await gen.close()

    asyncio.run(run())


models_app = typer.Typer(help="The default model bundle.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _with_progress(pull: Any) -> Any:
    """Run ``pull(progress)`` with a download bar on stderr; bundle errors become a clean exit."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from mucode.server.engine.model_store import BundleError

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("model", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        try:
            return pull(progress)
        except BundleError as exc:
            raise _fail(str(exc)) from None


@models_app.command("pull")
def models_pull(
    hf: Annotated[bool, typer.Option("--hf", help="Also build the bf16 Hugging Face folder.")] = False,
) -> None:
    """Download, verify (sha256) and prepare the default model once, into the cache."""
    from mucode.server.engine.model_store import pull_gguf, pull_hf

    path = _with_progress(lambda progress: pull_hf(progress=progress) if hf else pull_gguf(progress=progress))
    console.print(str(path))


@models_app.command("install-checkpoint")
def models_install_checkpoint(
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
    from mucode.server.engine.checkpoint import install_checkpoint, shipped_checkpoint
    from mucode.server.engine.model_store import BundleError

    try:
        path = install_checkpoint(source or shipped_checkpoint(), target, base)
    except (BundleError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(str(path))


@app.command()
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

    from mucode.server.app import create_app
    from mucode.server.engine.loading import ensure_model

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
    _with_progress(lambda progress: ensure_model(settings.engine, progress))
    # access_log off: the server writes its own structured line per request (mucode.access).
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
    )


@app.command()
def worker(
    redis_url: Annotated[str | None, typer.Option(help="The server's Redis (MUCODE_REDIS_URL).")] = None,
    jobs: Annotated[int | None, typer.Option(help="Jobs at once (MUCODE_JOB_WORKERS).")] = None,
) -> None:
    """Run /v1/jobs solves from Redis on this machine, with its own model and sandbox; start as
    many as you like, anywhere that reaches the Redis. Settings as for `serve`."""
    import asyncio

    from mucode.server.engine.loading import ensure_model
    from mucode.server.runtime import Runtime

    settings = _server_settings({"redis_url": redis_url, "job_workers": jobs}, {})
    if not settings.redis_url:
        raise _fail("a worker needs Redis: set --redis-url or MUCODE_REDIS_URL")
    _with_progress(lambda progress: ensure_model(settings.engine, progress))

    async def run() -> None:
        runtime = Runtime(settings.model_copy(update={"job_workers": max(1, settings.job_workers)}))
        await runtime.start()
        try:
            await runtime.wait_ready()
            if runtime.model_state != "ready" or runtime.worker is None:
                raise _fail(f"the model did not load: {runtime.model_error}")
            logging.getLogger("mucode.server").info("worker ready: %s", runtime.health().model_dump_json())
            stop = asyncio.Event()  # jobs run on the runtime's worker until SIGTERM or Ctrl-C
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await runtime.close()

    asyncio.run(run())


def _server_settings(server: dict[str, Any], engine: dict[str, Any]) -> Any:
    """ServerSettings from MUCODE_* variables with the given (non-None) overrides; logging set up.
    A bad value is a one-line error, not a traceback."""
    from pydantic import ValidationError

    from mucode.server.engine.settings import EngineSettings
    from mucode.server.settings import ServerSettings

    try:
        overrides = {k: v for k, v in server.items() if v is not None}
        engine_overrides = {k: v for k, v in engine.items() if v is not None}
        if engine_overrides:
            overrides["engine"] = EngineSettings(**engine_overrides)
        settings = ServerSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"{first['loc'][-1]}: {first['msg']}") from None
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return settings


if __name__ == "__main__":
    app()
