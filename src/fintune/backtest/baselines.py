"""Random-signal baselines: the same strategy fed shuffled signals, to see whether a result beats luck.

Each simulation permutes, on every signal day, the day's scores among the tickers that have a bar that day. So a
simulation has exactly the model's number of signals per day and the same score values (hence the same long /
short / flat counts per day and, with one-bar holds, the same turnover per day up to which names carry over); only
*which* ticker gets which score is random. The model's Sharpe is then placed among the simulations' Sharpes as a
percentile (ties count half), and the 5-95% band of the simulated equity curves is drawn around the model's.
Vectorised: one argsort per simulation, the engine's numpy core per simulation; seedable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fintune.backtest.engine import simulate


@dataclass
class RandomBaseline:
    """Result of :func:`random_signal_baseline`.

    Attributes:
        n_sims / seed: simulations run and their seed.
        sharpes: annualised Sharpe of each simulation (NaN for a flat one).
        percentile: % of simulations whose Sharpe is below the model's (ties half); None without a model Sharpe.
        turnover_daily_mean: mean daily turnover over the simulations (compare with the model's).
        band: DataFrame (bar x ``p05, p50, p95``) of the simulated growth-of-1 curves.
    """

    n_sims: int
    seed: int
    sharpes: Any
    percentile: float | None
    turnover_daily_mean: float
    band: Any

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-simulation arrays)."""
        import numpy as np

        s = self.sharpes[np.isfinite(self.sharpes)]

        def f(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {"n_sims": self.n_sims, "seed": self.seed, "model_sharpe_percentile": self.percentile,
                "sharpe_p05": f(np.quantile(s, 0.05)) if s.size else None,
                "sharpe_median": f(np.median(s)) if s.size else None,
                "sharpe_p95": f(np.quantile(s, 0.95)) if s.size else None,
                "turnover_daily_mean": f(self.turnover_daily_mean)}


def shuffle_signals(s: Any, available: Any, rng: Any) -> Any:
    """Permute each row's values among that row's available cells (unavailable cells keep theirs; rows without
    a signal are left as they are)."""
    import numpy as np

    out = s.copy()
    rows = np.flatnonzero(~np.isnan(s).all(axis=1))
    if rows.size == 0:
        return out
    sub, av = s[rows], available[rows]
    n_cols = s.shape[1]
    # unavailable cells sort after every available one, in column order (distinct keys: no ties to break)
    order_key = np.where(av, 0.0, 2.0 + np.arange(n_cols) / n_cols)
    dest = np.argsort(rng.random(sub.shape) * av + order_key, axis=1)  # random order of available cells first
    src = np.argsort(order_key + np.arange(n_cols) / (2.0 * n_cols), axis=1)  # available cells, column order
    shuffled = np.empty_like(sub)
    np.put_along_axis(shuffled, dest, np.take_along_axis(sub, src, axis=1), axis=1)
    out[rows] = shuffled
    return out


def random_signal_baseline(s: Any, prep: Any, cfg: Any, sel: Any, model_sharpe: float | None, n_sims: int = 200,
                           seed: int = 0, periods: int = 252) -> RandomBaseline:
    """Run ``n_sims`` backtests of shuffled signals (see module doc) on the engine's arrays.

    Args:
        s: the model's aligned scores (bars x tickers, NaN = no signal), as the engine uses them.
        prep: :class:`fintune.backtest.engine.PreparedPanel`.
        cfg: the strategy config.
        sel: the backtest window slice.
        model_sharpe: the model's annualised Sharpe (for the percentile).
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    sharpes = np.full(n_sims, np.nan)
    n_bars = sel.stop - sel.start
    curves = np.empty((n_sims, n_bars))
    turnovers = np.empty(n_sims)
    for k in range(n_sims):
        port, _, _, turnover = simulate(shuffle_signals(s, prep.available, rng), prep, cfg, sel)
        sd = port.std(ddof=1) if port.size > 1 else 0.0
        sharpes[k] = port.mean() / sd * math.sqrt(periods) if sd > 0 else np.nan
        curves[k] = np.cumprod(1 + port)
        turnovers[k] = turnover.mean() if turnover.size else np.nan
    pct = None
    if model_sharpe is not None and math.isfinite(model_sharpe) and n_sims:
        sims = np.nan_to_num(sharpes, nan=0.0)  # a flat simulation has Sharpe 0 for ranking
        pct = float(100.0 * ((sims < model_sharpe).sum() + 0.5 * (sims == model_sharpe).sum()) / n_sims)
    q = np.quantile(curves, [0.05, 0.5, 0.95], axis=0) if n_sims else np.full((3, n_bars), np.nan)
    band = pd.DataFrame({"p05": q[0], "p50": q[1], "p95": q[2]}, index=prep.index[sel])
    return RandomBaseline(n_sims=n_sims, seed=seed, sharpes=sharpes, percentile=pct,
                          turnover_daily_mean=float(np.nanmean(turnovers)) if n_sims else math.nan, band=band)
