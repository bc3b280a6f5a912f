"""``fintune walkforward RECIPE --windows N --test-weeks K --purge-weeks P [--embargo-weeks E --two-sided] --out DIR``."""

from __future__ import annotations

import argparse

from fintune.cliargs import add_overwrite_argument, non_negative_int, positive_int
from fintune.recipe import load_recipe
from fintune.walkforward import run_walkforward


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``walkforward`` verb."""
    p = sub.add_parser("walkforward", help="retrain the forecaster per window, predict each test window (purged)",
                       description="The last N x K weeks of the recipe's forecaster examples become N test windows; "
                                   "for each, a model is trained on the examples whose labels end P weeks before "
                                   "it and predicts its weeks. OUT/predictions.jsonl feeds `fintune backtest`.")
    p.add_argument("recipe", help="forecaster recipe YAML or shipped recipe name")
    p.add_argument("--windows", type=positive_int, required=True, help="number of test windows (N)")
    p.add_argument("--test-weeks", type=positive_int, required=True, help="weeks per test window (K)")
    p.add_argument("--purge-weeks", type=non_negative_int, default=1,
                   help="drop training labels resolved in the P weeks before each test window (default 1)")
    p.add_argument("--embargo-weeks", type=non_negative_int, default=0,
                   help="with --two-sided: drop training examples in the E weeks after each test window")
    p.add_argument("--two-sided", action="store_true",
                   help="also train on examples after the test window (purged k-fold), minus the embargo")
    p.add_argument("--out", required=True, help="output directory (predictions.jsonl, windows/, manifest.json)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key (repeatable)")
    p.add_argument("--no-progress", action="store_true")
    add_overwrite_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune walkforward`` and print one line per window."""
    manifest = run_walkforward(load_recipe(args.recipe, args.overrides), args.out, args.windows, args.test_weeks,
                               args.purge_weeks, args.embargo_weeks, args.two_sided, overwrite=args.overwrite,
                               progress=not args.no_progress)
    for w in manifest.windows:
        print(f"window {w.window}: train {w.train_first_week} .. {w.train_last_week} ({w.n_train} examples, "
              f"{w.n_purged} purged, {w.n_embargoed} embargoed) -> test {w.test_first_week} .. {w.test_last_week} "
              f"({w.n_test} predicted)")
    print(f"wrote {args.out}/predictions.jsonl ({manifest.n_predictions} predictions); "
          f"backtest: fintune backtest --predictions {args.out}/predictions.jsonl --prices PRICES --out DIR")
    return 0
