"""``fintune compare RUN... --out DIR``."""

from __future__ import annotations

import argparse

from fintune.cliargs import add_overwrite_argument, non_negative_int


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``compare`` verb."""
    p = sub.add_parser("compare", help="compare evaluated runs side by side (markdown + HTML + plots)",
                       description="Side-by-side table of evaluated runs with paired-bootstrap intervals of the "
                                   "differences against the first run. Forecaster runs get the six-metric table: "
                                   "training loss, eval loss, eval speed, direction accuracy, MSE of the % move, "
                                   "ROUGE-1/2/L of the written analysis.")
    p.add_argument("runs", nargs="+", help="eval output directories (or run directories with an eval/ subdir)")
    p.add_argument("--out", default=None, help="output directory for comparison.md/.html/.json and plots "
                                               "(written atomically); without it the table is only printed")
    p.add_argument("--bootstrap-samples", type=non_negative_int, default=1000)
    p.add_argument("--seed", type=non_negative_int, default=0)
    add_overwrite_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune compare`` and print the markdown table (for forecasters: the six-metric table)."""
    from pathlib import Path

    from fintune.evaluate.compare import run_compare

    result = run_compare(args.runs, args.out, bootstrap_samples=args.bootstrap_samples, seed=args.seed,
                         overwrite=args.overwrite)
    print(result["markdown"], end="")
    if args.out:
        print(f"wrote {Path(args.out) / 'comparison.md'}")
    return 0
