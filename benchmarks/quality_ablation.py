"""Quality levers for FPB at equal compute: each variant trains for the same wall-clock budget, then is evaluated.

Every variant is the shipped ``fpb_lora.yaml`` (or the sentiment-mix recipe) with ``max_train_minutes`` set to the same
budget, so a lever that makes steps faster sees more data and one that costs time sees less: the comparison is at equal
compute, not at equal steps (the FiQA-SA pair is the shipped recipe's fixed 2 epochs with and without balanced class
weights: weighting costs nothing per step). Each variant runs ``fintune train`` then ``fintune eval`` in subprocesses with
``OMP_NUM_THREADS=--threads`` (two copies of this script with one thread each use both cores of a 2-core machine), and
is skipped when its eval already exists (the script resumes). The table gives test weighted F1 with its bootstrap CI,
macro F1, MCC, ECE after temperature scaling, invalid rate, optimizer steps reached, and the paired-bootstrap
difference of weighted F1 against ``--reference`` (same 1,212 test sentences). The bf16 GEMM rate of this process
(``--threads`` threads) is measured before and after, since the budget buys different work on different days.

    python benchmarks/quality_ablation.py --variants baseline,mix --minutes 15 --threads 1 --out runs/ablation

Final line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from machine_rate import gemm_gflops

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "smollm2-135m"
FPB = "fpb_lora.yaml"
MIX = "fpb_sentiment_mix_lora.yaml"
FIQA = "fiqa_lora.yaml"
TFNS = "tfns_lora.yaml"
# name -> (recipe, --set overrides, trained to the time budget?, the variant its paired difference is against)
VARIANTS: dict[str, tuple[str, list[str], bool, str]] = {
    "baseline": (FPB, [], True, "baseline"),
    "mix": (MIX, [], True, "baseline"),
    "rslora": (FPB, ["use_rslora=true"], True, "baseline"),
    "loraplus": (FPB, ["loraplus_lr_ratio=8", "learning_rate=5.0e-4"], True, "baseline"),
    "r32": (FPB, ["lora_r=32", "lora_alpha=64"], True, "baseline"),
    "best_f1": (FPB, ["eval_steps=40", "save_steps=40", "load_best_model_at_end=true",
                      "metric_for_best_model=f1_weighted"], True, "baseline"),
    "bf16_weights": (FPB, ["dtype=bfloat16", "bf16=true"], True, "baseline"),
    "mix_rslora": (MIX, ["use_rslora=true"], True, "mix"),
    # FiQA-SA's rare neutral class: the shipped recipe (2 epochs, no budget) with and without balanced class weights
    "fiqa": (FIQA, [], False, "fiqa"),
    "fiqa_balanced": (FIQA, ["class_weighting=balanced"], False, "fiqa"),
    # TFNS: the recipe until session 7 (205 steps, a third of the training tweets once), for its seed mean
    "tfns": (TFNS, ["max_steps=205"], False, "tfns"),
    # the shipped TFNS recipe: every training tweet once (567 steps)
    "tfns_epoch": (TFNS, [], False, "tfns"),
}


def variant_dir(out: Path, name: str, seed: int) -> Path:
    """Where a variant's run and eval live: ``OUT/NAME`` for seed 42 (the recipes' seed), else ``OUT/NAME-sSEED``."""
    return out / (name if seed == 42 else f"{name}-s{seed}")


def run_variant(name: str, out: Path, minutes: float, seed: int, threads: int, epochs: float) -> dict[str, Any]:
    """Train (unless done) and evaluate (unless done) one variant; returns its row."""
    recipe, sets, budgeted, _ = VARIANTS[name]
    run, ev = variant_dir(out, name, seed) / "run", variant_dir(out, name, seed) / "eval"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    wall = {}
    if not (run / "manifest.json").exists():
        budget = [f"max_train_minutes={minutes}", f"num_train_epochs={epochs}"] if budgeted else []
        overrides = [*budget, f"seed={seed}", *sets]
        cmd = [sys.executable, "-m", "fintune", "train", str(RECIPES / recipe), "--out", str(run), "--overwrite"]
        for item in overrides:
            cmd += ["--set", item]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        wall["train_wall_s"] = time.perf_counter() - t0
    if not (ev / "metrics.json").exists():
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fintune", "eval", str(run), "--data", str(run / "data"),
                        "--out", str(ev), "--overwrite"], check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        wall["eval_wall_s"] = time.perf_counter() - t0
    metrics = json.loads((ev / "metrics.json").read_text())
    training = json.loads((run / "manifest.json").read_text())["training"]
    cls = metrics["classification"]
    return {"variant": name, "recipe": recipe, "overrides": sets, "seed": seed,
            "steps": training["global_step"], "train_runtime_s": training.get("train_runtime_s"),
            "stopped_by_time_budget": training.get("stopped_by_time_budget"),
            "budgeted": budgeted, "examples_seen": training["global_step"] * 16, "train_examples": training["train_examples"],
            "f1_weighted": cls["f1_weighted"], "f1_weighted_ci95": cls["ci95"]["f1_weighted"],
            "f1_macro": cls["f1_macro"], "mcc": cls["mcc"], "accuracy": cls["accuracy"],
            "invalid_rate": metrics["invalid_rate"], "ece_after": metrics["calibration"].get("ece_after"),
            "eval_dir": str(ev), **wall}


def main() -> int:
    """Run the variants, print the table and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="baseline,mix,rslora,loraplus",
                        help=f"comma-separated, from {','.join(VARIANTS)}")
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget per variant (wall clock)")
    parser.add_argument("--epochs", type=float, default=4.0, help="upper bound on epochs (the budget stops first)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    args = parser.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    sys.path.insert(0, str(ROOT / "src"))
    from fintune.evaluate.compare import load_run, paired_bootstrap

    gemm_before = gemm_gflops(n=1024, repeats=5, threads=args.threads)
    rows = [run_variant(v, args.out, args.minutes, args.seed, args.threads, args.epochs) for v in names]
    gemm_after = gemm_gflops(n=1024, repeats=5, threads=args.threads)
    for row in rows:
        reference = VARIANTS[row["variant"]][3]
        ref_eval = variant_dir(args.out, reference, args.seed) / "eval"
        if reference != row["variant"] and (ref_eval / "metrics.json").exists():
            delta = paired_bootstrap(load_run(ref_eval), load_run(row["eval_dir"]))["f1_weighted"]
            row.update(reference=reference, delta_f1_weighted_vs_reference=delta["delta"], delta_ci95=delta["ci95"])
    print(f"budget {args.minutes} min per variant, {args.threads} thread(s); bf16 GEMM {gemm_before:.0f} -> "
          f"{gemm_after:.0f} GFLOP/s this run")
    print("| variant | steps | wF1 [95% CI] | macro F1 | MCC | ECE | d wF1 vs reference [95% CI] |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["f1_weighted_ci95"]
        d = (f"{r['delta_f1_weighted_vs_reference']:+.3f} [{r['delta_ci95'][0]:+.3f}, {r['delta_ci95'][1]:+.3f}] "
             f"vs {r['reference']}" if "delta_ci95" in r else "")
        print(f"| {r['variant']} | {r['steps']} | {r['f1_weighted']:.3f} [{lo:.3f}, {hi:.3f}] | {r['f1_macro']:.3f} "
              f"| {r['mcc']:.3f} | {r['ece_after']:.3f} | {d} |")
    print(json.dumps({"minutes": args.minutes, "threads": args.threads, "seed": args.seed,
                      "gemm_bf16_gflops": [round(gemm_before, 1), round(gemm_after, 1)], "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
