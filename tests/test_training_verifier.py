"""Verifier training on a tiny classifier the test builds (no download): Bradley–Terry (full and
LoRA) and BCE separate held-out correct from incorrect code, and the server loads the result."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from mucode.engine.verifier import load_code_verifier
from mucode.problems import Problem
from mucode.training.schemas import LabeledCode
from mucode.training.verifier import (
    VerifierConfig,
    auc,
    heldout_metrics,
    probe_features,
    sample_pairs,
    train_verifier,
)

from .tiny_models import build_causal_lm, build_classifier


def labeled_codes(problems: int = 15) -> list[LabeledCode]:
    """Correct programs sort, incorrect ones do not: a pattern that holds across problems."""
    codes = []
    for k in range(problems):
        prompt = f"def f{k}(xs):\n    '''Return xs sorted, problem {k}.'''\n"
        for j in range(3):
            codes.append(
                LabeledCode(
                    problem_id=f"p{k}",
                    prompt=prompt,
                    code=f"def f{k}(xs):\n    return sorted(xs){' ' * j}",
                    passed=True,
                )
            )
            codes.append(
                LabeledCode(
                    problem_id=f"p{k}",
                    prompt=prompt,
                    code=f"def f{k}(xs):\n    return list(xs)[{j}:]",
                    passed=False,
                )
            )
    return codes


def test_pairs_are_seeded_and_within_a_problem() -> None:
    codes = labeled_codes(4)
    pairs = sample_pairs(codes, per_problem=5, seed=1)
    assert pairs == sample_pairs(codes, per_problem=5, seed=1)
    assert len(pairs) == 4 * 5
    assert all(p.problem_id[1:] in p.chosen.split("(")[0] for p in pairs)
    assert all("sorted" in p.chosen and "sorted" not in p.rejected for p in pairs)
    assert auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert auc([0.1], [True]) is None


def test_held_out_metrics_say_what_choosing_by_the_scores_buys() -> None:
    codes = labeled_codes(2)  # per problem: three correct programs, three incorrect ones
    # Problem 0: a wrong program scores highest; problem 1: a right one ties with a wrong one.
    scores = [*[0.1, 0.9, 0.2, 0.0, 0.3, 0.0], *[0.5, 0.5, 0.1, 0.0, 0.2, 0.0]]
    metrics = heldout_metrics(codes, scores)
    assert metrics["selected_pass_rate"] == pytest.approx((0.0 + 0.5) / 2)
    assert metrics["random_pass_rate"] == pytest.approx(0.5)
    assert heldout_metrics(codes, [1.0 if c.passed else 0.0 for c in codes])["selected_pass_rate"] == 1.0


@pytest.mark.parametrize(
    ("design", "loss", "lora"),
    [
        ("classifier", "bt", False),
        ("classifier", "bt", True),
        ("classifier", "bce", False),
        ("classifier", "bt+bce", True),
        ("probe", "bt", False),
        ("probe", "bce", False),
        ("probe", "bt+bce", False),
    ],
)
def test_verifier_separates_held_out_code_and_loads_in_the_server(
    tmp_path: Path, design: str, loss: str, lora: bool
) -> None:
    base = (build_causal_lm if design == "probe" else build_classifier)(tmp_path / "base")
    config = VerifierConfig(
        base=str(base), out=tmp_path / "verifier", design=design, loss=loss, lora=lora,
        lr=3e-3, epochs=4, pairs_per_problem=6, batch_size=6, holdout=0.2, max_length=128,
    )  # fmt: skip
    samples = labeled_codes()
    # A reference per problem trains like any correct program but is never measured.
    references = [
        c.model_copy(update={"code": c.code + "  # reference", "reference": True}) for c in samples[::6]
    ]
    report = train_verifier(samples + references, config)
    assert report.design == design
    assert report.heldout_problems == 3
    assert report.heldout_programs == 3 * 6
    assert report.train_problems == 12
    assert report.auc is not None, report
    assert report.auc > 0.8, report
    assert report.pairwise_accuracy is not None
    assert report.pairwise_accuracy > 0.8
    saved = "probe.json" if design == "probe" else "adapter_config.json" if lora else "config.json"
    assert (config.out / saved).exists()
    verifier = load_code_verifier(config.out)
    assert verifier is not None
    problem = Problem(id="new", prompt="def g(xs):\n    '''Return xs sorted.'''\n", entry_point="g")
    codes = ["def g(xs):\n    return sorted(xs)", "def g(xs):\n    return list(xs)[1:]"]
    good, bad = asyncio.run(verifier.score_codes(problem, codes))
    assert good > bad


def test_a_long_input_loses_the_start_of_the_problem_not_the_code(tmp_path: Path) -> None:
    """The classifier reads its score at the last token: truncation must keep the code's end."""
    verifier = load_code_verifier(build_classifier(tmp_path / "classifier"))
    assert verifier is not None
    verifier.max_length = 48
    code = "def f(x):\n    return x + 1"
    padding = "Some words of the problem statement. " * 40
    problems = ["Add one. " + padding, "Add two. " + padding]  # differ only where truncation cuts
    same = [verifier.score_sync(p, [code])[0] for p in problems]
    assert same[0] == pytest.approx(same[1], abs=1e-5)
    other = verifier.score_sync(problems[0], ["def f(x):\n    return x - 1"])[0]
    assert other != pytest.approx(same[0], abs=1e-5)  # the code's tokens are still read


def test_probe_features_read_the_code_and_its_likelihood(tmp_path: Path) -> None:
    """The code's tokens are found under left truncation, and the likelihood features are the
    base model's own token log-probabilities of the code."""
    import math

    import torch

    from mucode.engine.verifier import load_probe_base, program_features, verifier_input

    model, tokenizer = load_probe_base(build_causal_lm(tmp_path / "base"))
    code = "def f(x):\n    return x + 1"
    short, long = verifier_input("Add one.", code), verifier_input("Add one. " * 200, code)
    with torch.inference_mode():
        features = program_features(model, tokenizer, [short, long], max_length=64)
        ids = tokenizer(short, return_tensors="pt")
        whole = model(**ids, output_hidden_states=True)  # one plain pass over the whole text
        logprobs = torch.log_softmax(whole.logits[0, :-1], dim=-1)
        taken = logprobs.gather(1, ids["input_ids"][0, 1:].unsqueeze(1)).squeeze(1)
        states = whole.hidden_states[-1][0]
    hidden = model.config.hidden_size
    assert features.shape == (2, 2 * hidden + 4)
    assert torch.isfinite(features).all()
    # The code and the closing fence after it: the same tokens at the end of both texts.
    code_tokens = len(tokenizer(short[short.index("def f") :])["input_ids"])
    assert features[0, -1].item() == pytest.approx(math.log(code_tokens), abs=math.log(2))
    assert features[1, -1].item() == pytest.approx(features[0, -1].item())
    n = round(math.exp(features[0, -1].item()))
    assert features[0, -4].item() == pytest.approx(float(taken[-n:].mean()), rel=1e-4)
    assert features[0, -3].item() == pytest.approx(float(taken[-n:].min()), rel=1e-4)
    # The problem's tokens were read in a pass of their own: the states are still the plain pass's.
    assert torch.allclose(features[0, :hidden], states[-1], atol=1e-4)
    assert torch.allclose(features[0, hidden : 2 * hidden], states[-n:].mean(dim=0), atol=1e-4)
    # Candidates for one problem share that pass; each gets what it gets alone.
    candidates = [short, verifier_input("Add one.", "def f(x):\n    y = x\n    return y + 1"), long]
    with torch.inference_mode():
        shared = program_features(model, tokenizer, candidates, max_length=64)
        apart = torch.cat([program_features(model, tokenizer, [text], 64) for text in candidates])
    assert torch.allclose(shared, apart, atol=1e-4)
    # Batched by length, returned in the caller's order.
    texts = [long, short, verifier_input("Add two.", "def f(x):\n    return x + 2")]
    config = VerifierConfig(base="unused", out=tmp_path, batch_size=2, max_length=64)
    together = probe_features(model, tokenizer, texts, config)
    with torch.inference_mode():
        alone = torch.cat([program_features(model, tokenizer, [text], 64) for text in texts])
    assert torch.allclose(together, alone, atol=1e-4)


def test_cli_trains_a_verifier_and_reports_bad_input(tmp_path: Path) -> None:
    import json

    from mucode.problems import write_jsonl

    from .helpers import run_cli

    base = build_classifier(tmp_path / "base")
    write_jsonl(labeled_codes(10), tmp_path / "codes.jsonl")
    done = run_cli(
        "train", "verifier", str(tmp_path / "codes.jsonl"), "--base", str(base), "--out", str(tmp_path / "v"),
        "--epochs", "3", "--lr", "3e-3", "--pairs-per-problem", "4", "--holdout", "0.3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["loss"] == "bt"
    assert report["heldout_problems"] == 3
    assert report["auc"] is not None
    assert (tmp_path / "v" / "verifier-report.json").exists()
    probe = run_cli(
        "train", "verifier", str(tmp_path / "codes.jsonl"), "--base", str(base), "--out", str(tmp_path / "p"),
        "--design", "probe", "--holdout", "0.3",
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert json.loads(probe.stdout)["design"] == "probe"
    assert (tmp_path / "p" / "probe.safetensors").exists()
    (tmp_path / "bad.jsonl").write_text('{"problem_id": "p", "prompt": "x", "code": "y"}\n')
    bad = run_cli(
        "train", "verifier", str(tmp_path / "bad.jsonl"), "--base", str(base), "--out", str(tmp_path / "w")
    )
    message = " ".join(bad.stderr.split())
    assert bad.returncode != 0
    assert "bad.jsonl:1: not a valid LabeledCode: passed: Field required" in message
    assert "Traceback" not in bad.stderr


def test_verifier_trains_data_parallel_under_torchrun(tmp_path: Path) -> None:
    """Two CPU processes (DDP over gloo) take the same optimizer steps as one: each trains on its
    half of every batch and the averaged gradients add up to the batch's."""
    import json
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    from mucode.problems import write_jsonl

    base = build_classifier(tmp_path / "base")
    write_jsonl(labeled_codes(10), tmp_path / "codes.jsonl")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    weights, losses = {}, {}
    for processes in (1, 2):
        out = tmp_path / f"v{processes}"
        done = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
             "--master_port", str(29500 + processes), "-m", "mucode.cli", "train", "verifier",
             str(tmp_path / "codes.jsonl"), "--base", str(base), "--out", str(out), "--epochs", "2",
             "--lr", "3e-3", "--pairs-per-problem", "4", "--batch-size", "6", "--holdout", "0.3",
             # the sums agree to float32's rounding; bfloat16's differs with the shard size
             "--precision", "float32"],
            capture_output=True, text=True, timeout=600, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads((out / "verifier-report.json").read_text())
        assert report["train_examples"] == 28 and report["auc"] is not None
        assert report["processes"] == processes
        weights[processes] = load_file(out / "model.safetensors")
        losses[processes] = report["final_loss"]
    assert losses[2] == pytest.approx(losses[1], rel=1e-4)
    assert weights[1].keys() == weights[2].keys()
    changed = load_file(base / "model.safetensors")
    assert any(not torch_equal(weights[1][k], changed[k]) for k in changed if k in weights[1])
    for name, tensor in weights[1].items():
        assert torch_close(tensor, weights[2][name]), name


def torch_equal(a: Any, b: Any) -> bool:
    import torch

    return bool(torch.equal(a, b))


def torch_close(a: Any, b: Any) -> bool:
    import torch

    return bool(torch.allclose(a, b, atol=1e-5, rtol=1e-4))
