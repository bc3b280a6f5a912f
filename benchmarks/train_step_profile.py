"""Where a CPU training step of the FPB recipe goes: LoRA dropout, compiled decoder layers, and the op breakdown.

Each configuration runs in its own subprocess the shipped ``recipes/smollm2-135m/fpb_lora.yaml`` model setup
(SmolLM2-135M, LoRA r=16 all-linear, float32 weights, ``fp32_matmul_precision: auto``) on the same FPB training
batches of 16 examples, packed exactly as ``fintune train`` packs them, with the answer-only loss and AdamW, and
times steps one by one. Step 1 (kernel creation; the compile for ``compiled``) is reported apart and left out of
the steady-state tokens/s (median over the remaining steps' per-step tokens/s).

Configurations (only the named setting differs):

* ``dropout``: ``lora_dropout: 0.05`` (the recipe until session 3): peft draws a Bernoulli mask over the *input* of
  every LoRA layer (210 of them), each the size of the activations, and keeps it for the backward pass;
* ``eager``: ``lora_dropout: 0``;
* ``compiled``: ``lora_dropout: 0`` + ``torch_compile: true`` (each decoder layer compiled, one shared graph).

Usage: ``python benchmarks/train_step_profile.py [--steps 8] [--profile]``; ``--profile`` prints the top torch
profiler ops of two steps per configuration. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
CONFIGS = {"dropout": ["lora_dropout=0.05", "torch_compile=false"],
           "eager": ["lora_dropout=0.0", "torch_compile=false"],
           "compiled": ["lora_dropout=0.0", "torch_compile=true"]}
BATCH = 16


def worker(config: str, steps: int, profile: bool) -> dict:
    """Time ``steps`` optimizer steps of one configuration; return per-step seconds and tokens."""
    import resource

    import torch

    from fintune.recipe import load_recipe
    from fintune.train.collate import PackingCollator, answer_only_loss
    from fintune.train.precision import compile_decoder_layers, fp32_matmul_precision
    from fintune.train.sft import encode_rows, prepare_model

    os.environ.setdefault("FINTUNE_DATA", str(ROOT.parent / "shared" / "data"))  # the recipe's ${FINTUNE_DATA}
    recipe = load_recipe(str(ROOT / "recipes" / "smollm2-135m" / "fpb_lora.yaml"), CONFIGS[config])
    model, tok, _ = prepare_model(recipe)
    if recipe.torch_compile:
        compile_decoder_layers(model)
    model.train()
    rows = _fpb_rows(recipe, tok, (steps + 2) * BATCH)
    encoded = encode_rows(rows, tok, recipe.max_seq_length, "FPB")
    collate = PackingCollator(tok.pad_token_id, recipe.max_seq_length)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.learning_rate)

    def step(i: int) -> int:
        batch = collate(encoded[BATCH * i: BATCH * (i + 1)])
        answer_only_loss(model, batch).backward()
        opt.step()
        opt.zero_grad()
        return int(sum(len(r["input_ids"]) for r in encoded[BATCH * i: BATCH * (i + 1)]))

    seconds, tokens = [], []
    with fp32_matmul_precision(recipe.fp32_matmul_precision):
        for i in range(steps):
            t = time.perf_counter()
            tokens.append(step(i))
            seconds.append(time.perf_counter() - t)
        table = None
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                step(steps)
                step(steps + 1)
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    rates = [n / s for n, s in zip(tokens[1:], seconds[1:], strict=True)]
    return {"config": config, "first_step_s": seconds[0], "step_s": seconds[1:], "tokens": tokens,
            "tokens_per_s": statistics.median(rates),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads(), "profile": table}


def _fpb_rows(recipe: object, tokenizer: object, n: int) -> list[dict]:
    """The first ``n`` FPB training rows rendered the way ``fintune data`` renders them for this recipe."""
    import tempfile

    from fintune.data.prepare import prepare_data, read_prepared

    with tempfile.TemporaryDirectory() as tmp:
        out = prepare_data(recipe, Path(tmp) / "data", tokenizer=tokenizer)
        return read_prepared(out)["train"][:n]


def main() -> int:
    """Run each configuration in a subprocess; print a table and a JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per configuration (>= 2)")
    ap.add_argument("--profile", action="store_true", help="also print the top profiler ops of two more steps")
    ap.add_argument("--worker", choices=tuple(CONFIGS), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.steps < 2:
        ap.error("--steps must be >= 2")
    if a.worker:
        print("RESULT " + json.dumps(worker(a.worker, a.steps, a.profile)), flush=True)
        return 0
    results = {}
    for config in CONFIGS:
        cmd = [sys.executable, __file__, "--worker", config, "--steps", str(a.steps)] + (["--profile"] * a.profile)
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            print(f"{config} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
            return 1
        results[config] = json.loads(line[7:])
        if results[config]["profile"]:
            print(f"--- {config}\n{results[config]['profile']}")
    print(f"{'config':<10}{'step 1 s':>10}{'median tok/s':>14}{'peak RSS MB':>13}  seconds per step")
    for r in results.values():
        print(f"{r['config']:<10}{r['first_step_s']:>10.1f}{r['tokens_per_s']:>14.1f}{r['peak_rss_mb']:>13.0f}  "
              f"{[round(s, 2) for s in r['step_s']]}")
    d, e, c = (results[k]["tokens_per_s"] for k in CONFIGS)
    print(json.dumps({"eager_vs_dropout": e / d, "compiled_vs_eager": c / e, "compiled_vs_dropout": c / d,
                      "tokens_per_s": {k: r["tokens_per_s"] for k, r in results.items()},
                      "peak_rss_mb": {k: r["peak_rss_mb"] for k, r in results.items()},
                      "first_step_s": {k: r["first_step_s"] for k, r in results.items()},
                      "steps": a.steps, "batch": BATCH, "threads": results["eager"]["threads"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
