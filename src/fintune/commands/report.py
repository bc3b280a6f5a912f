"""``fintune report RUN... --out DIR``: one self-contained HTML report from run directories."""

from __future__ import annotations

import argparse

from fintune.cliargs import add_overwrite_argument, non_negative_int
from fintune.errors import FintuneError
from fintune.report.html import build_report


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``report`` verb."""
    p = sub.add_parser("report", help="self-contained HTML report (plots embedded) from run directories",
                       description="Recognises data, train, eval, analyze, backtest and synth directories (or "
                                   "directories holding them, like runs/demo) and writes DIR/report.html.")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--title", default="fintune report")
    p.add_argument("--bootstrap-samples", type=non_negative_int, default=1000,
                   help="resamples for paired differences between models (0 = skip)")
    add_overwrite_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune report``."""
    if args.bootstrap_samples < 0:
        raise FintuneError(f"--bootstrap-samples {args.bootstrap_samples}: must be >= 0")
    path = build_report(args.runs, args.out, title=args.title, bootstrap_samples=args.bootstrap_samples,
                        overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0
