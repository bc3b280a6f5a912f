"""Speed and cost of an inference pass: examples/s, tokens/s, latency percentiles, peak memory."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class InferenceStats:
    """Speed and cost of one inference pass."""

    examples: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    batch_latencies: list[float] = field(default_factory=list)
    example_latencies: list[float] = field(default_factory=list)

    def add_batch(self, seconds: float, batch_size: int, cpu_seconds: float = 0.0) -> None:
        """Record one batch's wall time (each example in it is charged the batch's time) and process CPU time."""
        self.seconds += seconds
        self.cpu_seconds += cpu_seconds
        self.examples += batch_size
        self.batch_latencies.append(seconds)
        self.example_latencies.extend([seconds] * batch_size)

    def summary(self) -> dict[str, Any]:
        """examples/s, tokens/s, latency p50/p95 (per example, in ms) and peak memory."""
        lat = np.asarray(self.example_latencies) * 1000.0
        tokens = self.prompt_tokens + self.generated_tokens
        return {
            "examples": self.examples,
            "seconds": round(self.seconds, 4),
            # CPU time of the whole process (all threads): a fairer cost than wall time on a shared machine
            "cpu_seconds": round(self.cpu_seconds, 4),
            "examples_per_s": self.examples / self.seconds if self.seconds else None,
            "tokens_per_s": tokens / self.seconds if self.seconds else None,
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
            "latency_ms_p95": float(np.percentile(lat, 95)) if lat.size else None,
            **peak_memory(),
        }


def peak_memory() -> dict[str, float | None]:
    """Peak GPU memory allocated (MiB) when CUDA is in use, and the process's peak resident memory (MiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mib = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # macOS reports bytes, Linux KiB
    gpu = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gpu = torch.cuda.max_memory_allocated() / 2**20
    return {"peak_gpu_mib": gpu, "peak_rss_mib": round(rss_mib, 1)}
