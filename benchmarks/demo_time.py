"""How long ``fintune demo`` takes, beside how fast this machine is right now.

Runs ``fintune demo`` (and/or ``--quick``) exactly as a user would (a subprocess, a new ``--out``), records wall and
CPU time per stage from its ``summary.json``, and measures the machine's bf16 GEMM rate (GFLOP/s, median of
repeats) just before and just after, so a slow run on a busy shared machine can be told apart from a slow demo.
Also counts the lines the demo printed and any that look like third-party noise (warnings, raw loss dicts).

    python benchmarks/demo_time.py                 # full demo, target <= 600 s on 2 cores
    python benchmarks/demo_time.py --quick         # target <= 180 s
    python benchmarks/demo_time.py --quick --full  # both

Each demo runs as a newcomer's first run does: in a fresh ``git clone`` of this checkout placed where no ``../shared``
sits beside it, with an empty ``FINTUNE_HOME`` and ``HF_HOME`` and the Hub offline (``--here`` runs in this checkout
with your cache instead).

Final line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_rate import gemm_gflops

TARGETS = {"full": 600.0, "quick": 180.0}
NOISE = re.compile(r"Warning|warn\(|\{'loss'|gemm_4bit|pip install kernels|Traceback", re.IGNORECASE)


def fresh_clone(root: Path) -> tuple[Path, dict[str, str]]:
    """A clean clone of ``root``'s HEAD in a new temporary folder (no ``../shared`` beside it) and an environment
    with empty caches that imports fintune from that clone."""
    base = Path(tempfile.mkdtemp(prefix="demo_fresh_"))
    clone = base / "fintune"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("FINTUNE_HOME", "HF_HOME", "PYTHONPATH",
                                                          "FINTUNE_SHARED", "FINTUNE_SMOLLM2_GGUF")}
    env.update({"FINTUNE_HOME": str(base / "empty-cache" / "fintune"), "HF_HOME": str(base / "empty-cache" / "hf"),
                "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(clone / "src")})
    if (base / "shared").exists():
        raise SystemExit(f"{base / 'shared'} exists: the clone would see ../shared")
    return clone, env


def run_demo(quick: bool, root: Path, here: bool = False) -> dict[str, object]:
    """One ``fintune demo`` subprocess into a fresh directory; its timings, summary and printed-line counts."""
    cwd, env = (root, dict(os.environ)) if here else fresh_clone(root)
    out = Path(tempfile.mkdtemp(prefix="demo_time_")) / "demo"
    cmd = [sys.executable, "-m", "fintune", "demo", "--out", str(out)] + (["--quick"] if quick else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"demo failed (rc {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    summary = json.loads((out / "summary.json").read_text())
    # tqdm redraws with \r: count the finished lines a user is left with
    lines = [ln.split("\r")[-1] for ln in (proc.stderr + proc.stdout).splitlines() if ln.split("\r")[-1].strip()]
    noisy = [ln for ln in lines if NOISE.search(ln)]
    return {"wall_s": round(wall, 1), "demo_total_s": summary["total_seconds"],
            "cpu_s": summary["total_cpu_seconds"], "stages_s": summary["seconds"],
            "target_s": TARGETS["quick" if quick else "full"], "within_target": wall <= TARGETS["quick" if quick
                                                                                              else "full"],
            "printed_lines": len(lines), "noise_lines": noisy[:5], "data": summary.get("data", {}).get("kind"),
            "scores": {k: v["f1_weighted"] for k, v in summary["scores"].items()},
            "backtest_sharpe": (summary.get("backtest") or {}).get("strategy", {}).get("sharpe"),
            "references": {k: (summary.get("references") or {}).get(k, {}).get("sharpe")
                           for k in ("oracle", "flipped")} | {
                "random_median": ((summary.get("references") or {}).get("random") or {}).get("sharpe_median")},
            "load_average_at_end": summary.get("load_average_at_end"),
            "fresh_clone_empty_cache": not here, "cwd": str(cwd)}


def main() -> None:
    """Parse flags, run the demo(s) between two GEMM measurements, print the JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="time fintune demo --quick")
    ap.add_argument("--full", action="store_true", help="time the full demo (the default when --quick is absent)")
    ap.add_argument("--here", action="store_true", help="run in this checkout with the current caches")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    kinds = (["quick"] if args.quick else []) + (["full"] if args.full or not args.quick else [])
    result: dict[str, object] = {"benchmark": "demo_time", "cpu_count": os.cpu_count(),
                                 "load_average_at_start": list(os.getloadavg()),
                                 "gemm_bf16_gflops_before": round(gemm_gflops(), 1)}
    for kind in kinds:
        result[kind] = run_demo(kind == "quick", root, args.here)
    result["gemm_bf16_gflops_after"] = round(gemm_gflops(), 1)
    for kind in kinds:
        r = result[kind]
        print(f"{kind}: {r['wall_s']} s wall (target {r['target_s']:.0f} s), CPU {r['cpu_s']} s; bf16 GEMM "
              f"{result['gemm_bf16_gflops_before']} -> {result['gemm_bf16_gflops_after']} GFLOP/s this run",
              file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
