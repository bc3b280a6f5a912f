"""``fintune demo [--quick] [--data DIR] [--out runs/demo]``: the whole pipeline on a CPU in one command."""

from __future__ import annotations

import argparse
from typing import Any

from fintune.cliargs import non_negative_int, positive_int
from fintune.demo import run_demo


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``demo`` verb."""
    p = sub.add_parser("demo", help="run everything on the CPU with the embedded model and write a report",
                       description="Synthetic news + prices (or --data), LoRA fine-tuning of the embedded "
                                   "SmolLM2-135M, evaluation vs zero-shot / TF-IDF / majority with calibration, "
                                   "analyze, backtest and an HTML report, all under --out.")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--data", default=None,
                   help="folder laid out like ../shared/data (FPB, TFNS) instead of synthetic data")
    p.add_argument("--quick", action="store_true", help="2-3 minute smoke version")
    p.add_argument("--model", default="smollm2-135m", help="alias, model directory or hub id")
    p.add_argument("--gguf", default=None, help="GGUF to build the embedded model from when it is not cached")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--max-steps", type=positive_int, default=None, help="override the number of LoRA steps")
    p.add_argument("--n", dest="n_examples", type=positive_int, default=None, help="override the number of examples")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune demo`` and print the summary."""
    summary = run_demo(out=args.out, data=args.data, quick=args.quick, model=args.model, gguf=args.gguf,
                       seed=args.seed, max_steps=args.max_steps, n_examples=args.n_examples,
                       overwrite=args.overwrite)
    print(format_summary(summary))
    return 0


def format_summary(summary: dict[str, Any]) -> str:
    """The final lines the CLI prints: key numbers and where the report is."""
    lines = [f"fintune demo finished in {summary['total_seconds']:.0f} s wall, {summary['total_cpu_seconds']:.0f} s CPU "
             f"({', '.join(f'{k} {v:.0f}s' for k, v in summary['seconds'].items())})",
             f"data: train {summary['counts']['train']}, validation {summary['counts']['validation']}, "
             f"test {summary['counts']['test']}; LoRA {summary['train_steps']} steps, mean train loss "
             f"{summary['train_loss']:.3f}"]
    for name, s in summary["scores"].items():
        ci = s.get("f1_weighted_ci95")
        ci_s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        lines.append(f"  {name:<10} accuracy {s['accuracy']:.3f}  weighted F1 {s['f1_weighted']:.3f}{ci_s}")
    cal = summary["calibration"]
    if cal.get("ece_before") is not None:
        lines.append(f"calibration: ECE {cal['ece_before']:.3f}" + (
            f" -> {cal['ece_after']:.3f} with T={cal['temperature']:.2f}" if cal.get("applied") else
            f"; {cal.get('note') or 'raw probabilities kept'}"))
    bt = summary.get("backtest")
    if bt:
        s, b = bt["strategy"], bt["buy_and_hold"]
        lines.append(f"backtest: total return {100 * s['total_return']:+.1f}% (Sharpe {s['sharpe'] or 0:.2f}, "
                     f"max drawdown {100 * s['max_drawdown']:.1f}%) vs buy-and-hold "
                     f"{100 * b['total_return']:+.1f}%")
    ref = summary.get("references")
    if ref:
        rnd = ref["random"]
        lines.append(f"  reference signals on the same news: gold-label oracle Sharpe {ref['oracle']['sharpe']:.2f}, "
                     f"flipped {ref['flipped']['sharpe']:.2f}, random median {rnd['sharpe_median']:.2f} "
                     f"(90% of {rnd['n']} draws in [{rnd['sharpe_p05']:.2f}, {rnd['sharpe_p95']:.2f}])")
    if summary.get("data", {}).get("banner"):
        lines.insert(0, summary["data"]["banner"])
    lines.append(f"report: {summary['report']}")
    return "\n".join(lines)
