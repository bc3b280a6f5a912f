"""``fintune eval RUN_OR_MODEL --data PREPARED_OR_RECIPE [--mode score|generate] [--baseline ...] --out DIR``."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``eval`` verb."""
    p = sub.add_parser("eval", help="predict on a prepared split and measure accuracy, F1, calibration, speed",
                       description="Evaluate a run, a model or a baseline on prepared data. Writes predictions."
                                   "jsonl, metrics.json, calibration.json, plots and manifest.json to --out.")
    p.add_argument("run_or_model", nargs="?", default=None,
                   help="run directory, model directory, hub id or alias (not needed for --baseline majority/tfidf)")
    p.add_argument("--data", default=None, help="prepared dataset directory (fintune data) or a recipe YAML "
                                                "(required unless --suite)")
    p.add_argument("--suite", choices=("flare",), default=None,
                   help="run a benchmark suite instead (FPB, FiQA-SA, Headlines, NER, TFNS) and write one table "
                        "with published anchors; --limit N = first N test rows per task (default 200)")
    p.add_argument("--tasks", nargs="+", default=None, help="--suite: only these tasks (fpb fiqa_sa headlines ner tfns)")
    p.add_argument("--data-root", default=None, help="--suite: datasets folder (default $FINTUNE_DATA or ../shared/data)")
    p.add_argument("--out", required=True, help="output directory (replaced atomically)")
    p.add_argument("--mode", choices=("score", "generate"), default=None,
                   help="score: rank labels by log-probability (default for classification; also ranks the 12 "
                        "bins of label-only forecaster answers); generate: generate and parse strictly")
    p.add_argument("--baseline", choices=("majority", "tfidf", "zero-shot"), default=None,
                   help="evaluate a baseline instead: majority class, TF-IDF + logistic regression, or the base "
                        "model of RUN_OR_MODEL zero-shot with the same prompt")
    p.add_argument("--split", choices=("test", "validation"), default="test")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=64, help="generate mode only")
    p.add_argument("--no-temperature-scaling", action="store_true",
                   help="do not fit a temperature on the validation split")
    p.add_argument("--bootstrap-samples", type=int, default=1000, help="resamples for 95%% intervals (0 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N examples only")
    p.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune eval`` and print the headline metrics."""
    from fintune.errors import FintuneError
    from fintune.evaluate import run_eval

    if getattr(args, "suite", None):
        from fintune.evaluate.suite import run_suite

        if not args.run_or_model:
            raise FintuneError("eval --suite: give RUN_OR_MODEL (a run directory, model directory or alias)")
        summary = run_suite(args.run_or_model, args.out, suite=args.suite, tasks=args.tasks,
                            limit=200 if args.limit is None else args.limit, data_root=args.data_root,
                            batch_size=args.batch_size, max_new_tokens=max(args.max_new_tokens, 96),
                            dtype=args.dtype, seed=args.seed, progress=not args.no_progress)
        print(summary["table"])
        print(f"wrote {args.out}/suite.md")
        return 0
    if not args.data:
        raise FintuneError("eval: --data is required", "give a prepared directory or a recipe, or use --suite")
    metrics = run_eval(args.run_or_model, args.data, args.out, mode=args.mode, baseline=args.baseline,
                       split=args.split, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                       temperature_scaling=not args.no_temperature_scaling,
                       bootstrap_samples=args.bootstrap_samples, seed=args.seed, limit=args.limit,
                       dtype=args.dtype, progress=not args.no_progress)
    keys = ("model", "mode", "split", "n", "accuracy", "f1_weighted", "f1_macro", "mcc", "invalid_rate")
    head = {k: metrics[k] for k in keys if k in metrics}
    if "calibration" in metrics:
        cal = metrics["calibration"]
        head.update(temperature=cal["temperature"], ece_before=cal["ece_before"], ece_after=cal["ece_after"],
                    calibration=cal.get("note"))
    if "forecast" in metrics:
        fc = metrics["forecast"]
        head.update(direction_accuracy=fc["direction_accuracy"], parse_rate=fc["parse_rate"])
    if metrics.get("gold") == "no gold":
        head["gold"] = "no gold"
    print(json.dumps(head, indent=2))
    print(f"wrote {args.out}")
    return 0
