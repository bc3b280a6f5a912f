"""``fintune analyze "TEXT" --model RUN`` or ``fintune analyze --file in.jsonl|csv --out out.jsonl --model RUN``."""

from __future__ import annotations

import argparse
import json
import sys

from fintune.cliargs import positive_int
from fintune.errors import FintuneError
from fintune.records import check_strings


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``analyze`` verb."""
    p = sub.add_parser("analyze", help="analyse a text (or a JSONL/CSV file) with a run: label, probabilities, "
                                       "calibrated confidence, expected move",
                       description="Prints JSON for one text, or streams a JSONL/CSV file into a predictions "
                                   "JSONL (resumable: rows already written are skipped on restart).")
    p.add_argument("text", nargs="?", default=None, help="the text to analyse (omit with --file)")
    p.add_argument("--model", default="smollm2-135m",
                   help="run directory, model directory, hub id or alias (default: the embedded smollm2-135m)")
    p.add_argument("--file", default=None, help="input .jsonl or .csv with 'text' and optional id, ticker, date")
    p.add_argument("--out", default=None, help="output predictions .jsonl (with --file)")
    p.add_argument("--explain", action="store_true", help="also generate a short explanation (slower)")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--calibration", default=None,
                   help="calibration.json or `fintune eval` output dir to take the temperature from "
                        "(default: found in the run directory)")
    p.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    p.add_argument("--backend", choices=("torch", "vllm"), default="torch",
                   help="torch (default) or vllm (optional extra; LoRA adapters served as adapters)")
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune analyze``."""
    from pathlib import Path

    from fintune.analyze import AnalyzeItem, Analyzer, analyze_file, check_analyze_input, public_result

    if (args.text is None) == (args.file is None):
        raise FintuneError("analyze: give either TEXT or --file", 'e.g. fintune analyze "Apple beats estimates"')
    if args.file and not args.out:
        raise FintuneError("analyze --file needs --out OUT.jsonl")
    if args.text is not None:
        if not args.text.strip():
            raise FintuneError("analyze: TEXT is empty")
        check_strings(args.text, "TEXT", "text")  # undecodable argv bytes arrive as lone surrogates
    # every input is checked before the model loads (seconds to minutes)
    items = check_analyze_input(args.file, args.out) if args.file else None
    if args.calibration and not Path(args.calibration).exists():
        raise FintuneError(f"--calibration {args.calibration}: not found",
                           "give a calibration.json or a `fintune eval` output directory")
    analyzer = Analyzer.load(args.model, dtype=args.dtype, batch_size=args.batch_size, calibration=args.calibration,
                             backend=args.backend)
    if args.file:
        summary = analyze_file(analyzer, args.file, args.out, batch_size=args.batch_size, explain=args.explain,
                               progress=not args.no_progress, items=items)
        print(json.dumps(summary))
        return 0
    pred = analyzer.predict([AnalyzeItem(text=args.text, id="cli", where="TEXT")], explain=args.explain)[0]
    result = public_result(pred, analyzer)
    result.pop("id", None)
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0
