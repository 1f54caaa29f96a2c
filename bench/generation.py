"""Generation speed of each installed backend, in one run, next to the memory-bandwidth bound.

For every backend that is installed (vllm, llama-cpp, transformers bf16):
  * one prompt, n=5, exactly --tokens new tokens each (end of sequence suppressed);
  * 16 different prompts, one sample each, --tokens each.
Reports aggregate completion tokens per second, the machine's measured copy bandwidth, and the
single-stream bound it implies (bandwidth / bytes of weights read per token).

    .venv/bin/python bench/generation.py [--tokens 128] [--backends vllm,llama-cpp,transformers]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import time
from typing import Any

import numpy as np

from mucode.engine import prompts
from mucode.engine.generators.base import Generator, SamplingParams
from mucode.engine.loading import load_generator
from mucode.engine.model_store import GGUF_SIZE
from mucode.engine.settings import EngineSettings
from mucode.problems import load_humaneval

BF16_WEIGHTS_BYTES = 630_000_000 * 2  # 630M parameters once dequantised


def copy_bandwidth_gb_s(size_mb: int = 1024, repeats: int = 5) -> float:
    """Read + write bytes per second of a large array copy (the best of a few)."""
    source = np.ones(size_mb * 1024 * 1024 // 8)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return 2 * source.nbytes / best / 1e9


async def measure(generator: Generator, tokens: int) -> dict[str, Any]:
    problems = load_humaneval()[:16]
    chats = [prompts.DEFAULT.first_turn(p) for p in problems]
    one = SamplingParams(n=5, temperature=0.7, top_p=0.95, max_tokens=tokens, seed=1, ignore_eos=True)
    await generator.sample(chats[0], SamplingParams(n=1, max_tokens=8, seed=0))  # warm-up
    start = time.perf_counter()
    completions = await generator.sample(chats[0], one)
    n5_s = time.perf_counter() - start
    n5_tokens = sum(c.completion_tokens for c in completions)
    single = SamplingParams(n=1, temperature=0.7, top_p=0.95, max_tokens=tokens, seed=2, ignore_eos=True)
    start = time.perf_counter()
    batch = await asyncio.gather(*(generator.sample(chat, single) for chat in chats))
    batch_s = time.perf_counter() - start
    batch_tokens = sum(c.completion_tokens for cs in batch for c in cs)
    return {
        "backend": generator.description,
        "n5_tokens": n5_tokens,
        "n5_tok_per_s": round(n5_tokens / n5_s, 1),
        "batch16_tokens": batch_tokens,
        "batch16_tok_per_s": round(batch_tokens / batch_s, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per sample")
    parser.add_argument("--backends", default="vllm,llama-cpp,transformers")
    args = parser.parse_args()

    bandwidth = copy_bandwidth_gb_s()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{len(os.sched_getaffinity(0))} cores",
        "copy_bandwidth_gb_s": round(bandwidth, 1),
        "bound_tok_per_s_bf16": round(bandwidth * 1e9 / BF16_WEIGHTS_BYTES, 1),
        "bound_tok_per_s_gguf": round(bandwidth * 1e9 / GGUF_SIZE, 1),
        "results": [],
    }
    for backend in args.backends.split(","):
        module = {"llama-cpp": "llama_cpp"}.get(backend, backend)
        if importlib.util.find_spec(module) is None:
            print(f"{backend}: not installed, skipped")
            continue
        generator = load_generator(EngineSettings(generator=backend))
        report["results"].append(await measure(generator, args.tokens))
        await generator.close()
        del generator
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
