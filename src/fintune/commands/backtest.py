"""``fintune backtest --predictions FILE --prices SRC [--strategy ...] --out DIR``."""

from __future__ import annotations

import argparse
import json

from fintune.backtest.costs import ImpactModel
from fintune.backtest.report import TrustOptions, run_backtest_to_dir, trust_lines
from fintune.backtest.strategies import StrategyConfig
from fintune.cliargs import (
    add_overwrite_argument,
    bounded,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from fintune.errors import FintuneError


def _walk_forward(text: str) -> tuple[int, ...]:
    try:
        parts = tuple(int(x) for x in text.split(":"))
    except ValueError:
        parts = ()
    if len(parts) not in (2, 3) or min(parts[:2]) < 1 or min(parts) < 0:
        raise argparse.ArgumentTypeError(f"expected TRAIN_BARS:TEST_BARS[:PURGE_BARS] (>= 1, purge >= 0), "
                                         f"got {text!r}")
    return parts


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def _rate(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return v


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``backtest`` verb."""
    p = sub.add_parser("backtest", help="backtest predictions against daily prices",
                       description="Signals trade at the bar after their signal day (next open by default).")
    p.add_argument("--predictions", required=True, help="predictions JSONL (from eval / analyze)")
    p.add_argument("--prices", required=True,
                   help="dir of <TICKER>.csv (StockNet layout), a long-format .parquet, or yfinance:CACHE_DIR")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--strategy", choices=["long_only", "long_short"], default="long_only")
    p.add_argument("--sizing", choices=["equal", "confidence"], default="equal")
    p.add_argument("--threshold", type=non_negative_float, default=0.0, help="trade when |score| > this (score = p_pos - p_neg)")
    p.add_argument("--holding-days", type=positive_int, default=1)
    p.add_argument("--aggregate", choices=["mean", "count"], default="mean",
                   help="several items on one ticker-day: mean score or net vote")
    p.add_argument("--fill", choices=["next_open", "next_close"], default="next_open")
    p.add_argument("--weighting", choices=["active", "universe"], default="active")
    p.add_argument("--demean", action="store_true",
                   help="subtract each signal day's cross-sectional mean score first (long above-average names, "
                        "short below-average ones with --strategy long_short)")
    p.add_argument("--commission-bps", type=non_negative_float, default=0.0)
    p.add_argument("--slippage-bps", type=non_negative_float, default=0.0)
    p.add_argument("--benchmark", default=None, help="also compare with buy-and-hold of this ticker")
    p.add_argument("--tickers", default=None, help="comma-separated universe (default: tickers in predictions)")
    p.add_argument("--walk-forward", type=_walk_forward, default=None, metavar="TRAIN:TEST[:PURGE]",
                   help="also report rolling windows of TRAIN and TEST bars, PURGE bars between them (labels that "
                        "span PURGE bars cannot leak into the test window)")
    p.add_argument("--random-sims", type=_nonneg_int, default=200,
                   help="random-signal baselines: backtests of shuffled signals (same counts per day; 0 = skip)")
    p.add_argument("--ledger", default=None,
                   help="trials ledger for the deflated Sharpe (default: backtest_trials.jsonl next to --out)")
    p.add_argument("--trial-label", action="append", default=[], metavar="KEY=VALUE",
                   help="label stored with this trial in the ledger (prompt variant, sweep trial); repeatable")
    p.add_argument("--model-cutoff", default=None, metavar="DATE",
                   help="base model pretraining cutoff (default: from the predictions' run manifest)")
    p.add_argument("--universe", default=None, metavar="CSV",
                   help="point-in-time membership file (ticker,from,to): trade names only while members")
    p.add_argument("--slippage-model", choices=["fixed", "sqrt"], default="fixed",
                   help="sqrt: also charge square-root market impact from the price files' volume")
    p.add_argument("--book-size", type=positive_float, default=1_000_000.0, help="USD book for the impact model")
    p.add_argument("--impact-coef", type=non_negative_float, default=1.0, help="k in k * sigma * sqrt(trade / ADV)")
    p.add_argument("--max-volume-share", type=bounded(float, 0, 1, low_open=True), default=0.1, help="cap on a trade's share of daily volume")
    p.add_argument("--max-invalid-rate", type=_rate, default=0.0,
                   help="share of predictions with unknown labels / probability keys or bad probabilities "
                        "tolerated (counted and reported); above it the run fails (default 0)")
    p.add_argument("--bootstrap-samples", type=non_negative_int, default=1000)
    p.add_argument("--seed", type=non_negative_int, default=0)
    add_overwrite_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune backtest``."""
    if args.bootstrap_samples < 0:
        raise FintuneError("--bootstrap-samples must be >= 0")
    cfg = StrategyConfig(mode=args.strategy, sizing=args.sizing, threshold=args.threshold,
                         holding_days=args.holding_days, aggregate=args.aggregate, fill=args.fill,
                         weighting=args.weighting, demean=args.demean, commission_bps=args.commission_bps,
                         slippage_bps=args.slippage_bps)
    tickers = [t for t in args.tickers.split(",") if t.strip()] if args.tickers else None
    labels = {}
    for item in args.trial_label:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise FintuneError(f"--trial-label {item!r}: expected KEY=VALUE", "e.g. --trial-label prompt=v2")
        k, v = item.split("=", 1)
        labels[k.strip()] = v
    impact = ImpactModel(book_size=args.book_size, coef=args.impact_coef, max_volume_share=args.max_volume_share)
    trust = TrustOptions(random_sims=args.random_sims, ledger=args.ledger, trial_labels=labels,
                         model_cutoff=args.model_cutoff, universe_file=args.universe,
                         impact=impact if args.slippage_model == "sqrt" else None,
                         max_invalid_rate=args.max_invalid_rate)
    metrics = run_backtest_to_dir(args.predictions, args.prices, args.out, cfg, benchmark_ticker=args.benchmark,
                                  tickers=tickers, walk_forward=args.walk_forward,
                                  bootstrap_samples=args.bootstrap_samples, seed=args.seed, trust=trust,
                                  overwrite=args.overwrite)
    s = metrics["strategy"]
    print(json.dumps({k: s.get(k) for k in ("total_return", "annual_return", "sharpe", "max_drawdown",
                                            "n_trades", "hit_rate")}))
    for line in trust_lines(metrics):
        print(line)
    print(f"wrote {args.out}")
    return 0
