"""``fintune merge RUN --out DIR``: fold a run's LoRA adapter into its base as a plain HF model directory."""

from __future__ import annotations

import argparse

from fintune.cliargs import add_overwrite_argument
from fintune.models import merge_run


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``merge`` verb."""
    p = sub.add_parser("merge", help="merge a LoRA run into a plain Hugging Face model directory")
    p.add_argument("run", help="run directory written by fintune train / pretrain")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    add_overwrite_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune merge``."""
    print(merge_run(args.run, args.out, dtype=args.dtype, overwrite=args.overwrite))
    return 0
