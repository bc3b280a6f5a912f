"""``fintune ensemble EVAL_DIR... --out DIR [--overwrite]``."""

from __future__ import annotations

import argparse
import json

from fintune.cliargs import add_overwrite_argument, non_negative_int


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``ensemble`` verb."""
    p = sub.add_parser("ensemble", help="average the calibrated probabilities of several evals (a seed ensemble)",
                       description="Average the calibrated label probabilities of two or more score-mode "
                                   "classification evals of the same split (rows matched by id); write "
                                   "predictions.jsonl, metrics.json (the metrics eval computes), calibration.json, "
                                   "plots and manifest.json (members, their runs, training minutes and inference "
                                   "cost) to --out, with each member's metrics and the paired-bootstrap "
                                   "difference against the best member.")
    p.add_argument("eval_dirs", nargs="+", metavar="EVAL_DIR",
                   help="`fintune eval` output directories (or runs evaluated into RUN/eval)")
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--bootstrap-samples", type=non_negative_int, default=None,
                   help="resamples for 95%% intervals (0 = off); default: what the first eval used")
    p.add_argument("--seed", type=non_negative_int, default=None, help="bootstrap seed; default: the first eval's")
    add_overwrite_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune ensemble`` and print the ensemble's and the members' headline metrics."""
    from fintune.evaluate.ensemble import run_ensemble

    metrics = run_ensemble(args.eval_dirs, args.out, bootstrap_samples=args.bootstrap_samples, seed=args.seed,
                           overwrite=args.overwrite)
    ens = metrics["ensemble"]
    print(json.dumps({"n": metrics["n"], "ensemble": ens["ensemble"], "members": ens["members"],
                      "vs_best_member": ens["vs_best_member"], "cost": ens["cost"]}, indent=2))
    print(f"wrote {args.out}")
    return 0
