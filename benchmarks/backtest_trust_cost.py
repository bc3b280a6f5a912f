"""Benchmark: what the trust statistics every ``fintune backtest`` report now carries cost, next to the engine.

Same setup as ``backtest_speed.py`` (all 88 StockNet tickers, 1,258 bars, seeded random scores on 30% of each
ticker's bars, long above 0.2, hold 3 bars, next-open fills). Times, medians of repeats in one process:
the engine's full run (``run_backtest`` with trades), the random-signal baseline (200 shuffled-signal backtests,
the default), the square-root impact / capacity report and the PSR/DSR statistics.

    python benchmarks/backtest_trust_cost.py            # 5 rounds
    python benchmarks/backtest_trust_cost.py --quick    # 2 rounds

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from backtest_speed import DEFAULT_PRICES, make_scores  # noqa: E402
from fintune.backtest.baselines import random_signal_baseline  # noqa: E402
from fintune.backtest.costs import ImpactModel, impact_report  # noqa: E402
from fintune.backtest.engine import _aligned, _window, prepare_panel, run_backtest  # noqa: E402
from fintune.backtest.metrics import sharpe_ratio  # noqa: E402
from fintune.backtest.statistics import sharpe_statistics  # noqa: E402
from fintune.backtest.strategies import StrategyConfig  # noqa: E402
from fintune.prices import load_prices, price_panel  # noqa: E402


def timed(fn, rounds: int) -> tuple[float, object]:
    """Median wall seconds of ``rounds`` calls, and the last result."""
    times, out = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    """Run the timings and print one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prices", default=str(DEFAULT_PRICES))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sims", type=int, default=200)
    a = ap.parse_args()
    rounds = 2 if a.quick else 5
    panel = price_panel(load_prices(a.prices))
    scores = make_scores(panel, 0.3, seed=0)
    cfg = StrategyConfig(threshold=0.2, holding_days=3)
    engine_s, res = timed(lambda: run_backtest(scores, panel, cfg), rounds)
    prep = prepare_panel(panel)
    s = _aligned(scores, prep)
    sel = _window(s, prep, cfg, None, None)
    sr = sharpe_ratio(res.returns)
    random_s, rb = timed(lambda: random_signal_baseline(s, prep, cfg, sel, sr, n_sims=a.sims, seed=0), rounds)
    impact_s, _ = timed(lambda: impact_report(res.returns, res.weights, panel, ImpactModel()), rounds)
    trials = [*(np.random.default_rng(1).normal(0, 0.05, 99)), sr / np.sqrt(252)]
    stats_s, st = timed(lambda: sharpe_statistics(res.returns, trials), rounds)
    out = {"tickers": len(prep.tickers), "bars": len(prep.index), "rounds": rounds,
           "engine_s": round(engine_s, 4), "random_baseline_s": round(random_s, 3), "random_sims": a.sims,
           "per_sim_ms": round(1000 * random_s / a.sims, 2), "impact_s": round(impact_s, 4),
           "statistics_s": round(stats_s, 5), "random_over_engine": round(random_s / engine_s, 1),
           "model_percentile": rb.percentile, "dsr_100_trials": st.dsr}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
