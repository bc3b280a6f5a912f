"""The machine's same-run matmul rate, printed beside every absolute time a benchmark reports (this host's speed
varies from day to day, so a time means little without it)."""

from __future__ import annotations

import statistics
import time


def gemm_gflops(n: int = 512, repeats: int = 7, threads: int | None = None) -> float:
    """Median bf16 ``n x n`` matmul rate in GFLOP/s (on ``threads`` torch threads, else the process's)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    a = torch.randn(n, n, dtype=torch.bfloat16)
    b = torch.randn(n, n, dtype=torch.bfloat16)
    torch.matmul(a, b)  # warm-up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(4):
            torch.matmul(a, b)
        rates.append(4 * 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates)
