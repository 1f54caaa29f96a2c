"""Why ``MUCODE_DTYPE=auto`` picks float32 on some CPUs: one MLP projection of the default model
(896 -> 4864) in float32 and in bfloat16, for 1, 8 and 64 rows, on all cores, in one run.

    .venv/bin/python bench/cpu_dtype.py
"""

from __future__ import annotations

import os
import time

import torch


def gflops(dtype: torch.dtype, rows: int, repeats: int = 50) -> float:
    x = torch.randn(rows, 896, dtype=dtype)
    w = torch.randn(4864, 896, dtype=dtype)
    torch.nn.functional.linear(x, w)  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        torch.nn.functional.linear(x, w)
    seconds = (time.perf_counter() - started) / repeats
    return 2 * rows * 896 * 4864 / seconds / 1e9


def main() -> None:
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    print(
        f"cpu capability {torch.backends.cpu.get_cpu_capability()}, native bf16 "
        f"{torch.ops.mkldnn._is_mkldnn_bf16_supported()}, threads {torch.get_num_threads()}"
    )
    print("rows  float32 GFLOP/s  bfloat16 GFLOP/s")
    for rows in (1, 8, 64):
        print(f"{rows:4d}  {gflops(torch.float32, rows):15.1f}  {gflops(torch.bfloat16, rows):16.1f}")


if __name__ == "__main__":
    main()
