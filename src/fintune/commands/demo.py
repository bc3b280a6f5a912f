"""``fintune demo [--quick] [--data DIR] [--out runs/demo]``: the whole pipeline on a CPU in one command."""

from __future__ import annotations

import argparse

from fintune.cliargs import non_negative_int, positive_int
from fintune.demo import format_summary, run_demo


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``demo`` verb."""
    p = sub.add_parser("demo", help="run everything on the CPU with the embedded model and write a report",
                       description="Synthetic news + prices (or --data), LoRA fine-tuning of the embedded "
                                   "SmolLM2-135M, evaluation vs zero-shot / TF-IDF / majority with calibration, "
                                   "analyze, backtest and an HTML report, all under --out.")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--data", default=None,
                   help="folder laid out like ../shared/data (FPB, TFNS) instead of synthetic data")
    p.add_argument("--quick", action="store_true", help="2-3 minute smoke version")
    p.add_argument("--model", default="smollm2-135m", help="alias, model directory or hub id")
    p.add_argument("--gguf", default=None, help="GGUF to build the embedded model from when it is not cached")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--max-steps", type=positive_int, default=None, help="override the number of LoRA steps")
    p.add_argument("--n", dest="n_examples", type=positive_int, default=None, help="override the number of examples")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune demo`` and print the summary."""
    summary = run_demo(out=args.out, data=args.data, quick=args.quick, model=args.model, gguf=args.gguf,
                       seed=args.seed, max_steps=args.max_steps, n_examples=args.n_examples,
                       overwrite=args.overwrite)
    print(format_summary(summary))
    return 0
