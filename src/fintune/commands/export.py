"""``fintune export RUN --format gguf|ollama --out DIR``: a run as GGUF for llama.cpp / LM Studio / Ollama."""

from __future__ import annotations

import argparse

from fintune.cliargs import add_overwrite_argument


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``export`` verb."""
    p = sub.add_parser("export", help="merge a run and write a GGUF (llama.cpp, LM Studio) or GGUF + Modelfile "
                                      "(Ollama) with a model card")
    p.add_argument("run", help="run directory from fintune train (LoRA) or a merged model directory")
    p.add_argument("--format", default="gguf", help="gguf (default) or ollama (GGUF + Modelfile)")
    p.add_argument("--quant", default="f16", help="f16 (default), f32, bf16, q8_0 or q4_0")
    p.add_argument("--out", required=True, help="output directory (GGUF, README.md model card, manifest)")
    add_overwrite_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune export``."""
    from fintune.export import export_run

    result = export_run(args.run, args.out, fmt=args.format, quant=args.quant, overwrite=args.overwrite)
    print(result.gguf)
    return 0
