"""Backtest plots as matplotlib PNGs (Agg backend): equity vs benchmarks, drawdown, monthly returns, exposure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fintune.artifacts import atomic_write_bytes


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_equity(equity: Any, benchmarks: dict[str, Any], path: str | Path, band: Any = None) -> Path:
    """Strategy growth-of-1 against each benchmark's (same bars), inside the random-signal 5-95% band (``band``:
    DataFrame with ``p05, p50, p95`` columns) when given."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    if band is not None and len(band) and band["p05"].notna().any():
        ax.fill_between(band.index, band["p05"].to_numpy(), band["p95"].to_numpy(), color="grey", alpha=0.25,
                        label="random signals, 5-95%")
        ax.plot(band.index, band["p50"].to_numpy(), color="grey", lw=0.8, ls="--", label="random signals, median")
    ax.plot(equity.index, equity.to_numpy(), label="strategy", lw=1.6)
    for name, curve in benchmarks.items():
        ax.plot(curve.index, curve.to_numpy(), label=name, lw=1.0, alpha=0.8)
    ax.axhline(1.0, color="grey", lw=0.6)
    ax.set_ylabel("growth of 1")
    ax.set_title("Equity curve")
    ax.legend(loc="best")
    return _save(fig, Path(path))


def plot_drawdown(drawdown: Any, path: str | Path) -> Path:
    """Under-water curve (``equity / running peak - 1``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.fill_between(drawdown.index, drawdown.to_numpy() * 100, 0, color="tab:red", alpha=0.5)
    ax.set_ylabel("drawdown %")
    ax.set_title("Drawdown")
    return _save(fig, Path(path))


def monthly_returns_table(returns: Any) -> Any:
    """Compounded return per calendar month as a (year x month 1..12) DataFrame."""
    import pandas as pd

    growth = (1 + returns).groupby([returns.index.year, returns.index.month]).prod() - 1
    table = growth.unstack(level=1).reindex(columns=range(1, 13))
    table.index.name, table.columns.name = "year", "month"
    return pd.DataFrame(table)


def plot_monthly_heatmap(returns: Any, path: str | Path) -> Path:
    """Heatmap of monthly returns in % (green up, red down), values annotated."""
    import numpy as np

    plt = _plt()
    table = monthly_returns_table(returns) * 100
    values = table.to_numpy(dtype="float64")
    lim = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.45 * max(1, len(table))))
    im = ax.imshow(values, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(12), ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"])
    ax.set_yticks(range(len(table)), [str(y) for y in table.index])
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="%")
    ax.set_title("Monthly returns (%)")
    return _save(fig, Path(path))


def plot_exposure(weights: Any, path: str | Path) -> Path:
    """Long, short and net exposure per bar (sums of weights)."""
    plt = _plt()
    long = weights.clip(lower=0).sum(axis=1)
    short = weights.clip(upper=0).sum(axis=1)
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.fill_between(long.index, long.to_numpy(), 0, color="tab:green", alpha=0.5, step="post", label="long")
    ax.fill_between(short.index, short.to_numpy(), 0, color="tab:red", alpha=0.5, step="post", label="short")
    ax.plot(long.index, (long + short).to_numpy(), color="black", lw=0.7, label="net")
    ax.set_ylabel("weight")
    ax.set_title("Position exposure")
    ax.legend(loc="best")
    return _save(fig, Path(path))
