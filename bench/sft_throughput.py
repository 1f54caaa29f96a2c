"""What one SFT pass costs on this machine: forward and backward of the generator with a LoRA
adapter on rows of an SFT file (``mucode train relabel``), in tokens per second, for adapters on
every layer and on the top K layers only (the gradient then stops K layers down), and what one
epoch of the whole file would take at that rate.

    .venv/bin/python bench/sft_throughput.py --rows SFT.jsonl [--count 6] [--layers all,8,4]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from _machine import machine

from mucode.engine.model_store import pull_hf
from mucode.training.relabel import SFTRow
from mucode.training.schemas import read_jsonl
from mucode.training.sft import lora_config


def encode(tokenizer: Any, row: SFTRow, max_length: int) -> tuple[list[int], int]:
    """The row's tokens (cut to ``max_length``) and where its answer starts."""
    context = tokenizer.apply_chat_template(
        [m.model_dump() for m in row.messages], tokenize=False, add_generation_prompt=True
    )
    whole = tokenizer.apply_chat_template(row.conversation(), tokenize=False)
    ids = tokenizer(whole).input_ids[:max_length]
    return ids, min(len(tokenizer(context).input_ids), len(ids) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", required=True, help="SFT rows (JSONL of SFTRow)")
    parser.add_argument("--base", default=None, help="default: the bundled model (HF folder)")
    parser.add_argument("--count", type=int, default=6, help="rows timed per setting (after one warm-up)")
    parser.add_argument("--layers", default="all,8,4", help="adapted layers: all, or the top K")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument(
        "--precisions", default="float32", help="float32, and/or bfloat16 (autocast over float32 weights)"
    )
    args = parser.parse_args()

    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = args.base or str(pull_hf())
    tokenizer = AutoTokenizer.from_pretrained(base)
    rows = read_jsonl(args.rows, SFTRow)
    encoded = [encode(tokenizer, r, args.max_length) for r in rows]
    timed = encoded[: args.count + 1]
    torch.manual_seed(0)
    results = {}
    settings = [(layers, p) for layers in args.layers.split(",") for p in args.precisions.split(",")]
    for layers, precision in settings:
        plain = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        top = None if layers == "all" else int(layers)
        model = get_peft_model(plain, lora_config(plain, args.rank, top))
        # What the trainer's bf16=True does on a CPU: float32 weights, bfloat16 matrix products.
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16")
        tokens, seconds = 0, 0.0
        for k, (ids, answer_start) in enumerate(timed):
            input_ids = torch.tensor([ids])
            labels = input_ids.clone()
            labels[0, :answer_start] = -100
            start = time.perf_counter()
            with autocast:
                loss = model(input_ids=input_ids, labels=labels).loss
            loss.backward()
            model.zero_grad(set_to_none=True)
            if k > 0:  # the first row warms the allocator and the kernels
                tokens, seconds = tokens + len(ids), seconds + time.perf_counter() - start
        rate = tokens / seconds
        results[f"{layers}/{precision}"] = {
            "tokens_per_s": round(rate, 1),
            "s_per_row": round(seconds / (len(timed) - 1), 2),
            "hours_per_epoch": round(sum(len(ids) for ids, _ in encoded) / rate / 3600, 2),
        }
        del model, plain
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "rows": len(rows),
        "tokens": sum(len(ids) for ids, _ in encoded),
        "timed_rows": len(timed) - 1,
        "rank": args.rank,
        "max_length": args.max_length,
        "settings": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
