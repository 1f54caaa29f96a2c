"""Trained adapters that ship: `mucode train export` (a few MB, bf16, no machine paths) and
`mucode models install-checkpoint` (merged generator + verifier, used by default when present)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from mucode.engine.checkpoint import BUNDLED_BASE, Manifest, read_manifest, write_manifest
from mucode.engine.model_store import hf_folder

from .helpers import run_cli
from .tiny_models import build_causal_lm
from .toy_problems import toy_sft_rows


def lora_run(run: Path, base: Path) -> None:
    """A run folder as `mucode train iterate --lora` leaves it (adapters with non-zero updates)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(0)
    generator = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=2, target_modules="all-linear", init_lora_weights=False),
    )
    generator.save_pretrained(str(run / "iter-1" / "generator" / "adapter"))
    classifier = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    classifier.config.pad_token_id = 0
    verifier = get_peft_model(
        classifier, LoraConfig(task_type="SEQ_CLS", r=2, target_modules="all-linear", init_lora_weights=False)
    )
    verifier.save_pretrained(str(run / "iter-1" / "verifier"))
    write_manifest(
        run,
        Manifest(
            base_model=str(base),
            generator="iter-1/generator/model",
            generator_adapter="iter-1/generator/adapter",
            verifier="iter-1/verifier",
            prompt_version="mucode-chat-1",
            training_data=["humaneval:fold0 (first 12)", str(run / "iter-1" / "rollouts.jsonl")],
            iterations=[{"iteration": 1, "verifier": {"base": str(base), "auc": 0.9}}],
        ),
    )


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MUCODE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MUCODE_CHECKPOINT", raising=False)
    return tmp_path / "cache"


def test_export_then_install_serves_the_trained_pair_by_default(cache: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from mucode.engine.loading import load_configured_verifier, load_generator
    from mucode.engine.settings import EngineSettings
    from mucode.engine.verifier import TorchVerifier

    base = build_causal_lm(hf_folder())  # where `models pull --hf` puts the default model
    lora_run(tmp_path / "run", base)
    env = os.environ.copy()

    ship = ("train", "export", str(tmp_path / "run"), "--out", str(tmp_path / "ship"))
    wrong = run_cli(*ship, "--scope", "pandas", env=env)
    assert wrong.returncode != 0 and "data-libraries" in wrong.stderr and "Traceback" not in wrong.stderr
    exported = run_cli(*ship, "--scope", "data-libraries", env=env)
    assert exported.returncode == 0, exported.stderr[-2000:]
    shipped = read_manifest(tmp_path / "ship")
    assert shipped.generator_scope == "data-libraries"
    assert shipped.base_model == BUNDLED_BASE
    assert shipped.generator is None
    assert shipped.training_data == ["humaneval:fold0 (first 12)", "rollouts.jsonl"]
    for name in ("generator-adapter", "verifier"):
        config = json.loads((tmp_path / "ship" / name / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == BUNDLED_BASE
        weights = load_file(tmp_path / "ship" / name / "adapter_model.safetensors")
        assert weights
        assert all(w.dtype == torch.bfloat16 for w in weights.values())
        assert (tmp_path / "ship" / name / "adapter_model.safetensors").stat().st_mode & 0o777 == 0o644
    assert str(tmp_path) not in (tmp_path / "ship" / "mucode.json").read_text()
    assert shipped.iterations[0]["verifier"]["base"] == BUNDLED_BASE

    assert EngineSettings().resolved().checkpoint is None  # nothing installed yet
    installed = run_cli("models", "install-checkpoint", str(tmp_path / "ship"), "--base", str(base), env=env)
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert (cache / "checkpoint" / "mucode.json").is_file()

    # Unset MUCODE_CHECKPOINT: the installed checkpoint is the default generator and verifier.
    settings = EngineSettings(generator="transformers", dtype="float32").resolved()
    assert settings.checkpoint == str(cache / "checkpoint")
    assert settings.lora_scope == "data-libraries"  # installing keeps it
    assert settings.model == str((cache / "checkpoint" / "generator").resolve())
    merged = AutoModelForCausalLM.from_pretrained(settings.model)
    plain = AutoModelForCausalLM.from_pretrained(base)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(merged.state_dict()[name].float(), plain.state_dict()[name].float())
    generator = load_generator(settings)
    assert generator.backend == "transformers"
    assert generator.model == settings.model
    verifier = load_configured_verifier(settings)
    assert isinstance(verifier, TorchVerifier)
    scores = verifier.score_sync("def f(x): ...", ["def f(x):\n    return x + 1\n"])
    assert len(scores) == 1
    assert scores[0] == scores[0]  # a number, not NaN

    # `none` turns the default off; an explicit checkpoint or model still wins.
    assert EngineSettings(checkpoint="none").resolved().model is None
    assert EngineSettings(model="other").resolved().model == "other"


def test_export_refuses_a_full_fine_tune_and_install_a_folder_without_adapters(
    cache: Path, tmp_path: Path
) -> None:
    base = build_causal_lm(tmp_path / "base")
    (tmp_path / "full").mkdir()
    write_manifest(
        tmp_path / "full",
        Manifest(base_model=str(base), generator="g", verifier="v", prompt_version="mucode-chat-1"),
    )
    env = os.environ.copy()
    done = run_cli("train", "export", str(tmp_path / "full"), "--out", str(tmp_path / "ship"), env=env)
    assert done.returncode != 0
    assert "--lora" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_cli("models", "install-checkpoint", str(tmp_path / "nowhere"), env=env)
    assert done.returncode != 0
    assert "not a mucode checkpoint" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_probe_verifier_ships_alone_and_serves_beside_the_default_generator(
    cache: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import save_file

    from mucode.engine.loading import load_configured_verifier
    from mucode.engine.settings import EngineSettings
    from mucode.engine.verifier import PROBE_CONFIG, PROBE_WEIGHTS, ProbeVerifier, load_code_verifier

    base = build_causal_lm(hf_folder())
    run = tmp_path / "run"
    probe = run / "iter-1" / "verifier"
    probe.mkdir(parents=True)
    torch.manual_seed(0)
    width = 2 * 32 + 4  # two hidden states of the tiny model and the four likelihood features
    head = {
        "weight": torch.randn(width),
        "bias": torch.tensor(0.5),
        "mean": torch.randn(width),
        "scale": torch.rand(width) + 0.5,
    }
    save_file(head, str(probe / PROBE_WEIGHTS))
    (probe / PROBE_CONFIG).write_text(json.dumps({"base": str(base.resolve()), "max_length": 256}))
    write_manifest(
        run,
        Manifest(
            base_model=str(base),
            generator="iter-1/generator/model",  # a full fine-tune: too big to ship
            verifier="iter-1/verifier",
            prompt_version="mucode-chat-1",
            iterations=[{"iteration": 1, "verifier": {"base": str(base), "auc": 0.7}}],
        ),
    )
    env = os.environ.copy()
    whole = run_cli("train", "export", str(run), "--out", str(tmp_path / "ship"), env=env)
    assert whole.returncode != 0
    assert "--lora" in whole.stderr and "Traceback" not in whole.stderr
    bad = run_cli("train", "export", str(run), "--out", str(tmp_path / "ship"), "--parts", "weights", env=env)
    assert bad.returncode != 0
    assert "generator and/or verifier" in bad.stderr and "Traceback" not in bad.stderr

    done = run_cli(
        "train", "export", str(run), "--out", str(tmp_path / "ship"), "--parts", "verifier", env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shipped = read_manifest(tmp_path / "ship")
    assert (shipped.generator, shipped.generator_adapter, shipped.verifier) == (None, None, "verifier")
    assert json.loads((tmp_path / "ship" / "verifier" / PROBE_CONFIG).read_text())["base"] == BUNDLED_BASE
    assert str(tmp_path) not in "".join(p.read_text() for p in (tmp_path / "ship").rglob("*.json"))

    installed = run_cli("models", "install-checkpoint", str(tmp_path / "ship"), "--base", str(base), env=env)
    assert installed.returncode == 0, installed.stderr[-2000:]
    settings = EngineSettings().resolved()
    assert settings.checkpoint == str(cache / "checkpoint")
    assert settings.model is None  # the default generator stays, with its own prompt format
    assert settings.prompt_version is None
    assert settings.verifier == str((cache / "checkpoint" / "verifier").resolve())
    verifier = load_configured_verifier(settings)
    assert isinstance(verifier, ProbeVerifier)
    original = load_code_verifier(probe)
    assert original is not None
    codes = ["def f(x):\n    return x + 1\n", "def f(x):\n    return x\n"]
    # The shipped head is the trained one, bit for bit: the same scores as in the run folder.
    assert verifier.score_sync("def f(x): ...", codes) == original.score_sync("def f(x): ...", codes)


def test_a_checkpoint_with_a_gguf_lora_runs_on_llamacpp_over_the_bundled_gguf(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed checkpoint names its generator twice: merged (vLLM, transformers) and as a
    GGUF LoRA for the bundled GGUF, so a CPU server without vLLM keeps llama.cpp."""
    import importlib.util

    from mucode.engine import loading
    from mucode.engine.settings import EngineSettings

    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    write_manifest(
        checkpoint,
        Manifest(
            base_model=BUNDLED_BASE,
            generator="generator",
            generator_adapter="generator-adapter",
            generator_lora="generator-lora.gguf",
            prompt_version="mucode-chat-1",
        ),
    )
    settings = EngineSettings(checkpoint=str(checkpoint)).resolved()
    assert settings.model == str((checkpoint / "generator").resolve())
    assert settings.lora == str((checkpoint / "generator-lora.gguf").resolve())
    installed = {"llama_cpp"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name in installed else None)
    assert loading.resolve_backend(EngineSettings(checkpoint=str(checkpoint))) == "llama-cpp"
    installed.add("vllm")
    assert loading.resolve_backend(EngineSettings(checkpoint=str(checkpoint))) == "vllm"
    # An explicit model is served as given: the adapter is never put on another base.
    explicit = EngineSettings(checkpoint=str(checkpoint), model="/models/other.gguf").resolved()
    assert explicit.model == "/models/other.gguf" and explicit.lora is None
    # The adapter's scale is the user's to set, with or without a checkpoint; a negative one is refused.
    assert settings.lora_scale == 1.0
    monkeypatch.setenv("MUCODE_LORA_SCALE", "0.5")
    assert EngineSettings(checkpoint=str(checkpoint)).resolved().lora_scale == 0.5
    monkeypatch.setenv("MUCODE_LORA_SCALE", "-1")
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        EngineSettings(checkpoint=str(checkpoint))


def test_a_scoped_adapter_is_applied_to_the_problems_of_its_kind_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`generator_scope: data-libraries` (the shipped DataFrameBench adapter): every DataFrameBench
    problem names a data library and no HumanEval problem does, so the adapter reaches the first
    and leaves the second to the base model; a chat is scoped by its problem, not by the programs
    of later turns; the manifest sets it, MUCODE_LORA_SCOPE overrides it."""
    from mucode.engine.adapter_scope import chat_problem, in_scope
    from mucode.engine.settings import EngineSettings
    from mucode.engine.trace import ChatMessage
    from mucode.problems import load_humaneval
    from mucode.training.problems import load_problem_set

    assert not any(in_scope("data-libraries", p.prompt) for p in load_humaneval())
    for split in ("train", "val", "test", "test:polars"):
        problems = load_problem_set(f"dataframebench:{split}")
        assert problems and all(in_scope("data-libraries", p.prompt) for p in problems), split
    assert in_scope("all", "def add(a, b): ...")
    assert in_scope("data-libraries", "How do I pivot a DataFrame by month?")
    chat = [
        ChatMessage(role="system", content="You write Python."),
        ChatMessage(role="user", content="Write add(a, b)."),
        ChatMessage(role="assistant", content="import numpy as np\ndef add(a, b): return np.add(a, b)"),
        ChatMessage(role="user", content="Tests failed: numpy is not allowed."),
    ]
    assert chat_problem(chat) == "Write add(a, b)." and not in_scope("data-libraries", chat_problem(chat))

    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    manifest = Manifest(
        base_model=BUNDLED_BASE,
        generator_adapter="generator-adapter",
        generator_lora="generator-lora.gguf",
        generator_scope="data-libraries",
        prompt_version="mucode-chat-3",
    )
    write_manifest(checkpoint, manifest)
    assert EngineSettings(checkpoint=str(checkpoint)).resolved().lora_scope == "data-libraries"
    assert EngineSettings(checkpoint="none").resolved().lora_scope is None
    # A user's own adapter is not scoped by the checkpoint's.
    assert EngineSettings(checkpoint=str(checkpoint), lora="/x.gguf").resolved().lora_scope is None
    assert EngineSettings(checkpoint=str(checkpoint), model="/own.gguf").resolved().lora_scope is None
    monkeypatch.setenv("MUCODE_LORA_SCOPE", "all")
    assert EngineSettings(checkpoint=str(checkpoint)).resolved().lora_scope == "all"
    monkeypatch.setenv("MUCODE_LORA_SCOPE", "pandas")
    with pytest.raises(ValidationError, match="'all' or 'data-libraries'"):
        EngineSettings()
    # The shipped checkpoint is scoped so.
    shipped = Path(__file__).parents[1] / "mucode" / "checkpoints" / "dataframebench-sft"
    assert read_manifest(shipped).generator_scope == "data-libraries"


def test_a_generator_from_train_sft_ships_with_the_likelihood_verifier(cache: Path, tmp_path: Path) -> None:
    """`train sft --lora` leaves a generator checkpoint; `export --likelihood` pairs its adapter
    with the untrained verifier, which installs as a name and serves by default."""
    from mucode.engine.loading import load_configured_verifier
    from mucode.engine.settings import EngineSettings
    from mucode.engine.verifier import LikelihoodVerifier
    from mucode.problems import write_jsonl

    base = build_causal_lm(hf_folder())
    write_jsonl(toy_sft_rows(), tmp_path / "rows.jsonl")
    env = os.environ.copy()
    trained = run_cli(
        "train", "sft", str(tmp_path / "rows.jsonl"), "--base", str(base), "--out", str(tmp_path / "run"),
        "--lora", "--lr", "5e-3", "--epochs", "1", "--holdout", "0", env=env,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    run = read_manifest(tmp_path / "run")
    assert (run.generator, run.generator_adapter, run.verifier) == ("model", "adapter", None)
    assert run.training_data == [str(tmp_path / "rows.jsonl")]
    assert run.iterations[0]["sft"]["train_rows"] == len(toy_sft_rows())

    # Its verifier part is the likelihood or nothing: a run without one cannot ship one.
    done = run_cli("train", "export", str(tmp_path / "run"), "--out", str(tmp_path / "ship"), env=env)
    assert done.returncode != 0 and "--likelihood" in done.stderr and "Traceback" not in done.stderr
    done = run_cli(
        "train", "export", str(tmp_path / "run"), "--out", str(tmp_path / "ship"), "--likelihood", env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shipped = read_manifest(tmp_path / "ship")
    assert (shipped.base_model, shipped.verifier) == (BUNDLED_BASE, "likelihood")
    assert shipped.training_data == ["rows.jsonl"]
    assert sorted(p.name for p in (tmp_path / "ship").iterdir()) == ["generator-adapter", "mucode.json"]

    installed = run_cli("models", "install-checkpoint", str(tmp_path / "ship"), "--base", str(base), env=env)
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert read_manifest(cache / "checkpoint").verifier == "likelihood"
    settings = EngineSettings(generator="transformers", dtype="float32").resolved()
    assert settings.model == str((cache / "checkpoint" / "generator").resolve())
    assert settings.verifier == "likelihood"
    assert isinstance(load_configured_verifier(settings), LikelihoodVerifier)
