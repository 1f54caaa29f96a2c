"""Generation speed of each installed backend, in one run, next to the memory-bandwidth bound.

For every backend that is installed (vllm, llama-cpp, transformers bf16), each in a process of its
own (so that its start time and memory are its own):
  * one prompt, one sample, exactly --tokens new tokens (end of sequence suppressed);
  * one prompt, n=5, --tokens each;
  * 16 different prompts, one sample each, sent together;
  * 8 different prompts, n=5 each, sent together (eight users of the default search).
Reports aggregate completion tokens per second, seconds from start to ready, resident memory once done, the
machine's copy bandwidth and the single-stream bound it implies (bandwidth / bytes of weights).

``llama-cpp-serial`` is the llama.cpp path before continuous batching (2026-11-30): llama-cpp-
python's ``create_completion``, the samples of a request one after another, requests one at a time.

    .venv/bin/python bench/generation.py [--tokens 128] [--backends llama-cpp,llama-cpp-serial]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _machine import machine

from mucode.engine import prompts
from mucode.engine.generators.base import Completion, Generator, SamplingParams
from mucode.engine.loading import load_generator
from mucode.engine.model_store import GGUF_SIZE, pull_gguf
from mucode.engine.settings import EngineSettings
from mucode.engine.trace import ChatMessage
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


class SerialLlamaCpp(Generator):
    """The baseline: llama.cpp as mucode drove it before continuous batching."""

    backend = "llama-cpp-serial"

    def __init__(self) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        threads = len(os.sched_getaffinity(0))
        gguf = pull_gguf()
        self.model = gguf.name
        self.llama = Llama(
            model_path=str(gguf), n_ctx=8192, n_threads=threads, n_threads_batch=threads, verbose=False
        )
        token_text = self.llama._model.token_get_text
        self.template = Jinja2ChatFormatter(
            template=self.llama.metadata["tokenizer.chat_template"],
            eos_token=token_text(self.llama.token_eos()),
            bos_token=token_text(self.llama.token_bos()),
        )
        self.lock = threading.Lock()

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        chat: Any = [m.model_dump() for m in messages]
        return await self.complete(self.template(messages=chat).prompt, params)

    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        return await asyncio.to_thread(self._runs, prompt, params)

    def _runs(self, prompt: str, params: SamplingParams) -> list[Completion]:
        ends = {self.llama.token_eos(), *self.llama.tokenize(b"<|im_end|>", add_bos=False, special=True)}
        bias = {token: -1e9 for token in ends} if params.ignore_eos else None
        completions = []
        with self.lock:
            for k in range(params.n):
                out: Any = self.llama.create_completion(
                    prompt=prompt,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    top_k=0,
                    min_p=0.0,
                    max_tokens=params.max_tokens,
                    seed=None if params.seed is None else params.seed + k,
                    logit_bias=bias,
                )
                completions.append(
                    Completion(
                        text=out["choices"][0]["text"],
                        prompt_tokens=out["usage"]["prompt_tokens"],
                        completion_tokens=out["usage"]["completion_tokens"],
                    )
                )
        return completions


def rss_mb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


async def timed(generator: Generator, requests: list[tuple[list[ChatMessage], SamplingParams]]) -> float:
    """Aggregate completion tokens per second of ``requests`` sent together."""
    start = time.perf_counter()
    done = await asyncio.gather(*(generator.sample(chat, params) for chat, params in requests))
    tokens = sum(c.completion_tokens for completions in done for c in completions)
    return round(tokens / (time.perf_counter() - start), 1)


async def measure(backend: str, tokens: int) -> dict[str, Any]:
    start = time.perf_counter()
    if backend == "llama-cpp-serial":
        generator: Generator = SerialLlamaCpp()
    else:
        generator = load_generator(EngineSettings(generator=backend))
    load_s = time.perf_counter() - start
    chats = [prompts.DEFAULT.first_turn(p) for p in load_humaneval()[:16]]

    def params(n: int, seed: int) -> SamplingParams:
        return SamplingParams(n=n, temperature=0.7, top_p=0.95, max_tokens=tokens, seed=seed, ignore_eos=True)

    await generator.sample(chats[0], SamplingParams(n=1, max_tokens=8, seed=0))  # warm-up
    report = {
        "backend": generator.description,
        "ready_s": round(load_s, 1),
        "single_tok_per_s": await timed(generator, [(chats[1], params(1, 1))]),
        "n5_tok_per_s": await timed(generator, [(chats[0], params(5, 1))]),
        "batch16_tok_per_s": await timed(generator, [(chat, params(1, 2)) for chat in chats]),
        "users8_n5_tok_per_s": await timed(generator, [(chat, params(5, 3)) for chat in chats[:8]]),
        "rss_mb": rss_mb(),
    }
    await generator.close()
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per sample")
    parser.add_argument("--backends", default="vllm,llama-cpp,llama-cpp-serial,transformers")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # measure this backend here, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(await measure(args.one, args.tokens)))
        return

    bandwidth = copy_bandwidth_gb_s()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "copy_bandwidth_gb_s": round(bandwidth, 1),
        "bound_tok_per_s_bf16": round(bandwidth * 1e9 / BF16_WEIGHTS_BYTES, 1),
        "bound_tok_per_s_gguf": round(bandwidth * 1e9 / GGUF_SIZE, 1),
        "results": [],
    }
    for backend in args.backends.split(","):
        module = {"llama-cpp": "llama_cpp", "llama-cpp-serial": "llama_cpp"}.get(backend, backend)
        if importlib.util.find_spec(module) is None:
            print(f"{backend}: not installed, skipped")
            continue
        one = [sys.executable, __file__, "--one", backend, "--tokens", str(args.tokens)]
        done = subprocess.run(one, check=True, capture_output=True, text=True)
        report["results"].append(json.loads(done.stdout.splitlines()[-1]))
        print(json.dumps(report["results"][-1]), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
