"""``fintune data RECIPE --out DIR [--set k=v ...] [--overwrite]``: prepare a recipe's dataset."""

from __future__ import annotations

import argparse
import sys

from fintune.cliargs import add_overwrite_argument
from fintune.data.prepare import prepare_data
from fintune.recipe import load_recipe
from fintune.run import read_run


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``data`` verb."""
    p = sub.add_parser("data", help="load, split, leakage-check and render a recipe's dataset",
                       description="Load the sources in recipe.data, split them, report (and optionally drop) "
                                   "leaked duplicates, render prompts and write train/validation/test parquet "
                                   "files plus manifest.json.")
    p.add_argument("recipe", help="recipe YAML path or shipped recipe name")
    p.add_argument("--out", required=True, help="output directory (written atomically)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set data.split.seed=1 (repeatable)")
    add_overwrite_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune data``."""
    recipe = load_recipe(args.recipe, args.overrides)
    out = prepare_data(recipe, args.out, overwrite=args.overwrite)
    manifest = read_run(out, "data")
    for name, n in manifest.counts.items():
        labels = ", ".join(f"{k} {v}" for k, v in manifest.label_counts.get(name, {}).items())
        print(f"{name:<10} {n:>7}  {labels}")
    mix = manifest.mix.get("train") or {}
    if len(mix) > 1:  # a multi-source recipe: the realised mix of the training split
        print("mix train  " + ", ".join(f"{k} {v['share']:.1%}" for k, v in mix.items()))
    for pair, counts in manifest.leakage.across.items():
        across = f", from another source {counts.cross_source}" if len(manifest.sources) > 1 else ""
        print(f"leakage {pair}: exact {counts.exact}, normalized {counts.normalized}, near {counts.near}{across}")
    if manifest.leakage.dropped:
        print("dropped leaked: " + ", ".join(f"{k} {v}" for k, v in manifest.leakage.dropped.items()))
    for warning in manifest.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {out}")
    return 0
