"""What one llama.cpp decode step costs for 1 to 16 rows: the measurement behind the batching
numbers in docs/benchmarks.md. Each row is a token of a different sequence at position 100+ (the
cache holds 100 earlier tokens per sequence), with logits for every row or for one row only (the
difference is the output layer's cost per sampled row), and what reading one sampled token's
log-probability from a row's logits costs (the likelihood verifier's input, read every token).
With ``--lora``, the same steps again with a GGUF LoRA adapter applied (a trained generator), and
with the adapter switched on or off before every step (what a server with a scoped adapter,
``MUCODE_LORA_SCOPE``, pays for each pass when both kinds of problem are decoding).

    .venv/bin/python bench/llamacpp_steps.py [--gguf FILE] [--lora ADAPTER.gguf] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _machine import machine

from mucode.engine.generators.llamacpp_batch import load_lora, set_lora, token_logprob
from mucode.engine.model_store import pull_gguf

ROWS = (1, 2, 4, 5, 8, 16)


def step_ms(
    lc: Any,
    ctx: Any,
    batch: Any,
    rows: int,
    all_logits: bool,
    steps: int,
    before: Callable[[int], None] = lambda step: None,
) -> float:
    lc.llama_memory_clear(lc.llama_get_memory(ctx), True)
    warm = 100
    for step in range(warm + steps):
        if step == warm:
            start = time.perf_counter()
        before(step)
        batch.n_tokens = rows
        for row in range(rows):
            batch.token[row] = 100 + step
            batch.pos[row] = step
            batch.n_seq_id[row] = 1
            batch.seq_id[row][0] = row
            batch.logits[row] = all_logits or row == 0
        if lc.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
    return round((time.perf_counter() - start) / steps * 1000, 1)


def logprob_ms(lc: Any, ctx: Any, rows: int, n_vocab: int) -> float:
    """What reading a sampled token's log-probability costs per row (``token_logprob``: one
    log-softmax over the vocabulary in numpy), after a step with logits for every row."""
    start = time.perf_counter()
    for row in range(rows):
        token_logprob(np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, row), shape=(n_vocab,)), 100)
    return round((time.perf_counter() - start) / rows * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gguf", default=None, help="default: the bundled model")
    parser.add_argument("--lora", default=None, help="a GGUF LoRA adapter for the model")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    import llama_cpp as lc

    gguf = args.gguf or str(pull_gguf())
    llama = lc.Llama(model_path=gguf, n_ctx=512, n_batch=32, n_threads=1, verbose=False)
    params = lc.llama_context_default_params()
    params.n_ctx = 8192
    params.n_batch = params.n_ubatch = 512
    params.n_seq_max = max(ROWS)
    params.kv_unified = True
    params.n_threads = params.n_threads_batch = len(os.sched_getaffinity(0))
    ctx = lc.llama_init_from_model(llama.model, params)
    batch = lc.llama_batch_init(512, 0, max(ROWS))
    try:
        n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(llama.model))
        rows = {
            str(n): {
                "ms_all_logits": step_ms(lc, ctx, batch, n, True, args.steps),
                "ms_logprob_per_row": logprob_ms(lc, ctx, n, n_vocab),
                "ms_one_logit": step_ms(lc, ctx, batch, n, False, args.steps),
            }
            for n in ROWS
        }
        if args.lora:
            adapter = load_lora(llama.model, args.lora)
            set_lora(ctx, adapter)
            for n in ROWS:
                rows[str(n)]["ms_one_logit_lora"] = step_ms(lc, ctx, batch, n, False, args.steps)

            def switch(step: int) -> None:
                set_lora(ctx, adapter if step % 2 else None)

            for n in ROWS:
                rows[str(n)]["ms_one_logit_switching"] = step_ms(lc, ctx, batch, n, False, args.steps, switch)
    finally:
        lc.llama_batch_free(batch)
        lc.llama_free(ctx)
    report = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "gguf": os.path.basename(gguf)}
    if args.lora:
        report["lora"] = os.path.basename(args.lora)
    print(json.dumps(report | {"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
