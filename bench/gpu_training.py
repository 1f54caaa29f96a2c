"""The training stages on a GPU, timed: the verifier (classifier by Bradley–Terry, and the probe)
and the generator's SFT (a full fine-tune), each run as ``mucode train`` runs it, with the
paper's settings, on the committed DataFrameBench train data; then both verifiers loaded as the
server loads them and timed per candidate.

A machine with no network and a 64 MiB upload (the GPU machine lent to some sessions) cannot
receive the weights, so ``--shape NAME=config.json`` builds a model of that architecture with
random weights: the times are real (a step costs the same whatever the weights' values), the
losses and the held-out metrics are not. ``--model NAME=FOLDER`` takes real weights where they
are at hand. The stages run in order for each model, each in its own process with a time limit,
and the report (OUT/report.json) is rewritten after every stage, so a run stopped early keeps
what finished.

    python bench/gpu_training.py --rows SFT.jsonl.gz --codes CODES.jsonl.gz --tokenizer DIR \\
        --shape qwen2.5-0.5b=config.json [--model NAME=FOLDER] --out OUT
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _machine import machine


def gpu() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"name": None, "torch": torch.__version__}
    props = torch.cuda.get_device_properties(0)
    return {
        "name": props.name,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "torch": torch.__version__,
    }


def random_model(config: Path, tokenizer: Path, folder: Path) -> Path:
    """A causal LM of ``config``'s architecture with random weights, and the tokenizer, in bf16."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    shape = AutoConfig.from_pretrained(config)
    auto: Any = AutoModelForCausalLM  # (transformers leaves from_config untyped)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = auto.from_config(shape, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer).save_pretrained(folder)
    return folder


def stage(name: str, command: list[str], timeout: float, log: Path) -> dict[str, Any]:
    """One ``mucode`` command in its own process: its wall time, exit status, the most GPU memory
    in use while it ran (nvidia-smi, every 0.5 s, where there is one) and its log."""
    started = time.perf_counter()
    smi = shutil.which("nvidia-smi")
    watch = (
        subprocess.Popen(
            [smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "500"],
            stdout=subprocess.PIPE,
            text=True,
        )
        if smi
        else None
    )
    with log.open("a") as out:
        out.write(f"\n== {name}: {' '.join(command)}\n")
        out.flush()
        try:
            code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = None
    result: dict[str, Any] = {
        "seconds": round(time.perf_counter() - started, 1),
        "exit": code if code is not None else "timeout",
    }
    if watch is not None:
        watch.terminate()
        readings = [int(line) for line in (watch.communicate()[0] or "").split() if line.isdigit()]
        result["peak_gpu_mib"] = max(readings, default=None)
    return result


def serving_cost(folder: Path, codes: list[Any], repeat: int) -> dict[str, Any]:
    """The verifier loaded as the server loads it, on the GPU: seconds per candidate, scoring a
    problem's candidates together as the search does."""
    import torch

    from mucode.engine.verifier import load_code_verifier

    verifier = load_code_verifier(folder)  # the GPU's when there is one
    assert verifier is not None
    by_problem: dict[str, list[Any]] = {}
    for c in codes:
        by_problem.setdefault(c.problem_id, []).append(c)
    groups = list(by_problem.values())[:repeat]
    verifier.score_sync(groups[0][0].prompt, [c.code for c in groups[0]])  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    scored = 0
    for group in groups:
        scored += len(verifier.score_sync(group[0].prompt, [c.code for c in group]))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {
        "candidates": scored,
        "problems": len(groups),
        "ms_per_candidate": round(1000 * seconds / scored, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=Path, required=True, help="SFT rows (mucode train relabel)")
    parser.add_argument("--codes", type=Path, required=True, help="labelled programs (mucode train codes)")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer folder for --shape models")
    parser.add_argument("--shape", action="append", default=[], help="NAME=config.json: random weights")
    parser.add_argument("--model", action="append", default=[], help="NAME=FOLDER: real weights")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--stages",
        default="verifier,probe,serve,sft",
        help="which, in this order (serve after the verifiers)",
    )
    parser.add_argument("--epochs", type=int, default=2, help="the paper's 2, for both stages")
    parser.add_argument("--sft-micro-batch", type=int, default=4)
    parser.add_argument("--verifier-micro-batch", type=int, default=8)
    parser.add_argument(
        "--verifier-processes",
        type=int,
        default=0,
        help="run the classifier verifier under torchrun with this many processes, as the recipe does "
        "(DDP over NCCL); 0: one plain process",
    )
    parser.add_argument("--stage-timeout", type=float, default=600)
    parser.add_argument("--serve-problems", type=int, default=20)
    args = parser.parse_args()

    from mucode.training.relabel import SFTRow
    from mucode.training.schemas import LabeledCode, read_jsonl

    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "stages.log"
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "gpu": gpu(),
        "sft_rows": len(read_jsonl(args.rows, SFTRow)),
        "models": {},
    }
    models: list[tuple[str, Path, bool]] = []
    for spec in args.shape:
        name, config = spec.split("=", 1)
        models.append((name, Path(config), True))
    for spec in args.model:
        name, folder = spec.split("=", 1)
        models.append((name, Path(folder), False))
    codes = read_jsonl(args.codes, LabeledCode)
    report["codes"] = {"programs": len(codes), "correct": sum(c.passed for c in codes)}
    mucode = [sys.executable, "-m", "mucode.cli", "train"]
    # The recipe trains the classifier under torchrun (DDP); every other stage is one process.
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node"]
    verifier_launcher = (
        [*torchrun, str(args.verifier_processes), *mucode[1:]] if args.verifier_processes else mucode
    )
    stages = args.stages.split(",")

    def save() -> None:
        (args.out / "report.json").write_text(json.dumps(report, indent=2))

    for name, source, random_weights in models:
        work = args.out / name
        entry: dict[str, Any] = {"random_weights": random_weights}
        report["models"][name] = entry
        started = time.perf_counter()
        base = random_model(source, args.tokenizer, work / "base") if random_weights else source
        entry["build_seconds"] = round(time.perf_counter() - started, 1)
        save()
        common = ["--base", str(base), "--epochs", str(args.epochs), "--batch-size", "32"]
        commands = {  # the paper's settings: full fine-tunes, 2 epochs, 32 pairs per problem
            "verifier": ["verifier", str(args.codes), *common, "--lr", "1e-6", "--pairs-per-problem", "32",
                         "--micro-batch-size", str(args.verifier_micro_batch)],
            "probe": ["verifier", str(args.codes), "--base", str(base), "--design", "probe",
                      "--batch-size", "16"],
            "sft": ["sft", str(args.rows), *common, "--lr", "5e-7",
                    "--micro-batch-size", str(args.sft_micro_batch)],
        }  # fmt: skip
        for step in stages:
            out = work / step
            if step == "serve":
                entry["serve"] = {
                    design: serving_cost(work / design, codes, args.serve_problems)
                    for design in ("verifier", "probe")
                    if (work / design / "config.json").exists() or (work / design / "probe.json").exists()
                }
            else:
                launcher = verifier_launcher if step == "verifier" else mucode
                entry[step] = stage(
                    step, [*launcher, *commands[step], "--out", str(out)], args.stage_timeout, log
                )
                if (out / "verifier-report.json").exists():
                    entry[step]["report"] = json.loads((out / "verifier-report.json").read_text())
                if (out / "mucode.json").exists():
                    entry[step]["report"] = json.loads((out / "mucode.json").read_text())["iterations"][0][
                        "sft"
                    ]
            save()
        shutil.rmtree(work, ignore_errors=True)  # the reports are kept; the weights are gigabytes
    save()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
