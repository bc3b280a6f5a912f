"""``fintune pretrain RECIPE [--out RUN] [--resume] [--set key=value ...]`` (stage 1: continued pretraining)."""

from __future__ import annotations

import argparse
import json

from fintune.commands.train import add_run_arguments
from fintune.recipe import load_recipe
from fintune.train.distributed import is_main_process
from fintune.train.pretrain import pretrain


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``pretrain`` verb."""
    p = sub.add_parser("pretrain", help="stage 1: causal-LM continued pretraining on raw financial text")
    add_run_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune pretrain``."""
    recipe = load_recipe(args.recipe, args.overrides)
    summary = pretrain(recipe, out=args.out, resume=args.resume, overwrite=args.overwrite)
    if is_main_process():  # one summary line per run, not one per process
        print(json.dumps({k: v for k, v in summary.items() if k not in ("trainable_line", "history")}))
    return 0
