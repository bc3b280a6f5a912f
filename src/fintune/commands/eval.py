"""``fintune eval RUN_OR_MODEL --data PREPARED_OR_RECIPE [--mode score|generate] [--baseline ...] --out DIR``."""

from __future__ import annotations

import argparse
import json

from fintune.cliargs import add_overwrite_argument, non_negative_int, positive_int
from fintune.errors import FintuneError


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
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--mode", choices=("score", "generate"), default=None,
                   help="score: rank labels by log-probability (default for classification; also ranks the 12 "
                        "bins of label-only forecaster answers); generate: generate and parse strictly")
    p.add_argument("--baseline", choices=("majority", "tfidf", "zero-shot"), default=None,
                   help="evaluate a baseline instead: majority class, TF-IDF + logistic regression, or the base "
                        "model of RUN_OR_MODEL zero-shot with the same prompt")
    p.add_argument("--split", choices=("test", "validation"), default=None,
                   help="default: the run recipe's eval.split, else test")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="default: the run recipe's eval.per_device_eval_batch_size, else 8")
    p.add_argument("--max-new-tokens", type=positive_int, default=None,
                   help="generate mode only; default: the run recipe's eval.max_new_tokens, else 64")
    p.add_argument("--no-temperature-scaling", action="store_const", const=False, default=None,
                   dest="temperature_scaling", help="do not fit a temperature on the validation split")
    p.add_argument("--bootstrap-samples", type=non_negative_int, default=None,
                   help="resamples for 95%% intervals (0 = off); default: the run recipe's, else 1000")
    p.add_argument("--backend", choices=("torch", "vllm"), default="torch",
                   help="torch (default) or vllm (optional extra; LoRA adapters served as adapters)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate the first N examples only")
    p.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    p.add_argument("--no-progress", action="store_true")
    add_overwrite_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune eval`` and print the headline metrics."""
    from fintune.evaluate import run_eval

    if getattr(args, "suite", None):
        from fintune.evaluate.suite import run_suite

        if not args.run_or_model:
            raise FintuneError("eval --suite: give RUN_OR_MODEL (a run directory, model directory or alias)")
        summary = run_suite(args.run_or_model, args.out, suite=args.suite, tasks=args.tasks,
                            limit=200 if args.limit is None else args.limit, data_root=args.data_root,
                            batch_size=args.batch_size or 8, max_new_tokens=max(args.max_new_tokens or 96, 96),
                            dtype=args.dtype, seed=args.seed, progress=not args.no_progress,
                            overwrite=args.overwrite)
        print(summary["table"])
        print(f"wrote {args.out}/suite.md")
        return 0
    if not args.data:
        raise FintuneError("eval: --data is required", "give a prepared directory or a recipe, or use --suite")
    metrics = run_eval(args.run_or_model, args.data, args.out, mode=args.mode, baseline=args.baseline,
                       split=args.split, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                       temperature_scaling=args.temperature_scaling,
                       bootstrap_samples=args.bootstrap_samples, seed=args.seed, limit=args.limit,
                       dtype=args.dtype, progress=not args.no_progress, backend=args.backend,
                       overwrite=args.overwrite)
    used = ", ".join(f"{k}={v['value']} ({v['from']})" for k, v in (metrics.get("settings") or {}).items()
                     if v["value"] is not None)
    print(f"eval settings: {used}")
    keys = ("model", "mode", "split", "n", "accuracy", "f1_weighted", "f1_macro", "mcc", "invalid_rate")
    head = {k: metrics[k] for k in keys if k in metrics}
    if "calibration" in metrics:
        cal = metrics["calibration"]
        head.update(temperature=cal["temperature"], ece_before=cal["ece_before"], ece_after=cal["ece_after"],
                    calibration=cal.get("note"))
    if "forecast" in metrics:
        fc = metrics["forecast"]
        head.update(direction_accuracy=fc["direction_accuracy"], parse_rate=fc["parse_rate"])
    agreement = (metrics.get("by_agreement") or {}).get("buckets")
    if agreement:
        head["f1_weighted_by_agreement"] = {b: round(m["f1_weighted"], 4) for b, m in agreement.items() if m["n"]}
    elif (metrics.get("by_agreement") or {}).get("note"):
        head["by_agreement"] = metrics["by_agreement"]["note"]
    if metrics.get("gold") == "no gold":
        head["gold"] = "no gold"
    print(json.dumps(head, indent=2))
    print(f"wrote {args.out}")
    return 0
