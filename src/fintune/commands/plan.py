"""``fintune plan RECIPE [--set k=v ...] [--budget 8GB] [--device cuda|cpu] [--num-processes N] [--config C]
[--json]``."""

from __future__ import annotations

import argparse
import json

from fintune.cliargs import bounded
from fintune.recipe import load_recipe
from fintune.train.plan import parse_bytes, plan
from fintune.train.plan_advice import format_plan


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``plan`` verb."""
    p = sub.add_parser("plan", help="estimate trainable parameters and peak training memory before a run",
                       description="Count trainable parameters exactly (meta-device model, no weights read) and "
                                   "estimate peak training memory; with --budget, the largest batch / sequence "
                                   "length that fits.")
    p.add_argument("recipe", help="recipe path or shipped recipe name")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key (repeatable)")
    p.add_argument("--budget", default=None, metavar="SIZE", help="memory per device, e.g. 8GB, 24GiB")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="where training runs (decides dtype 'auto' and the runtime overhead)")
    p.add_argument("--trained-fraction", type=bounded(float, 0, 1, low_open=True), default=1.0, metavar="F",
                   help="share of token positions the loss trains on (answer-only loss computes logits only "
                        "there); 1.0 = upper bound")
    p.add_argument("--num-processes", type=int, default=None, metavar="N",
                   help="processes (GPUs) of the launch; memory is then per device (default: the config's, else 1)")
    p.add_argument("--config", default=None, metavar="CONFIG",
                   help="accelerate config of the launch: ddp, zero2, zero3, fsdp (shipped) or a YAML path; "
                        "decides how weights, gradients and optimizer states are sharded (default: DDP)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune plan``."""
    recipe = load_recipe(args.recipe, args.overrides)
    budget = parse_bytes(args.budget) if args.budget is not None else None
    result = plan(recipe, budget=budget, device=args.device, logits_fraction=args.trained_fraction,
                  num_processes=args.num_processes, config=args.config)
    print(json.dumps(result, indent=2) if args.json else format_plan(result))
    return 0
