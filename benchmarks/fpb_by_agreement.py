"""FPB evals broken down by annotator agreement: 50-65%, 66-74%, 75-99% and 100% of annotators agreeing.

FPB test sentences come from ``Sentences_50Agree``; each one's highest agreement level is found by membership
(same text, same label) in ``Sentences_66Agree`` / ``75Agree`` / ``AllAgree``
(:mod:`fintune.evaluate.agreement`). No model runs: this reads each eval's predictions.jsonl and the prepared
split it scored (the eval records where), and computes the metrics ``fintune eval`` does, per bucket, with
bootstrap 95% intervals.

Usage::

    python benchmarks/fpb_by_agreement.py --eval runs/fpb-lora-eval [--eval runs/other-eval ...] \\
        [--data ../shared/data/financial_phrasebank] [--bootstrap-samples 1000]

The last line printed is one JSON object: ``{"evals": {EVAL_DIR: {"n": ..., "buckets": {bucket: metrics}}}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DEFAULT_DATA = Path(os.environ.get("FINTUNE_SHARED", ROOT.parent / "shared")) / "data" / "financial_phrasebank"


def _cell(m: dict, key: str) -> str:
    ci = (m.get("ci95") or {}).get(key)
    return f"{m[key]:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{m[key]:.3f}"


def table(result: dict) -> str:
    """One eval's buckets as a markdown table."""
    lines = [f"## {result['eval']} ({result['n']} {result['split']} rows; texts from {result['texts_from']})", "",
             "| agreement | n | accuracy [95% CI] | weighted F1 [95% CI] | macro F1 [95% CI] |", "|---|---|---|---|---|"]
    for bucket, m in result["buckets"].items():
        if not m["n"]:
            lines.append(f"| {bucket} | 0 | - | - | - |")
            continue
        lines.append(f"| {bucket} | {m['n']} | {_cell(m, 'accuracy')} | {_cell(m, 'f1_weighted')} | "
                     f"{_cell(m, 'f1_macro')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print one table per eval and a final JSON line."""
    from fintune.errors import FintuneError
    from fintune.evaluate.agreement import eval_by_agreement

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval", action="append", required=True, dest="evals", help="an eval output directory")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="the FinancialPhraseBank-v1.0 folder")
    ap.add_argument("--prepared", default=None,
                    help="the prepared data directory the evals scored (default: the one each eval recorded)")
    ap.add_argument("--bootstrap-samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = {}
    try:
        for ev in args.evals:
            res = eval_by_agreement(ev, args.data, args.prepared, args.bootstrap_samples, args.seed)
            print(table(res) + "\n")
            out[ev] = res
    except FintuneError as exc:
        print(f"fpb_by_agreement: error: {exc.one_line()}", file=sys.stderr)
        return 2
    print(json.dumps({"evals": out, "data": args.data, "bootstrap_samples": args.bootstrap_samples,
                      "command": " ".join(["python", *sys.argv])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
