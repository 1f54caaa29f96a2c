"""`mucode train iterate --iterations 2` end to end on tiny models the test builds, with a scripted
rollout policy that mixes right and wrong programs (so labels exist): the verifier separates
held-out code, SFT raises the likelihood of expert targets on held-out states, a crash injected
after a stage resumes without redoing finished stages, and `mucode serve --checkpoint` answers
/v1/solve with the trained generator and verifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("trl")

from mucode.engine.checkpoint import read_manifest
from mucode.engine.prompts import PROMPT_VERSION

from .helpers import free_port, run_cli, unset_env, wait_healthy
from .tiny_models import build_causal_lm, build_classifier
from .toy_problems import NAMES, right, toy_sft_rows, write_problems, wrong


def write_policy(path: Path) -> None:
    """Seeded sampling among right and wrong answers, per problem: some episodes fail at first
    and are fixed later, some never succeed."""
    script = {
        name: [[wrong(name), wrong(name), right(name)], [wrong(name), right(name)], [wrong(name)]]
        for name in NAMES
    }
    path.write_text(json.dumps({"seeded": True, "script": script}))


def iterate_args(tmp: Path) -> list[str]:
    return [
        "train", "iterate",
        "--problems", str(tmp / "problems.jsonl"),
        "--base", str(tmp / "generator-base"),
        "--verifier-base", str(tmp / "verifier-base"),
        "--out", str(tmp / "run"),
        "--iterations", "2",
        "--rollouts-per-problem", "4",
        "--max-tokens", "64",
        "--policy-script", str(tmp / "policy.json"),
        "--holdout", "0.34",
        "--sft-lr", "3e-3", "--sft-epochs", "3",
        "--verifier-lr", "3e-3", "--verifier-epochs", "4", "--pairs-per-problem", "8",
    ]  # fmt: skip


# Two iterations, a crash and a resume, then a live server: several minutes on 2 cores.
@pytest.mark.timeout(900)
def test_iterate_resumes_trains_and_serves(tmp_path: Path) -> None:
    build_causal_lm(tmp_path / "generator-base")
    build_classifier(tmp_path / "verifier-base")
    write_problems(tmp_path / "problems.jsonl")
    write_policy(tmp_path / "policy.json")
    run = tmp_path / "run"
    env = unset_env()

    crashed = run_cli(
        *iterate_args(tmp_path), env=env | {"MUCODE_TRAIN_FAIL_AFTER": "iter-1/verifier"}, timeout=600
    )
    assert crashed.returncode != 0
    assert "stopped after iter-1/verifier" in crashed.stderr
    assert (run / "iter-1" / "verifier.done").exists()
    assert not (run / "iter-1" / "relabel.done").exists()
    rollouts_mtime = (run / "iter-1" / "rollouts.jsonl").stat().st_mtime_ns
    verifier_mtime = (run / "iter-1" / "verifier" / "config.json").stat().st_mtime_ns

    done = run_cli(*iterate_args(tmp_path), env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    # The finished stages of iteration 1 were not redone.
    assert (run / "iter-1" / "rollouts.jsonl").stat().st_mtime_ns == rollouts_mtime
    assert (run / "iter-1" / "verifier" / "config.json").stat().st_mtime_ns == verifier_mtime
    assert "checkpoint:" in done.stdout

    manifest = read_manifest(run)
    assert manifest.generator == "iter-2/generator/model"
    assert manifest.verifier == "iter-2/verifier"
    assert manifest.prompt_version == PROMPT_VERSION  # served with the format it was trained on
    assert [m["iteration"] for m in manifest.iterations] == [1, 2]
    for m in manifest.iterations:
        episodes = m["rollouts"]
        assert episodes["episodes"] == 24
        assert 0 < episodes["success_rate"] < 1  # labels of both kinds
        assert m["verifier"]["auc"] is not None, m["verifier"]
        assert m["verifier"]["auc"] >= 0.8, m["verifier"]
        sft = m["sft"]
        assert sft["heldout_logprob_after"] > sft["heldout_logprob_before"], sft
        assert m["relabel"]["expert"] > 0
        assert m["relabel"]["own"] > 0
    # Iteration 2's verifier learned from both iterations' rollouts.
    assert (
        manifest.iterations[1]["verifier"]["train_examples"]
        >= manifest.iterations[0]["verifier"]["train_examples"]
    )

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mucode.cli", "serve", "--checkpoint", str(run), "--port", str(port)],
        env=env | {"MUCODE_SANDBOX_WORKERS": "1"},
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_healthy(url, server, tmp_path / "serve.log", timeout=120)
        assert health["generator"]["backend"] == "transformers"
        body = {
            "prompt": 'def sort_z(xs):\n    """Return the items of xs in increasing order."""\n',
            "tests": ["assert sort_z([2, 1]) == [1, 2]"],
            "options": {"n": 2, "turns": 1, "max_tokens": 32},
        }
        solved = httpx.post(url + "/v1/solve", json=body, timeout=120)
        assert solved.status_code == 200, solved.text
        trace = solved.json()
        assert trace["generator"].endswith("iter-2/generator/model")
        assert trace["verifier"].endswith("iter-2/verifier")
        # The tiny generator writes noise; the trained verifier still knows right from wrong.
        scored = httpx.post(
            url + "/v1/score",
            json={"prompt": body["prompt"], "candidates": [right("sort_z")[10:-4], wrong("sort_z")[10:-4]]},
            timeout=60,
        ).json()
        assert scored["verifier"].endswith("iter-2/verifier"), scored
        assert scored["ranking"] == [0, 1], scored
    finally:
        server.terminate()
        server.wait(30)


def roll_out(
    tmp_path: Path, per_problem: int, *options: str, out: str = "r.jsonl"
) -> tuple[dict[str, str], str, str]:
    """The toy problems rolled out by the policy in tmp_path/policy.json to tmp_path/OUT:
    (environment, problem set, what the command printed)."""
    write_problems(tmp_path / "problems.jsonl")
    env = unset_env()
    problems = str(tmp_path / "problems.jsonl")
    rolled = run_cli(
        "train", "rollouts", "--problems", problems, "--model", "unused", "--out", str(tmp_path / out),
        "--per-problem", str(per_problem), "--policy-script", str(tmp_path / "policy.json"), *options,
        env=env,
    )  # fmt: skip
    assert rolled.returncode == 0, rolled.stderr[-2000:]
    return env, problems, rolled.stdout


def test_sharded_rollouts_add_up_to_the_whole_run(tmp_path: Path) -> None:
    write_policy(tmp_path / "policy.json")
    roll_out(tmp_path, 2)
    for k in (0, 1, 2):
        roll_out(tmp_path, 2, "--shard", f"{k}/3", out=f"shards/shard-{k}.jsonl")  # a folder it makes

    def episodes(*names: str) -> list[tuple[Any, ...]]:
        rows = [json.loads(line) for name in names for line in (tmp_path / name).read_text().splitlines()]
        return sorted((r["problem_id"], r["index"], r["success"], r["trace"]["final_code"]) for r in rows)

    whole = episodes("r.jsonl")
    assert len(whole) == 12
    assert episodes("shards/shard-0.jsonl", "shards/shard-1.jsonl", "shards/shard-2.jsonl") == whole
    assert episodes("shards/shard-0.jsonl") != episodes("shards/shard-1.jsonl")
    bad = run_cli("train", "rollouts", "--problems", "x", "--model", "m", "--out", "o", "--shard", "3/3")
    assert bad.returncode == 2
    assert "expected K/N with 0 <= K < N" in " ".join(bad.stderr.split())


def stage_rows(env: dict[str, str], out: Path, *args: str) -> list[dict[str, Any]]:
    """Runs ``mucode train ARGS --out OUT`` and reads the JSONL rows it wrote."""
    done = run_cli("train", *args, "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_each_stage_runs_alone_from_the_cli(tmp_path: Path) -> None:
    build_causal_lm(tmp_path / "generator-base")
    write_policy(tmp_path / "policy.json")
    env, problems, printed = roll_out(tmp_path, per_problem=3)
    assert "18 episodes" in printed
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 18
    rolled = ("--problems", problems, "--rollouts", str(tmp_path / "r.jsonl"))
    rows = stage_rows(env, tmp_path / "sft.jsonl", "relabel", *rolled)
    assert rows
    assert all("sorted(xs)" in row["target"] for row in rows)  # every target is a correct program
    # The verifier's data from the same rollouts, a probe on the generator's base, its metrics.
    codes = stage_rows(env, tmp_path / "codes.jsonl", "codes", *rolled)
    assert {c["passed"] for c in codes} == {True, False}
    assert all(("sorted(xs)" in c["code"]) == c["passed"] for c in codes)  # the policy's right answers
    probed = run_cli(
        "train", "verifier", str(tmp_path / "codes.jsonl"), "--base", str(tmp_path / "generator-base"),
        "--out", str(tmp_path / "probe"), "--design", "probe", "--holdout", "0", env=env,
    )  # fmt: skip
    assert probed.returncode == 0, probed.stderr[-2000:]
    scored = run_cli(
        "train",
        "verifier-eval",
        str(tmp_path / "codes.jsonl"),
        "--verifier",
        str(tmp_path / "probe"),
        env=env,
    )
    assert scored.returncode == 0, scored.stderr[-2000:]
    metrics = json.loads(scored.stdout)
    assert (metrics["programs"], metrics["correct"]) == (len(codes), sum(c["passed"] for c in codes))
    assert metrics["auc"] > 0.9  # the programs it was fitted on
    assert metrics["seconds_per_program"] > 0
    tuned = run_cli(
        "train", "sft", str(tmp_path / "sft.jsonl"), "--base", str(tmp_path / "generator-base"),
        "--out", str(tmp_path / "gen"), "--lora", "--lr", "5e-3", "--epochs", "2", "--holdout", "0.34",
        env=env,
    )  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    report = json.loads(tuned.stdout)
    assert report["lora"]
    assert report["heldout_logprob_after"] > report["heldout_logprob_before"]
    adapter = sum(f.stat().st_size for f in (tmp_path / "gen" / "adapter").iterdir())
    assert (tmp_path / "gen" / "model" / "config.json").exists()
    assert adapter < 5_000_000


def test_reference_solutions_are_experts_where_no_rollout_was_right(tmp_path: Path) -> None:
    always_wrong = {"seeded": True, "script": {name: [[wrong(name)]] for name in NAMES}}
    (tmp_path / "policy.json").write_text(json.dumps(always_wrong))
    env, problems, printed = roll_out(tmp_path, per_problem=1)
    assert "0 solved" in printed
    targets = {}
    for flags in ([], ["--references"]):
        rolled = ("--problems", problems, "--rollouts", str(tmp_path / "r.jsonl"), *flags)
        rows = stage_rows(env, tmp_path / f"sft{len(flags)}.jsonl", "relabel", *rolled)
        targets[bool(flags)] = {row["target"] for row in rows}
    # Without references the best program known is a wrong one; with them, the reference.
    assert all("list(xs)" in t for t in targets[False])
    assert targets[True] == {right(name) for name in NAMES}
    # Correct experts only: nothing was right, so no rows teach a wrong program (written into a
    # folder the stage makes); with the references, the same rows as before.
    correct = ("--problems", problems, "--rollouts", str(tmp_path / "r.jsonl"), "--correct-only")
    assert stage_rows(env, tmp_path / "new" / "none.jsonl", "relabel", *correct) == []
    refs = stage_rows(env, tmp_path / "refs.jsonl", "relabel", *correct, "--references")
    assert refs == [json.loads(line) for line in (tmp_path / "sft1.jsonl").read_text().splitlines()]
    # The stage says how many of its rows teach the references' text.
    count = len((tmp_path / "sft1.jsonl").read_text().splitlines())
    done = run_cli("train", "relabel", *rolled, "--out", str(tmp_path / "again.jsonl"), env=env)
    assert f"{count} expert, {count} of them a reference solution" in done.stdout, done.stdout
    # The verifier's data gets the same positives: each sampled problem's reference, once.
    sampled = ("--problems", problems, "--rollouts", str(tmp_path / "r.jsonl"))
    codes = stage_rows(env, tmp_path / "codes.jsonl", "codes", *sampled)
    with_references = stage_rows(env, tmp_path / "codes-refs.jsonl", "codes", *sampled, "--references")
    assert not any(c["passed"] for c in codes)
    assert with_references[: len(codes)] == codes
    added = with_references[len(codes) :]
    assert len({c["problem_id"] for c in added}) == len(added) == len(NAMES)
    assert all(c["passed"] and "sorted(xs)" in c["code"] for c in added)


def test_a_state_that_failed_episodes_share_is_one_row(tmp_path: Path) -> None:
    """Two episodes of a problem that fail alike reach the same states; each becomes one row."""
    always_wrong = {"seeded": True, "script": {name: [[wrong(name)]] for name in NAMES}}
    counts = {}
    for per_problem in (1, 2):
        folder = tmp_path / str(per_problem)
        folder.mkdir()
        (folder / "policy.json").write_text(json.dumps(always_wrong))
        env, problems, _ = roll_out(folder, per_problem)
        rolled = ("--problems", problems, "--rollouts", str(folder / "r.jsonl"), "--references")
        counts[per_problem] = len(stage_rows(env, folder / "sft.jsonl", "relabel", *rolled))
    assert counts[2] == counts[1] > 0


def test_sft_runs_under_accelerate_launch_and_data_parallel_under_torchrun(tmp_path: Path) -> None:
    """The shipped accelerate config drives the same command, and so does torchrun with two
    data-parallel processes (DDP on GPUs and ZeRO-3 were not run here: no GPU)."""
    from mucode.problems import write_jsonl

    build_causal_lm(tmp_path / "base")
    rows = toy_sft_rows()
    write_jsonl(rows, tmp_path / "sft.jsonl")
    config = Path(__file__).resolve().parent.parent / "training" / "configs" / "cpu.yaml"
    sft = ["-m", "mucode.cli", "train", "sft", str(tmp_path / "sft.jsonl"), "--base", str(tmp_path / "base"),
           "--lr", "5e-3", "--epochs", "1"]  # fmt: skip
    launchers = {
        1: ["accelerate.commands.launch", "--config_file", str(config)],
        # Data parallel on the CPU: two processes over gloo, as on GPUs over NCCL.
        2: ["torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29511"],
    }
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    for processes, launcher in launchers.items():
        out = tmp_path / f"g{processes}"
        done = subprocess.run(
            [sys.executable, "-m", *launcher, *sft, "--out", str(out)],
            capture_output=True, text=True, timeout=600, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert (out / "model" / "config.json").exists()
        assert json.loads(done.stdout.split("\n}")[0] + "}")["processes"] == processes


def test_sft_saves_its_state_and_a_rerun_continues_from_it(tmp_path: Path) -> None:
    """A CPU run longer than a session: with checkpoint steps, a rerun into the same folder picks
    up the optimizer where the last saved state left it instead of starting over."""
    from mucode.training.sft import SFTConfig, train_generator

    build_causal_lm(tmp_path / "base")
    rows = toy_sft_rows()
    config = SFTConfig(
        base=str(tmp_path / "base"), out=tmp_path / "gen", lora=True, lr=5e-3, epochs=1,
        batch_size=2, checkpoint_steps=1, holdout=0.0,
    )  # fmt: skip
    steps = -(-len(rows) // 2)
    first = train_generator(rows, config)
    assert first.resumed_from_step is None
    assert first.train_seconds is not None
    assert 0 < first.train_seconds <= first.seconds  # the steps alone, within the stage's time
    assert first.train_tokens is not None
    assert first.train_tokens > 0
    trainer = tmp_path / "gen" / "trainer"
    assert [p.name for p in trainer.glob("checkpoint-*")] == [f"checkpoint-{steps}"]
    saved = json.loads((trainer / f"checkpoint-{steps}" / "mucode-elapsed.json").read_text())["seconds"]
    assert 0 < saved <= first.seconds
    # The run's report counts the sessions before the state it resumes from: pretend they were long.
    (trainer / f"checkpoint-{steps}" / "mucode-elapsed.json").write_text(json.dumps({"seconds": 10_000}))
    second = train_generator(rows, config.model_copy(update={"epochs": 2}))
    assert second.resumed_from_step == steps
    assert [p.name for p in trainer.glob("checkpoint-*")] == [f"checkpoint-{2 * steps}"]
    assert second.seconds > 10_000
    state = json.loads((trainer / f"checkpoint-{2 * steps}" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 2 * steps  # both invocations' steps, and the loss averages them all
    assert second.final_loss == pytest.approx(sum(losses) / len(losses))
    # Its own steps' tokens: the second epoch's rows, as many as the first's.
    assert second.train_tokens == first.train_tokens
    # Without checkpoint steps a run starts afresh whatever the folder holds.
    third = train_generator(rows, config.model_copy(update={"checkpoint_steps": 0}))
    assert third.resumed_from_step is None


def top_block_adapter(tmp_path: Path, out: Path) -> Any:
    """A tiny base in ``tmp_path`` and an SFT config training a LoRA on its top block into ``out``."""
    from mucode.training.sft import SFTConfig

    build_causal_lm(tmp_path / "base")
    return SFTConfig(
        base=str(tmp_path / "base"), out=out, lora=True, lora_layers=1, lr=5e-3, epochs=1, batch_size=2,
        holdout=0.4,
    )  # fmt: skip


def test_an_adapter_on_the_top_blocks_and_a_rerun_that_reuses_the_bases_heldout_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lora_layers` adapts every linear layer of the top blocks and nothing below; the base's
    held-out log-likelihood (a pass over the held-out rows) is measured once per folder and rows."""
    from safetensors.torch import load_file

    from mucode.training import sft
    from mucode.training.sft import train_generator

    passes: list[int] = []
    measure = sft.target_logprob

    def counted(model: Any, tokenizer: Any, rows: list[Any]) -> float | None:
        passes.append(len(rows))
        return measure(model, tokenizer, rows)

    monkeypatch.setattr(sft, "target_logprob", counted)
    rows = toy_sft_rows()
    config = top_block_adapter(tmp_path, tmp_path / "gen")
    first = train_generator(rows, config)
    weights = load_file(str(tmp_path / "gen" / "adapter" / "adapter_model.safetensors"))
    adapted = {(k.split(".layers.")[1].split(".")[0], k.split(".")[-3]) for k in weights}
    kinds = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert adapted == {("1", kind) for kind in kinds}  # block 1 of 0..1, every linear kind
    assert len(passes) == 2 and first.heldout_logprob_before is not None  # before and after
    assert first.lora_layers == 1 and first.precision in ("float32", "bfloat16")

    passes.clear()
    second = train_generator(rows, config)
    assert len(passes) == 1  # after only: the base's figure was kept
    assert second.heldout_logprob_before == first.heldout_logprob_before
    passes.clear()
    train_generator([r.model_copy(update={"target": r.target + "\n"}) for r in rows], config)
    assert len(passes) == 2  # the same problems with other targets: measured again


def test_scoring_only_the_answers_positions_trains_the_same_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a CPU, SFT switches TRL's fused head to score the answer's positions only: the same
    loss and weights as scoring every position, and TRL still has the switch it uses."""
    import contextlib

    import torch
    from safetensors.torch import load_file
    from trl.trainer import utils

    from mucode.training import sft
    from mucode.training.sft import SFTConfig, train_generator

    real = vars(utils).get("_use_triton")  # TRL's private switch
    assert callable(real)  # else the switch silently does nothing
    build_causal_lm(tmp_path / "base")
    config = SFTConfig(
        base=str(tmp_path / "base"), out=tmp_path / "a", lora=True, lr=5e-3, epochs=1, holdout=0.0
    )
    with sft._answer_positions_only():
        assert vars(utils)["_use_triton"](torch.device("cpu"))
    assert vars(utils)["_use_triton"] is real and not real(torch.device("cpu"))

    answers_only = train_generator(toy_sft_rows(), config)
    monkeypatch.setattr(sft, "_answer_positions_only", contextlib.nullcontext)
    every_position = train_generator(toy_sft_rows(), config.model_copy(update={"out": tmp_path / "b"}))
    assert answers_only.final_loss == pytest.approx(every_position.final_loss, rel=1e-5)
    a, b = (load_file(str(tmp_path / d / "adapter" / "adapter_model.safetensors")) for d in "ab")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_second_iteration_trains_on_from_the_first_ones_adapter(tmp_path: Path) -> None:
    """`init_adapter` (`train sft --init-adapter`): the next iteration starts from the last one's
    adapter — its held-out figure before training is the first's after — keeps its blocks, and
    ships as one adapter of the same base; without lora it is refused in one line."""
    from pydantic import ValidationError
    from safetensors.torch import load_file

    from mucode.training.sft import SFTConfig, train_generator

    rows = toy_sft_rows()
    first = top_block_adapter(tmp_path, tmp_path / "iter-1")
    one = train_generator(rows, first)
    second = first.model_copy(
        update={"out": tmp_path / "iter-2", "init_adapter": tmp_path / "iter-1" / "adapter"}
    )
    two = train_generator(rows, second)
    assert one.heldout_logprob_after is not None and two.heldout_logprob_before is not None
    assert two.heldout_logprob_before == pytest.approx(one.heldout_logprob_after, abs=1e-4)
    assert two.init_adapter == str(tmp_path / "iter-1" / "adapter") and two.lora_layers == 1
    a, b = (
        load_file(str(tmp_path / d / "adapter" / "adapter_model.safetensors")) for d in ("iter-1", "iter-2")
    )
    assert a.keys() == b.keys()  # the same blocks and modules
    assert any(not a[k].equal(b[k]) for k in a)  # trained on
    with pytest.raises(ValidationError, match="train with lora"):
        SFTConfig(base="b", out=tmp_path / "x", init_adapter=tmp_path / "iter-1" / "adapter")
