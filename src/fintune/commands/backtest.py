"""``fintune backtest --predictions FILE --prices SRC [--strategy ...] --out DIR``."""

from __future__ import annotations

import argparse
import json

from fintune.errors import FintuneError


def _walk_forward(text: str) -> tuple[int, int]:
    try:
        train, test = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TRAIN_BARS:TEST_BARS, got {text!r}") from None
    return train, test


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
    p.add_argument("--threshold", type=float, default=0.0, help="trade when |score| > this (score = p_pos - p_neg)")
    p.add_argument("--holding-days", type=int, default=1)
    p.add_argument("--aggregate", choices=["mean", "count"], default="mean",
                   help="several items on one ticker-day: mean score or net vote")
    p.add_argument("--fill", choices=["next_open", "next_close"], default="next_open")
    p.add_argument("--weighting", choices=["active", "universe"], default="active")
    p.add_argument("--demean", action="store_true",
                   help="subtract each signal day's cross-sectional mean score first (long above-average names, "
                        "short below-average ones with --strategy long_short)")
    p.add_argument("--commission-bps", type=float, default=0.0)
    p.add_argument("--slippage-bps", type=float, default=0.0)
    p.add_argument("--benchmark", default=None, help="also compare with buy-and-hold of this ticker")
    p.add_argument("--tickers", default=None, help="comma-separated universe (default: tickers in predictions)")
    p.add_argument("--walk-forward", type=_walk_forward, default=None, metavar="TRAIN:TEST",
                   help="also report rolling windows of TRAIN and TEST bars")
    p.add_argument("--bootstrap-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune backtest``."""
    from fintune.backtest.report import run_backtest_to_dir
    from fintune.backtest.strategies import StrategyConfig

    if args.bootstrap_samples < 0:
        raise FintuneError("--bootstrap-samples must be >= 0")
    cfg = StrategyConfig(mode=args.strategy, sizing=args.sizing, threshold=args.threshold,
                         holding_days=args.holding_days, aggregate=args.aggregate, fill=args.fill,
                         weighting=args.weighting, demean=args.demean, commission_bps=args.commission_bps,
                         slippage_bps=args.slippage_bps)
    tickers = [t for t in args.tickers.split(",") if t.strip()] if args.tickers else None
    metrics = run_backtest_to_dir(args.predictions, args.prices, args.out, cfg, benchmark_ticker=args.benchmark,
                                  tickers=tickers, walk_forward=args.walk_forward,
                                  bootstrap_samples=args.bootstrap_samples, seed=args.seed)
    s = metrics["strategy"]
    print(json.dumps({k: s.get(k) for k in ("total_return", "annual_return", "sharpe", "max_drawdown",
                                            "n_trades", "hit_rate")}))
    print(f"wrote {args.out}")
    return 0
