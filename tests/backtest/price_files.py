"""Flat random-walk daily price files (open = high = low = close) for backtest tests that need only some prices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_random_walk_prices(root: Path, days: Sequence[str], tickers: Sequence[str], start: float = 50.0,
                             seed: int = 0) -> Path:
    """One ``TICKER.csv`` per ticker in ``root`` (Yahoo columns, volume 100,000), drawn in ticker order from one
    seeded generator: 1% daily log-return noise around ``start``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for t in tickers:
        close = start * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
        rows = [f"{d},{c:.4f},{c:.4f},{c:.4f},{c:.4f},{c:.4f},100000" for d, c in zip(days, close, strict=True)]
        (root / f"{t}.csv").write_text("Date,Open,High,Low,Close,Adj Close,Volume\n" + "\n".join(rows) + "\n")
    return root
