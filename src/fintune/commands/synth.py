"""``fintune synth --n N --seed S --out DIR [--prices]``: synthetic labelled financial news (and prices)."""

from __future__ import annotations

import argparse

from fintune.cliargs import add_overwrite_argument, finite_float, non_negative_int, positive_int, probability
from fintune.data.synth import SynthParams, write_synth
from fintune.errors import FintuneError
from fintune.run import read_run


def _parse_balance(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        if "=" not in part:
            raise FintuneError(f"--balance {text!r}: expected label=weight pairs", "e.g. positive=1,negative=1,neutral=2")
        key, value = part.split("=", 1)
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise FintuneError(f"--balance {text!r}: weight {value!r} of '{key.strip()}' is not a number") from None
    return out


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``synth`` verb."""
    p = sub.add_parser("synth", help="generate labelled synthetic financial news (and prices) from a grammar",
                       description="Template-generated headlines/snippets about fictional companies with sentiment, "
                                   "confidence, analysis and expected move; --prices adds daily prices where news "
                                   "dated t drifts the price after the open of t+1 (tradable, no look-ahead).")
    p.add_argument("--n", type=positive_int, default=600, help="number of examples (default 600)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--prices", action="store_true", help="also write prices/<TICKER>.csv (StockNet layout)")
    p.add_argument("--balance", default=None, metavar="LABEL=W,...",
                   help="relative label weights (default equal), e.g. positive=1,negative=1,neutral=2")
    p.add_argument("--hard-fraction", type=probability, default=0.3,
                   help="share of hard cases: tricky wording (negation, hedges, entity swaps, numbers) or mixed "
                        "news (default 0.3)")
    p.add_argument("--tickers", type=positive_int, default=8, help="number of fictional companies (default 8)")
    p.add_argument("--start", default="2023-01-02", help="first business day YYYY-MM-DD (default 2023-01-02)")
    p.add_argument("--news-impact", type=finite_float, default=1.0,
                   help="share of an item's expected move realised on the next day (default 1.0)")
    add_overwrite_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune synth``."""
    params = SynthParams(n=args.n, seed=args.seed, hard_fraction=args.hard_fraction, n_tickers=args.tickers,
                         start=args.start, news_impact=args.news_impact)
    if args.balance is not None:
        params.balance = _parse_balance(args.balance)
    out = write_synth(args.out, params, prices=args.prices, overwrite=args.overwrite)
    summary = read_run(out, "synth").summary
    print(f"wrote {args.n} examples to {out / 'examples.jsonl'}" + (f" and prices to {out / 'prices'}" if args.prices
                                                                      else ""))
    print(f"labels {summary.labels}  hard {summary.hard}  distinct-3 {summary.distinct_3}")
    return 0
