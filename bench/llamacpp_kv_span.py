"""What a llama.cpp decode step costs when every row's sequence holds a long context, with one KV
buffer for all sequences (``kv_unified``, what the batch decoder uses) against one stream per
sequence. In the shared buffer every row's attention walks the cells of all sequences (the others'
masked out); in a stream of its own, only its own.

    .venv/bin/python bench/llamacpp_kv_span.py [--rows 4,8,16] [--cells 1024] [--steps 16]

Each of R sequences first holds CELLS tokens (prefilled; in per-sequence streams they are
computed once for sequence 0 and copied to the others with ``llama_memory_seq_cp``, which is how
the samples of one request would share a prompt there; the first step after the copies pays for
them); then R rows decode together.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from _machine import machine

from mucode.engine.model_store import pull_gguf

CHUNK = 512


def decode(lc: Any, ctx: Any, batch: Any, rows: list[tuple[int, int, int]]) -> None:
    """One llama_decode of (token, position, sequence) rows, logits for the last row of each."""
    batch.n_tokens = len(rows)
    for i, (token, pos, seq) in enumerate(rows):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = i == len(rows) - 1 or rows[i + 1][2] != seq
    if lc.llama_decode(ctx, batch) != 0:
        raise RuntimeError("llama_decode failed")


def run(lc: Any, model: Any, rows: int, cells: int, steps: int, unified: bool) -> dict[str, float]:
    params = lc.llama_context_default_params()
    per_sequence = cells + steps + 256
    params.n_ctx = rows * per_sequence
    params.n_batch = params.n_ubatch = CHUNK
    params.n_seq_max = rows
    params.kv_unified = unified
    params.n_threads = params.n_threads_batch = len(os.sched_getaffinity(0))
    params.no_perf = True
    ctx = lc.llama_init_from_model(model, params)
    batch = lc.llama_batch_init(CHUNK, 0, 1)
    memory = lc.llama_get_memory(ctx)
    try:
        started = time.perf_counter()
        for seq in range(rows if unified else 1):
            for start in range(0, cells, CHUNK):
                chunk = range(start, min(cells, start + CHUNK))
                decode(lc, ctx, batch, [(100 + p % 1000, p, seq) for p in chunk])
        filled = time.perf_counter() - started
        started = time.perf_counter()
        if not unified:
            for seq in range(1, rows):
                lc.llama_memory_seq_cp(memory, 0, seq, -1, -1)
        decode(lc, ctx, batch, [(7, cells, seq) for seq in range(rows)])  # the copies land here
        first_step = time.perf_counter() - started
        started = time.perf_counter()
        for step in range(steps):
            decode(lc, ctx, batch, [(100 + step, cells + 1 + step, seq) for seq in range(rows)])
        step_ms = (time.perf_counter() - started) / steps * 1000
    finally:
        lc.llama_batch_free(batch)
        lc.llama_free(ctx)
    return {
        "step_ms": round(step_ms, 1),
        "ms_per_row": round(step_ms / rows, 2),
        "fill_s": round(filled, 1),
        "first_step_s": round(first_step, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gguf", default=None, help="default: the bundled model")
    parser.add_argument("--rows", default="4,8,16")
    parser.add_argument("--cells", type=int, default=1024, help="tokens each sequence holds")
    parser.add_argument("--steps", type=int, default=16)
    args = parser.parse_args()

    import llama_cpp as lc

    gguf = args.gguf or str(pull_gguf())
    llama = lc.Llama(model_path=gguf, n_ctx=512, n_batch=32, n_threads=1, verbose=False)
    results = {
        str(rows): {
            mode: run(lc, llama.model, rows, args.cells, args.steps, unified=mode == "shared_buffer")
            for mode in ("shared_buffer", "stream_per_sequence")
        }
        for rows in map(int, args.rows.split(","))
    }
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "gguf": os.path.basename(gguf),
        "cells_per_sequence": args.cells,
    }
    print(json.dumps(report | {"rows": results}, indent=2))


if __name__ == "__main__":
    main()
