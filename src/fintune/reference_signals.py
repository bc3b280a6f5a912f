"""Reference signals for a backtest: what a perfect reader, a perfectly wrong one and a coin would have earned.

A model's backtest means little alone. On the same dated items, prices and strategy settings this module runs

* ``oracle``: the gold label of every item (the most a sentiment reader could earn with these settings),
* ``flipped``: the gold label with positive and negative swapped (reading every item exactly wrong),
* ``random``: labels drawn uniformly at random, ``n_random`` times (the spread that luck alone gives),

through the project's backtest engine (:mod:`fintune.backtest`, called, not re-implemented). On a market where news
moves prices after they are tradable, oracle > 0 > flipped and random sits near zero; if not, the market (or the
strategy settings) cannot reward skill and a model's result there proves nothing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from fintune.backtest.engine import prepare_panel, run_backtest
from fintune.backtest.metrics import performance_metrics
from fintune.backtest.strategies import predictions_to_scores
from fintune.errors import FintuneError
from fintune.prices import load_prices, price_panel
from fintune.records import Prediction

KINDS = ("oracle", "flipped", "random")
_FLIP = {"positive": "negative", "negative": "positive", "neutral": "neutral"}


def reference_predictions(preds: Sequence[Prediction], kind: str, seed: int = 0,
                          labels: Sequence[str] = ("negative", "neutral", "positive")) -> list[Prediction]:
    """Copies of ``preds`` (id, ticker, date, gold kept) whose label is the gold one (``oracle``), the flipped gold
    one (``flipped``) or uniformly random (``random``, seeded), with one-hot probabilities."""
    if kind not in KINDS:
        raise FintuneError(f"reference signal {kind!r}: unknown", f"use one of {list(KINDS)}")
    r = random.Random(seed)
    out = []
    for p in preds:
        if kind != "random" and not p.gold:
            raise FintuneError(f"prediction '{p.id}': no gold label, so no {kind} signal",
                               "reference signals need the gold labels (eval predictions carry them)")
        label = r.choice(list(labels)) if kind == "random" else (p.gold if kind == "oracle" else _FLIP[str(p.gold)])
        out.append(replace(p, label=label, probabilities={lab: float(lab == label) for lab in labels},
                           confidence=1.0, raw_output="", extra={"reference": kind}))
    return out


def reference_backtests(preds: Sequence[Prediction], prices: str | Path, cfg: Any, n_random: int = 20,
                        seed: int = 0) -> dict[str, Any]:
    """Backtest the oracle, flipped and ``n_random`` random signals of ``preds`` against ``prices`` with ``cfg``.

    Returns ``{"oracle": {...}, "flipped": {...}, "random": {"n", "sharpe_median", "sharpe_p05", "sharpe_p95",
    "total_return_median", "runs": [...]}, "settings": cfg, "items": n}``; each single result has ``sharpe``,
    ``total_return``, ``max_drawdown`` (the engine's metrics, no bootstrap).
    """
    import numpy as np

    kept = [p for p in preds if p.ticker and p.date]
    if not kept:
        raise FintuneError("reference backtests: no prediction has a ticker and a date")
    tickers = sorted({str(p.ticker).upper() for p in kept})
    panel = price_panel(load_prices(prices, tickers))
    prep = prepare_panel(panel)

    def one(signal: list[Prediction]) -> dict[str, Any]:
        scores, _ = predictions_to_scores(signal, panel["adj_close"].index, cfg, list(panel["adj_close"].columns),
                                          panel["available"])
        res = run_backtest(scores, prep, cfg, detail=False)
        m = performance_metrics(res.returns, bootstrap_samples=0)
        return {k: m[k] for k in ("sharpe", "total_return", "max_drawdown", "bars")}

    out: dict[str, Any] = {"items": len(kept), "settings": cfg.to_dict()}
    for kind in ("oracle", "flipped"):
        out[kind] = one(reference_predictions(kept, kind))
    runs = [one(reference_predictions(kept, "random", seed=seed * 1000 + i)) for i in range(n_random)]
    sharpes = np.array([r["sharpe"] or 0.0 for r in runs])
    out["random"] = {"n": n_random, "seed": seed, "sharpe_median": float(np.median(sharpes)),
                     "sharpe_mean": float(sharpes.mean()),
                     "sharpe_p05": float(np.percentile(sharpes, 5)), "sharpe_p95": float(np.percentile(sharpes, 95)),
                     "total_return_median": float(np.median([r["total_return"] for r in runs])), "runs": runs}
    return out
