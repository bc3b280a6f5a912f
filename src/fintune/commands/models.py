"""``fintune models ls | pull NAME [--from PATH] [--force] | quantize MODEL --out DIR``."""

from __future__ import annotations

import argparse

from fintune.cliargs import add_overwrite_argument
from fintune.models import list_models, pull_model, save_quantized


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``models`` verb."""
    p = sub.add_parser("models", help="list and fetch embedded model aliases (offline-capable)")
    ms = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ms.add_parser("ls", help="list aliases and whether they are cached")
    pull = ms.add_parser("pull", help="fetch an alias into the cache (GGUF -> plain HF directory)")
    pull.add_argument("name")
    pull.add_argument("--from", dest="source", default=None, help="a GGUF file or a directory holding one")
    pull.add_argument("--force", action="store_true", help="rebuild even when cached")
    quant = ms.add_parser("quantize", help="save a 4-bit NF4 copy for QLoRA (loads without reading full weights)")
    quant.add_argument("model", help="alias, hub id or local directory")
    quant.add_argument("--out", required=True, help="directory for the 4-bit checkpoint")
    quant.add_argument("--quant-type", choices=("nf4", "fp4"), default="nf4")
    quant.add_argument("--no-double-quant", action="store_true", help="skip quantizing the quantization constants")
    add_overwrite_argument(quant)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune models``."""
    if args.action == "quantize":
        print(save_quantized(args.model, args.out, quant_type=args.quant_type,
                             double_quant=not args.no_double_quant, overwrite=args.overwrite))
        return 0
    if args.action == "ls":
        for row in list_models():
            print(f"{row['name']:<16} cached={row['cached']:<3}  {row['hub_id']:<40} {row['path']}")
        return 0
    print(pull_model(args.name, source=args.source, force=args.force))
    return 0
