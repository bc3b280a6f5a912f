"""``fintune collect --tickers dow30|T1,T2 --start D --end D --out DIR``: online inputs for the forecaster builder.

Finnhub company news, profiles and basic financials (``FINNHUB_API_KEY``) plus yfinance daily prices, cached on
disk and resumable (:func:`fintune.data.collectors.collect_forecaster_inputs`). The output directory is what a
``data.task: forecaster`` recipe reads with ``sources: [{name: jsonl, path: DIR/news.jsonl, options: {prices:
DIR/prices, profiles: DIR/profiles.json, financials: DIR/financials.json}}]``.
"""

from __future__ import annotations

import argparse
import json

from fintune.cliargs import add_overwrite_argument, non_negative_float, non_negative_int
from fintune.data.collectors import FinnhubClient, collect_forecaster_inputs
from fintune.errors import FintuneError
from fintune.run import read_run

DOW30 = ("AXP", "AMGN", "AAPL", "BA", "CAT", "CSCO", "CVX", "GS", "HD", "HON", "IBM", "INTC", "JNJ", "KO", "JPM",
         "MCD", "MMM", "MRK", "MSFT", "NKE", "PG", "TRV", "UNH", "CRM", "VZ", "V", "WBA", "WMT", "DIS", "DOW")
"""FinGPT-Forecaster's ``DOW_30`` list (``fingpt/FinGPT_Forecaster/data.py``), the Dow 30 of 2023-2024."""


def tickers_arg(text: str) -> list[str]:
    """``dow30`` or a comma-separated list of symbols."""
    if text.strip().lower() == "dow30":
        return list(DOW30)
    tickers = [t.strip().upper() for t in text.split(",") if t.strip()]
    if not tickers:
        raise argparse.ArgumentTypeError(f"expected 'dow30' or symbols like AAPL,MSFT, got {text!r}")
    return tickers


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``collect`` verb."""
    p = sub.add_parser("collect", help="download news, profiles, financials (Finnhub) and prices (yfinance)",
                       description="Collect the online inputs of the forecaster builder into one directory "
                                   "(news.jsonl, profiles.json, financials.json, prices/, manifest.json). Needs "
                                   "FINNHUB_API_KEY; every response is cached, so a rerun resumes.")
    p.add_argument("--tickers", required=True, type=tickers_arg, help="'dow30' or symbols, e.g. AAPL,MSFT")
    p.add_argument("--start", required=True, help="first day of news, YYYY-MM-DD")
    p.add_argument("--end", required=True, help="last day of news, YYYY-MM-DD")
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--cache-dir", default=".fintune_cache/finnhub", help="on-disk cache of Finnhub responses")
    p.add_argument("--requests-per-minute", type=non_negative_float, default=55.0, help="Finnhub rate limit (free tier: 60; 0 = no limit)")
    p.add_argument("--no-prices", action="store_true", help="skip yfinance (give prices to the recipe yourself)")
    p.add_argument("--history-days", type=non_negative_int, default=120,
                   help="prices start this many days before --start (past weeks and indicators)")
    add_overwrite_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune collect``."""
    from datetime import date

    for name in ("start", "end"):
        try:
            date.fromisoformat(getattr(args, name))
        except ValueError:
            raise FintuneError(f"--{name} {getattr(args, name)!r}: not a date", "use YYYY-MM-DD") from None
    if args.start > args.end:
        raise FintuneError(f"--start {args.start} is after --end {args.end}")
    client = FinnhubClient(cache_dir=args.cache_dir, requests_per_minute=args.requests_per_minute)
    out = collect_forecaster_inputs(args.tickers, args.start, args.end, args.out, client=client,
                                    with_prices=not args.no_prices, history_days=args.history_days,
                                    overwrite=args.overwrite)
    manifest = read_run(out, "collect")
    print(json.dumps({"tickers": len(args.tickers), "news_examples": manifest.news_examples,
                      "finnhub": manifest.finnhub}))
    print(f"wrote {out}")
    return 0
