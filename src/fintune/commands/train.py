"""``fintune train RECIPE [--out RUN] [--resume] [--set key=value ...]`` (stage 2: LoRA / QLoRA / full SFT)."""

from __future__ import annotations

import argparse
import json

from fintune.cliargs import add_overwrite_argument
from fintune.recipe import load_recipe
from fintune.train.distributed import is_main_process
from fintune.train.sft import train_sft


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by ``train`` and ``pretrain``."""
    p.add_argument("recipe", help="recipe YAML path or shipped name (see `fintune recipes ls`)")
    p.add_argument("--out", default=None, help="run directory (default: recipe output_dir or runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in RUN/checkpoints")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key (repeatable), e.g. --set max_steps=10")
    add_overwrite_argument(p)


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` verb."""
    p = sub.add_parser("train", help="stage 2: supervised fine-tuning (LoRA, QLoRA or full)")
    add_run_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune train``."""
    recipe = load_recipe(args.recipe, args.overrides)
    summary = train_sft(recipe, out=args.out, resume=args.resume, overwrite=args.overwrite)
    if is_main_process():  # one summary line per run, not one per process
        print(json.dumps({k: v for k, v in summary.items() if k not in ("trainable_line", "history")}))
    return 0
