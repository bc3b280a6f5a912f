"""``fintune sweep RECIPE --space SPACE.yaml --trials N --out DIR``."""

from __future__ import annotations

import argparse
import json

from fintune.cliargs import add_overwrite_argument, non_negative_int, positive_int
from fintune.recipe import load_recipe
from fintune.sweep import load_space, run_sweep


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``sweep`` verb."""
    p = sub.add_parser("sweep", help="LoRA hyper-parameter search with Optuna (validation metric, resumable)",
                       description="Each trial trains a normal run under OUT/trials and is scored on the validation "
                                   "split. The study is stored in OUT/study.db; running again resumes it.")
    p.add_argument("recipe", help="recipe YAML or shipped recipe name (needs data.split.val_size > 0)")
    p.add_argument("--space", required=True, help="search space YAML (see fintune.sweep)")
    p.add_argument("--trials", type=positive_int, required=True, help="number of (more) trials to run")
    p.add_argument("--out", required=True, help="sweep directory (study.db, trials/, summary.md, plots)")
    p.add_argument("--metric", default="f1_weighted",
                   help="validation metric: f1_weighted, accuracy, f1_macro, mcc (maximised), eval_loss, "
                        "invalid_rate (minimised)")
    p.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe")
    p.add_argument("--seed", type=non_negative_int, default=42)
    p.add_argument("--study-name", default=None, help="default: the recipe name")
    p.add_argument("--eval-limit", type=positive_int, default=None, help="score only the first N validation rows per trial")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key for every trial (repeatable)")
    p.add_argument("--no-progress", action="store_true")
    add_overwrite_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune sweep`` and print the best trial."""
    summary = run_sweep(load_recipe(args.recipe, args.overrides), load_space(args.space), args.out, args.trials,
                        metric=args.metric, sampler=args.sampler, seed=args.seed, study_name=args.study_name,
                        eval_limit=args.eval_limit, progress=not args.no_progress,
                        overwrite=args.overwrite)
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}/summary.md")
    return 0
