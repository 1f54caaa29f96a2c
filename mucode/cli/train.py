"""``mucode train ...`` (µCode expert iteration and its stages) and ``mucode eval``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ._output import console, err_console, fail, stage_bars, user_errors

if TYPE_CHECKING:
    from mucode.engine.generators.base import Generator
    from mucode.training.rollouts import Rollout
    from mucode.training.schemas import LabeledCode

app = typer.Typer(help="Training: µCode expert iteration and its stages.", no_args_is_help=True)

PROBLEMS_HELP = (
    "humaneval:fold0, humaneval:fold1, humaneval (the 151 with public tests), humaneval:all (164), "
    "dataframebench:SPLIT or a JSONL file; add :no-tests to withhold the public tests."
)
PRECISION_HELP = "auto (bfloat16 autocast where the hardware computes in it), float32, or bfloat16."


def _policy(policy_script: Path | None) -> Callable[[str], Generator]:
    """Rollout generator factory: a scripted policy, or the model folder it is given."""

    def make(model: str) -> Generator:
        from mucode.engine.generators.scripted import ScriptedGenerator
        from mucode.engine.loading import load_generator
        from mucode.engine.settings import EngineSettings

        if policy_script is not None:
            return ScriptedGenerator.from_file(policy_script)
        return load_generator(EngineSettings(model=model))

    return make


@app.command("rollouts")
def rollouts_command(
    problems: Annotated[str, typer.Option(help=PROBLEMS_HELP)],
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
    shard: Annotated[
        str | None,
        typer.Option(
            help="K/N: only every N-th problem from the K-th (0-based), for N processes (one per GPU) "
            "writing N files; concatenated, they are the unsharded run's rows."
        ),
    ] = None,
) -> None:
    """Multi-turn episodes through the engine's search, labelled by the private tests."""
    import asyncio

    from mucode.training.problems import load_problem_set
    from mucode.training.rollouts import parse_shard, rollout_options, rollout_stage

    with user_errors():
        index, count = parse_shard(shard or "0/1")
        problem_set = load_problem_set(problems)[:limit][index::count]
    options = rollout_options(turns, temperature, max_tokens, seed)
    with stage_bars() as (_, progress):
        rollouts = asyncio.run(
            rollout_stage(
                problem_set, _policy(policy_script)(model), out, iteration=iteration,
                per_problem=per_problem, options=options, progress=progress, concurrency=concurrency,
            )
        )  # fmt: skip
    solved = sum(r.success for r in rollouts)
    console.print(f"{len(rollouts)} episodes, {solved} solved ({solved / len(rollouts):.0%}) -> {out}")


@app.command("relabel")
def relabel_command(
    problems: Annotated[str, typer.Option(help="The problem set the rollouts came from.")],
    rollouts: Annotated[
        list[Path], typer.Option(help="Rollout JSONL files (repeat: all iterations so far).")
    ],
    out: Annotated[Path, typer.Option(help="JSONL of SFT rows.")],
    verifier: Annotated[
        str | None, typer.Option(help="Verifier folder for tie-breaks (none: oracle only).")
    ] = None,
    references: Annotated[
        bool, typer.Option(help="The problems' reference solutions are candidate experts too.")
    ] = False,
    only_correct: Annotated[
        bool,
        typer.Option("--correct-only", help="Experts the oracle passed only: no rows teach a wrong program."),
    ] = False,
) -> None:
    """Local experts (100·oracle + verifier) and the SFT rows they give every state."""
    from mucode.engine.verifier import load_code_verifier
    from mucode.problems import write_jsonl
    from mucode.training.problems import load_problem_set
    from mucode.training.relabel import experts, reference_codes, relabel

    episodes, codes = _labeled(problems, rollouts)
    known = reference_codes(load_problem_set(problems)) if references else []
    with user_errors():
        scorer = load_code_verifier(verifier)
    # Rejection sampling's experts: wrong programs are never candidates (nor scored).
    candidates = [c for c in codes + known if c.passed or not only_correct]
    chosen = experts(candidates, scorer.score_sync if scorer else None)
    rows = relabel(episodes, chosen)
    write_jsonl(rows, out)
    own = sum(r.source == "own" for r in rows)
    # How much of the data is the reference solutions' text rather than the model's own programs.
    reference = {c.problem_id: c.code for c in known}
    quoted = sum(r.source == "expert" and chosen[r.problem_id] == reference.get(r.problem_id) for r in rows)
    console.print(
        f"{len(rows)} rows ({own} own, {len(rows) - own} expert, {quoted} of them a reference solution)"
        f" -> {out}"
    )


@app.command("sft")
def sft_command(
    rows: Annotated[Path, typer.Argument(help="JSONL of SFT rows (mucode train relabel).")],
    base: Annotated[str, typer.Option(help="The model to fine-tune.")],
    out: Annotated[Path, typer.Option(help="Output: OUT/model (merged HF folder), OUT/adapter with --lora.")],
    lora: Annotated[bool, typer.Option()] = False,
    lora_rank: Annotated[int, typer.Option()] = 16,
    lora_layers: Annotated[
        int | None, typer.Option(help="With --lora: adapt the top K blocks only (default: every block).")
    ] = None,
    init_adapter: Annotated[
        Path | None,
        typer.Option(
            help="With --lora: train on from this adapter of --base (an earlier iteration's OUT/adapter, "
            "a checkpoint's generator-adapter) instead of a fresh one."
        ),
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Default: 5e-7 (the paper's, full fine-tune), 1e-4 with --lora.")
    ] = None,
    epochs: Annotated[int, typer.Option()] = 2,
    batch_size: Annotated[
        int, typer.Option(help="Rows per optimizer step, over all processes under torchrun / accelerate.")
    ] = 4,
    micro_batch_size: Annotated[int, typer.Option(help="Rows per forward pass; raise it on GPUs.")] = 1,
    checkpoint_steps: Annotated[
        int,
        typer.Option(help="Save the trainer's state every K steps; a rerun into --out continues (0: never)."),
    ] = 0,
    gradient_checkpointing: Annotated[
        bool, typer.Option(help="Recompute activations in backward: memory for compute (TRL's default).")
    ] = False,
    precision: Annotated[str, typer.Option(help=PRECISION_HELP)] = "auto",
    holdout: Annotated[float, typer.Option()] = 0.2,
    seed: Annotated[int, typer.Option()] = 0,
    tensorboard: Annotated[bool, typer.Option()] = False,
) -> None:
    """TRL SFT with the loss on the assistant answers only; prints held-out log-likelihoods. OUT
    is a generator checkpoint (`mucode serve --checkpoint`, `mucode train export`).
    Data-parallel under `torchrun` or `accelerate launch` (training/configs/)."""

    from mucode.training.relabel import SFTRow
    from mucode.training.schemas import read_jsonl
    from mucode.training.sft import SFTConfig, train_generator, write_sft_checkpoint

    with user_errors():
        records = read_jsonl(rows, SFTRow)
        config = SFTConfig(
            base=base, out=out, lora=lora, lora_rank=lora_rank, lora_layers=lora_layers,
            init_adapter=init_adapter, lr=lr, epochs=epochs,
            batch_size=batch_size, micro_batch_size=micro_batch_size, checkpoint_steps=checkpoint_steps,
            gradient_checkpointing=gradient_checkpointing, precision=precision, holdout=holdout, seed=seed,
            report_to=["tensorboard"] if tensorboard else [],
        )  # fmt: skip
        report = train_generator(records, config)
        write_sft_checkpoint(config, report, str(rows))
    console.print_json(report.model_dump_json())


def _labeled(problems: str, rollouts: list[Path]) -> tuple[list[Rollout], list[LabeledCode]]:
    """The rollouts of these files and every distinct program in them with its oracle label."""
    from mucode.training.problems import load_problem_set
    from mucode.training.relabel import labeled_codes
    from mucode.training.rollouts import Rollout
    from mucode.training.schemas import read_jsonl

    with user_errors():
        prompts = {p.id: p.prompt for p in load_problem_set(problems)}
        episodes = [r for path in rollouts for r in read_jsonl(path, Rollout)]
        try:
            return episodes, labeled_codes(episodes, prompts)
        except KeyError as exc:
            raise fail(f"a rollout's problem {exc} is not in {problems}") from None


@app.command("codes")
def codes_command(
    problems: Annotated[str, typer.Option(help="The problem set the rollouts or traces came from.")],
    out: Annotated[Path, typer.Option(help="JSONL of LabeledCode: the verifier's data.")],
    rollouts: Annotated[
        list[Path] | None, typer.Option(help="Rollout JSONL files (repeat for several).")
    ] = None,
    traces: Annotated[
        list[Path] | None,
        typer.Option(
            help="Search traces instead (`mucode eval`'s OUT.CONFIG.traces.jsonl[.gz]), labelled here."
        ),
    ] = None,
    references: Annotated[
        bool,
        typer.Option(
            help="Add the reference solution of each problem the programs came from, labelled correct: "
            "a positive for every problem, where samples rarely pass."
        ),
    ] = False,
) -> None:
    """Every distinct program of rollouts or search traces with its oracle label, for `train
    verifier` and `train verifier-eval` (held-out problems give a held-out set)."""
    import asyncio

    from mucode.engine.trace import SolveResult
    from mucode.problems import write_jsonl
    from mucode.sandbox import SandboxPool
    from mucode.training.problems import load_problem_set
    from mucode.training.rollouts import label_traces
    from mucode.training.schemas import read_jsonl

    if bool(rollouts) == bool(traces):
        raise fail("give --rollouts or --traces (one of them)")
    if rollouts:
        _, codes = _labeled(problems, rollouts)
    else:
        with user_errors():
            by_id = {p.id: p for p in load_problem_set(problems)}
            searches = [t for path in traces or [] for t in read_jsonl(path, SolveResult)]
            if missing := {t.problem_id for t in searches} - set(by_id):
                raise fail(f"traces of problems not in {problems}: {', '.join(sorted(missing)[:5])}")

        async def label() -> list[LabeledCode]:
            async with SandboxPool() as pool:
                return await label_traces(searches, by_id, pool)

        codes = asyncio.run(label())
    if references:
        from mucode.training.relabel import reference_codes

        problem_ids = {c.problem_id for c in codes}
        seen = {(c.problem_id, c.code) for c in codes}  # a sample may be the reference itself
        codes += [
            c
            for c in reference_codes(load_problem_set(problems))
            if c.problem_id in problem_ids and (c.problem_id, c.code) not in seen
        ]
    write_jsonl(codes, out)
    right = sum(c.passed for c in codes)
    console.print(
        f"{len(codes)} programs ({right} correct) of {len({c.problem_id for c in codes})} problems -> {out}"
    )


@app.command("verifier-eval")
def verifier_eval_command(
    codes: Annotated[Path, typer.Argument(help="JSONL of LabeledCode the verifier never trained on.")],
    verifier: Annotated[Path, typer.Option(help="The verifier folder (either design).")],
) -> None:
    """Held-out pairwise accuracy (within each problem) and AUC of a trained verifier, and what
    scoring cost per program on this machine."""
    import time
    from collections import defaultdict

    from mucode.engine.verifier import load_code_verifier
    from mucode.training.schemas import LabeledCode, read_jsonl
    from mucode.training.verifier import heldout_metrics, sampled

    with user_errors():
        records = sampled(read_jsonl(codes, LabeledCode))  # reference solutions are not measured
        scorer = load_code_verifier(verifier)
    if scorer is None:
        raise fail("no verifier given")
    by_problem: dict[str, list[LabeledCode]] = defaultdict(list)
    for record in records:
        by_problem[record.problem_id].append(record)
    ordered = [c for group in by_problem.values() for c in group]
    started = time.perf_counter()
    scores = [
        s
        for group in by_problem.values()
        for s in scorer.score_sync(group[0].prompt, [c.code for c in group])
    ]
    seconds = time.perf_counter() - started
    metrics = heldout_metrics(ordered, scores)
    console.print_json(
        data={
            "verifier": str(verifier),
            "problems": len(by_problem),
            "programs": len(ordered),
            "correct": sum(c.passed for c in ordered),
            **metrics,
            "seconds_per_program": round(seconds / max(len(ordered), 1), 3),
        }
    )


@app.command("verifier")
def verifier_command(
    codes: Annotated[Path, typer.Argument(help="JSONL of LabeledCode: problem_id, prompt, code, passed.")],
    base: Annotated[str, typer.Option(help="Base model: HF folder or hub id.")],
    out: Annotated[Path, typer.Option(help="Where the verifier is saved (load it with MUCODE_VERIFIER).")],
    design: Annotated[
        str, typer.Option(help="classifier (fine-tuned model) or probe (a head on the frozen base's states).")
    ] = "classifier",
    loss: Annotated[
        str, typer.Option(help="bt (Bradley–Terry pairs), bce (pointwise), or bt+bce (both summed).")
    ] = "bt",
    lora: Annotated[bool, typer.Option(help="classifier: a LoRA adapter instead of the full model.")] = False,
    reg: Annotated[
        float, typer.Option(help="Penalty on the classifier's scores², or on the probe's weights².")
    ] = 1e-3,
    epochs: Annotated[int, typer.Option()] = 2,
    lr: Annotated[float, typer.Option()] = 1e-5,
    pairs_per_problem: Annotated[int, typer.Option()] = 32,
    batch_size: Annotated[
        int, typer.Option(help="Pairs (or codes) per optimizer step, over all processes under torchrun.")
    ] = 8,
    micro_batch_size: Annotated[
        int, typer.Option(help="Pairs (or codes) per forward pass; raise it on GPUs.")
    ] = 1,
    holdout: Annotated[float, typer.Option(help="Share of problems held out for the metrics.")] = 0.2,
    seed: Annotated[int, typer.Option()] = 0,
    precision: Annotated[str, typer.Option(help=f"classifier: {PRECISION_HELP}")] = "auto",
) -> None:
    """Train the verifier R(problem, code) on labelled programs; prints held-out pairwise accuracy
    and AUC, and saves a folder the server loads as its verifier. Data-parallel under `torchrun`
    or `accelerate launch` (classifier design)."""
    from rich.progress import Progress as Bar

    from mucode.training.schemas import LabeledCode, read_jsonl
    from mucode.training.verifier import VerifierConfig, train_verifier

    with user_errors():
        config = VerifierConfig(
            base=base, out=out, design=design, loss=loss, lora=lora, reg=reg, epochs=epochs, lr=lr,
            pairs_per_problem=pairs_per_problem, batch_size=batch_size, micro_batch_size=micro_batch_size,
            holdout=holdout, seed=seed, precision=precision,
        )  # fmt: skip
        records = read_jsonl(codes, LabeledCode)
    with Bar(console=err_console, transient=True) as bar:
        task = bar.add_task("verifier", total=None)
        with user_errors():
            report = train_verifier(
                records, config, lambda stage, done, total: bar.update(task, completed=done, total=total)
            )
    console.print_json(report.model_dump_json())


@app.command("export")
def export_command(
    run: Annotated[
        Path, typer.Argument(help="A run folder (`mucode train iterate`, or `train sft`'s --out).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the shippable checkpoint (replaced).")],
    parts: Annotated[
        str,
        typer.Option(
            help="What ships, comma-separated: generator (a LoRA adapter), verifier (LoRA or probe)."
        ),
    ] = "generator,verifier",
    likelihood: Annotated[
        bool,
        typer.Option(help="The verifier part is the untrained likelihood verifier, not the run's own."),
    ] = False,
    scope: Annotated[
        str | None,
        typer.Option(
            help="The problems a server applies the generator to (llama.cpp): all, or data-libraries "
            "(the rest get the base model). Default: the run's (all)."
        ),
    ] = None,
) -> None:
    """The run's generator adapter and verifier with a manifest: a few MB that ship and install
    anywhere (`mucode models install-checkpoint`). Ship only the part that won: `--parts verifier`
    keeps the default generator."""
    from mucode.training.export import export_checkpoint

    with user_errors():
        export_checkpoint(run, out, [p.strip() for p in parts.split(",") if p.strip()], likelihood, scope)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    console.print(f"{out} ({size / 1e6:.1f} MB)")


@app.command("iterate")
def iterate_command(
    problems: Annotated[str, typer.Option(help=PROBLEMS_HELP)],
    base: Annotated[str, typer.Option(help="The generator's base model (HF folder or hub id).")],
    out: Annotated[Path, typer.Option(help="Run folder; the checkpoint for `mucode serve --checkpoint`.")],
    iterations: Annotated[int, typer.Option()] = 2,
    verifier_base: Annotated[str | None, typer.Option(help="Verifier base (default: --base).")] = None,
    verifier_design: Annotated[
        str, typer.Option(help="classifier (fine-tuned) or probe (a head on the frozen base's states).")
    ] = "classifier",
    verifier_loss: Annotated[str, typer.Option(help="bt, bce, or bt+bce (see `train verifier`).")] = "bt",
    rollouts_per_problem: Annotated[int, typer.Option()] = 4,
    turns: Annotated[int, typer.Option()] = 3,
    temperature: Annotated[float, typer.Option()] = 0.7,
    max_tokens: Annotated[int, typer.Option(help="Tokens per rollout answer.")] = 768,
    lora: Annotated[bool, typer.Option(help="LoRA adapters for the generator and the verifier.")] = False,
    lora_rank: Annotated[int, typer.Option(help="Rank of both LoRA adapters.")] = 16,
    micro_batch_size: Annotated[
        int, typer.Option(help="Examples per forward pass (verifier, SFT); raise it on GPUs.")
    ] = 1,
    sft_lr: Annotated[
        float | None, typer.Option(help="Default: 5e-7 (the paper's, full fine-tune), 1e-4 with --lora.")
    ] = None,
    sft_epochs: Annotated[int, typer.Option()] = 2,
    sft_checkpoint_steps: Annotated[
        int, typer.Option(help="SFT saves its state every K steps; a rerun continues from it (0: never).")
    ] = 0,
    sft_lora_layers: Annotated[
        int | None, typer.Option(help="With --lora: the generator adapts its top K blocks only.")
    ] = None,
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
    reference_experts: Annotated[
        bool, typer.Option(help="The problems' reference solutions are candidate experts (relabel).")
    ] = False,
) -> None:
    """µCode expert iteration: rollouts, verifier, relabel, SFT, `--iterations` times; resumes a
    crashed run where it stopped. Prints a summary table and writes OUT/mucode.json."""

    from mucode.training.iterate import IterateConfig, StageFailure, iterate
    from mucode.training.problems import load_problem_set

    with user_errors():
        config = IterateConfig(
            problems=problems, base=base, verifier_base=verifier_base, verifier_design=verifier_design,
            verifier_loss=verifier_loss,
            out=out, iterations=iterations,
            rollouts_per_problem=rollouts_per_problem, turns=turns, temperature=temperature,
            max_tokens=max_tokens, lora=lora, lora_rank=lora_rank, micro_batch_size=micro_batch_size,
            sft_lr=sft_lr, sft_epochs=sft_epochs, sft_checkpoint_steps=sft_checkpoint_steps,
            sft_lora_layers=sft_lora_layers, verifier_lr=verifier_lr,
            verifier_epochs=verifier_epochs, pairs_per_problem=pairs_per_problem, holdout=holdout, seed=seed,
            report_to=["tensorboard"] if tensorboard else [], limit=limit,
            rollout_concurrency=rollout_concurrency, reference_experts=reference_experts,
        )  # fmt: skip
        problem_set = load_problem_set(problems)[:limit]

    with stage_bars() as (bar_console, progress), user_errors(StageFailure):
        manifest = iterate(config, problem_set, _policy(policy_script), progress, log=bar_console.print)
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


def eval_command(
    problems: Annotated[str, typer.Option(help=PROBLEMS_HELP)],
    out: Annotated[Path, typer.Option(help="Report JSON; rows and the PNG plot go next to it.")],
    configs: Annotated[
        str,
        typer.Option(
            help="Comma-separated: greedy-1, greedy-3, bon5-random, bon5-lv, bon5-pt, bon5-pt+lv, "
            "bon5-agree (execution agreement, for problems without tests); "
            "greedy-3-repeats and bon5-pt-repeats without refills, bon5-pt-sampled without the greedy "
            "candidate (the paper's loop)."
        ),
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

    from mucode.engine.loading import configured_prompt, load_configured_verifier, load_generator
    from mucode.engine.settings import EngineSettings
    from mucode.training.evaluate import EvaluationBusy, evaluate, one_writer, runnable
    from mucode.training.problems import load_problem_set

    overrides: dict[str, Any] = {
        "checkpoint": checkpoint,
        "generator": generator,
        "model": model,
        "verifier": verifier,
    }
    with user_errors():
        settings = EngineSettings(**{k: v for k, v in overrides.items() if v is not None})
        whole = load_problem_set(problems)
        problem_set = whole[:limit]
        names = [c for c in configs.split(",") if c]
        runnable(names, None)  # unknown names fail here, before a model loads
        with one_writer(out):  # and so does a second evaluation of the same OUT
            pass

    # Say what runs: a --limit past the set's end, or `humaneval` (151) taken for all 164, is
    # otherwise silent.
    console.print(f"{len(problem_set)} of the {len(whole)} problems of {problems}")

    async def run() -> None:
        gen = await asyncio.to_thread(load_generator, settings)
        ver = await asyncio.to_thread(load_configured_verifier, settings)
        try:
            await evaluate(
                problem_set, gen, ver, names, out, problem_set=problems, max_tokens=max_tokens, seed=seed,
                concurrency=concurrency, prompt=configured_prompt(settings), log=console.print,
            )  # fmt: skip
        finally:
            await gen.close()

    try:
        asyncio.run(run())
    except EvaluationBusy as busy:  # one that started while this model loaded
        raise fail(str(busy)) from None
