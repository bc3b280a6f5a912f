"""Training throughput on the embedded default: fintune SFT vs a plain HF Trainer + peft baseline, QLoRA vs LoRA, MFU.

Every configuration trains the same SmolLM2-135M (``smollm2-135m``), on the same Financial PhraseBank examples
(rendered with the prompts helper, tokenized with the answer mask), with the same seed, LoRA (r=16, all-linear),
learning rate and batch size, for the same number of optimizer steps, each in its own subprocess so peak RSS is
that configuration's alone.

* ``baseline``: HF ``Trainer`` + peft, padded dynamic batches with an attention mask, the model's own loss, fp32.
* ``fintune``: :class:`fintune.train.callbacks.FintuneTrainer` as the shipped CPU recipes run it: packed rows,
  answer-only logits, float32 weights with ``fp32_matmul_precision: auto`` (float32 matmuls on the CPU's bf16 units
  with float32 accumulation and outputs) and ``torch_compile: true`` (each decoder layer compiled; see
  ``fintune/train/precision.py``).
* ``autocast``: the same loop with bf16 autocast (``bf16: true``) and the LoRA sum kept in float32.
* ``lora32`` / ``qlora``: fintune's loop in exact float32 with fp32 LoRA vs 4-bit NF4 QLoRA (same arithmetic, so the
  only difference is the base weights' storage).

Useful tokens = non-pad tokens of the examples (the same count in every configuration). ``tokens_per_s`` is the
steady state: useful tokens of steps 2..N over their time, because step 1 of every configuration carries one-time
work (oneDNN kernel creation; for ``fintune`` also the ~1 min compile, paid once per run, ~3% of a 30-minute FPB
run); ``tokens_per_s_incl_first_step`` counts everything and is printed too. MFU = tokens/s x 4N /
the matmul rate of the same arithmetic (fp32, fp32 at bf16 precision, or bf16) measured in the same process, N = non-embedding parameters
(frozen base: forward 2N + input-gradient backward 2N per token; LoRA's own FLOPs are left out).

QLoRA's memory saving is the base weights' share of the process. On the 135M default that share is small
(activations, the torch runtime and the unquantized 49k x 576 embedding dominate), so ``--qlora-big`` also trains
a random-weight model with SmolLM2-1.7B's published shape (24 layers, hidden 2048; saved and loaded through
``from_pretrained`` like any checkpoint) with fp32 LoRA vs NF4 QLoRA, batch 1 x 64 tokens, 2 steps: the setting where
QLoRA is used in practice (a model too large for memory, not activations). Random weights change no memory.
QLoRA runs twice there: quantizing the float32 checkpoint on load (``big_qlora``), and from a 4-bit copy written
once by ``fintune models quantize`` (``big_qlora_prequant``, outside the measured process), because quantizing on
load reads every float32 byte through the memory-mapped file and those pages stay resident on a CPU.

Usage: ``python benchmarks/train_throughput.py [--quick] [--steps N] [--batch B] [--qlora-big]``. The model comes from
``fintune.models.resolve_model('smollm2-135m')`` (cache, ``$FINTUNE_SMOLLM2_GGUF``, Hub, PyPI), FPB from
``$FINTUNE_DATA`` (default ``../shared/data``). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
CONFIGS = ("baseline", "fintune", "autocast", "lora32", "qlora")
BIG_CONFIGS = ("big_lora32", "big_qlora", "big_qlora_prequant")


def _examples(n: int, tokenizer: object, max_len: int) -> list[dict[str, list[int]]]:
    from fintune.data.phrasebank import load_phrasebank
    from fintune.labels import SENTIMENT
    from fintune.prompts.tasks import build_messages
    from fintune.prompts.templates import encode_for_training, render_messages

    data = Path(os.environ.get("FINTUNE_DATA", ROOT.parent / "shared" / "data")) / "financial_phrasebank"
    examples = load_phrasebank(data, "50")
    import random

    random.Random(0).shuffle(examples)
    rows = []
    for ex in examples[:n]:
        prompt, completion = render_messages(build_messages(ex, "label", SENTIMENT), "auto", tokenizer)
        rows.append(encode_for_training(tokenizer, prompt, completion, max_len, where=ex.id))
    return rows


def _matmul_flops(dtype_name: str, size: int = 1024, reps: int = 20) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * size**3 * reps / (time.perf_counter() - t)


BIG_SHAPE = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                 num_key_value_heads=32, vocab_size=49152, max_position_embeddings=2048, tie_word_embeddings=True,
                 rms_norm_eps=1e-5, rope_theta=130000.0)  # HuggingFaceTB/SmolLM2-1.7B-Instruct config.json


def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith(field + ":")) / 1024


def reset_peak_rss() -> None:
    """Start a new ``VmHWM`` (peak RSS) window: after loading, so the training phase is measured on its own."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class AnonPeak:
    """Peak anonymous RSS (``RssAnon``), sampled every 10 ms in a thread.

    ``ru_maxrss`` / ``VmHWM`` also count file-backed pages of memory-mapped checkpoints, which the kernel can drop
    under pressure; anonymous memory is what the process really needs. Both are reported.
    """

    def __init__(self) -> None:
        import threading

        self.peak = _rss_mb("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_mb("RssAnon"))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _rss_mb("RssAnon"))


def make_big_model(out: Path) -> Path:
    """Random-weight Llama with SmolLM2-1.7B's shape + the default's tokenizer, saved for ``from_pretrained``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from fintune.models import resolve_model

    if (out / "config.json").exists():
        return out
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**BIG_SHAPE))
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(resolve_model("smollm2-135m")).save_pretrained(str(out))
    return out


def big_worker(config: str, model_dir: str) -> dict[str, float]:
    """fp32 LoRA or NF4 QLoRA on the big random model: 2 steps of batch 1 x 64 tokens; memory is the point."""
    from transformers import TrainingArguments

    from fintune.models import attach_lora, load_model_and_tokenizer
    from fintune.recipe import Recipe
    from fintune.train.callbacks import FintuneTrainer
    from fintune.train.collate import PackingCollator
    from fintune.train.sft import _ListDataset

    base_rss, base_anon, anon = _rss_mb(), _rss_mb("RssAnon"), AnonPeak()
    method = "lora" if config == "big_lora32" else "qlora"
    if config == "big_qlora_prequant":
        model_dir = model_dir.rstrip("/") + "-nf4"
    recipe = Recipe(model_name_or_path=model_dir, method=method, lora_r=16, lora_alpha=32, lora_dropout=0.0,
                    target_modules="all-linear", dtype="float32", bnb_4bit_compute_dtype="float32",
                    max_seq_length=64, bf16=False, seed=42)
    model, tok = load_model_and_tokenizer(model_dir, dtype="float32", method=method, recipe=recipe)
    model = attach_lora(model, recipe)
    rows = [{"input_ids": list(range(100, 164)), "labels": [-100] * 48 + list(range(148, 164))}] * 2
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reset_peak_rss()
    args = TrainingArguments(output_dir=f"/tmp/fintune-bench-{config}", per_device_train_batch_size=1,
                             learning_rate=2e-4, max_steps=2, logging_steps=1, save_strategy="no",
                             report_to="none", use_cpu=True, remove_unused_columns=False, disable_tqdm=True)
    FintuneTrainer(model=model, args=args, train_dataset=_ListDataset(rows),
                   data_collator=PackingCollator(tok.pad_token_id, 64)).train()
    train_peak = _rss_mb("VmHWM")
    peak = max(load_peak, train_peak)
    return {"config": config, "peak_rss_mb": peak, "rss_growth_mb": peak - base_rss,
            "train_peak_rss_mb": train_peak, "load_peak_rss_mb": load_peak,
            "peak_anon_mb": anon.stop(), "anon_growth_mb": anon.peak - base_anon,
            "weights_mb": model.get_memory_footprint() / 2**20}


class _CountingCollator:
    """Wrap a collator and record the useful (non-pad) tokens of each batch, in the order batches are built."""

    def __init__(self, inner: object, rows_tokens: list[int]) -> None:
        self.inner, self.counts = inner, rows_tokens

    def __call__(self, features: list[dict]) -> dict:
        self.counts.append(sum(len(f["input_ids"]) for f in features))
        return self.inner(features)


def _step_timer() -> object:
    """A TrainerCallback recording the wall time at the end of every optimizer step."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_step_end(self, args: object, state: object, control: object, **kwargs: object) -> None:
            self.ends.append(time.perf_counter())

    return StepTimer()


def worker(config: str, steps: int, batch: int) -> dict[str, float]:
    """Train one configuration for ``steps`` optimizer steps; return its measurements."""
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    from fintune.models import attach_lora, load_model_and_tokenizer, resolve_model
    from fintune.recipe import Recipe
    from fintune.train.callbacks import FintuneTrainer
    from fintune.train.collate import PackingCollator, PaddingCollator
    from fintune.train.precision import compile_decoder_layers, fp32_matmul_precision, keep_lora_sum_fp32
    from fintune.train.sft import _ListDataset, use_bf16

    recipe = Recipe(model_name_or_path="smollm2-135m", method="qlora" if config == "qlora" else "lora",
                    lora_r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", dtype="float32",
                    bnb_4bit_compute_dtype="float32", max_seq_length=256,
                    bf16=config == "autocast", fp32_matmul_precision="auto" if config == "fintune" else "ieee",
                    seed=42)
    path = resolve_model("smollm2-135m")
    base_rss, base_anon, anon = _rss_mb(), _rss_mb("RssAnon"), AnonPeak()  # torch imported, no model yet
    set_seed(42)
    model, tok = load_model_and_tokenizer(path, dtype="float32", method=recipe.method, recipe=recipe)
    rows = _examples(steps * batch, tok, recipe.max_seq_length)
    n_body = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    model = attach_lora(model, recipe)
    bf16 = use_bf16(recipe)
    if bf16:
        keep_lora_sum_fp32(model)
    if config == "fintune":
        compile_decoder_layers(model)
    counts: list[int] = []
    timer = _step_timer()
    args = TrainingArguments(output_dir=f"/tmp/fintune-bench-{config}", per_device_train_batch_size=batch,
                             learning_rate=2e-4, max_steps=steps, logging_steps=1, save_strategy="no",
                             report_to="none", seed=42, data_seed=42, bf16=bf16, use_cpu=True,
                             remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=True)
    if config == "baseline":
        trainer = Trainer(model=model, args=args, train_dataset=_ListDataset(rows), callbacks=[timer],
                          data_collator=_CountingCollator(PaddingCollator(tok.pad_token_id), counts))
    else:
        trainer = FintuneTrainer(model=model, args=args, train_dataset=_ListDataset(rows), callbacks=[timer],
                                 data_collator=_CountingCollator(PackingCollator(tok.pad_token_id,
                                                                                 recipe.max_seq_length), counts))
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reset_peak_rss()
    with fp32_matmul_precision(recipe.fp32_matmul_precision) as precision:
        t = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t
        rate = _matmul_flops("bfloat16" if bf16 else "float32")
    useful = sum(len(r["input_ids"]) for r in rows)
    tps_all = useful / seconds
    # steady state: steps 2..N (counts beyond `steps` would be a prefetched batch that never trained)
    tps = sum(counts[1:steps]) / (timer.ends[steps - 1] - timer.ends[0])
    train_peak = _rss_mb("VmHWM")
    peak_rss_mb = max(load_peak, train_peak)
    return {"config": config, "steps": steps, "batch": batch, "seconds": seconds, "useful_tokens": useful,
            "tokens_per_s": tps, "tokens_per_s_incl_first_step": tps_all,
            "first_step_s": timer.ends[0] - t, "peak_rss_mb": peak_rss_mb, "rss_growth_mb": peak_rss_mb - base_rss,
            "train_peak_rss_mb": train_peak,
            "peak_anon_mb": anon.stop(), "anon_growth_mb": anon.peak - base_anon,
            "bf16": bf16, "matmul": precision,
            "n_body_params": n_body,
            "matmul_flops": rate, "mfu": tps * 4 * n_body / rate,
            "weights_mb": model.get_memory_footprint() / 2**20,
            "final_loss": trainer.state.log_history[-2].get("loss", float("nan")),
            "losses": [round(r["loss"], 4) for r in trainer.state.log_history if "loss" in r],
            "torch_threads": torch.get_num_threads()}


def main() -> int:
    """Run every configuration in a subprocess, print a table and the final JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 steps x batch 8 (fits in ~10 min on 2 cores)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--qlora-big", action="store_true",
                    help="also compare fp32 LoRA vs QLoRA memory on a random SmolLM2-1.7B-shaped model (~8 GB RAM)")
    ap.add_argument("--big-only", action="store_true",
                    help="run only the --qlora-big memory pair (memory is not affected by a busy CPU; speed is)")
    ap.add_argument("--big-dir", default="/tmp/fintune-bench-smollm2-1.7b-random", help=argparse.SUPPRESS)
    ap.add_argument("--worker", choices=(*CONFIGS, *BIG_CONFIGS), help=argparse.SUPPRESS)
    a = ap.parse_args()
    steps = a.steps or (6 if a.quick else 20)
    if steps < 2:
        ap.error("--steps must be >= 2 (step 1 is warm-up; tokens/s is measured over steps 2..N)")
    batch = a.batch or (8 if a.quick else 16)
    if a.worker:
        out = big_worker(a.worker, a.big_dir) if a.worker.startswith("big_") else worker(a.worker, steps, batch)
        print("RESULT " + json.dumps(out), flush=True)
        return 0
    results = {}
    big = BIG_CONFIGS if a.qlora_big or a.big_only else ()
    if big:
        make_big_model(Path(a.big_dir))
        nf4 = Path(a.big_dir.rstrip("/") + "-nf4")
        if not (nf4 / "config.json").exists():
            subprocess.run([sys.executable, "-m", "fintune", "models", "quantize", a.big_dir, "--out", str(nf4)],
                           check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    for config in (() if a.big_only else CONFIGS) + big:
        proc = subprocess.run([sys.executable, __file__, "--worker", config, "--steps", str(steps),
                               "--batch", str(batch), "--big-dir", a.big_dir], capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            print(f"{config} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
            return 1
        results[config] = json.loads(line[7:])
        print(f"done {config}", file=sys.stderr, flush=True)
    if a.big_only:
        return _report_big(results, {})
    print(f"{'config':<10}{'tok/s':>8}{'incl. step 1':>13}{'step 1 s':>9}{'peak RSS MB':>13}{'weights MB':>12}"
          f"{'bf16':>6}{'matmul':>8}{'MFU':>8}  losses per step")
    for r in (results[c] for c in CONFIGS):
        print(f"{r['config']:<10}{r['tokens_per_s']:>8.1f}{r['tokens_per_s_incl_first_step']:>13.1f}"
              f"{r['first_step_s']:>9.1f}{r['peak_rss_mb']:>13.0f}{r['weights_mb']:>12.0f}"
              f"{r['bf16']!s:>6}{r['matmul']:>8}{r['mfu']:>8.1%}  {r['losses']}")
    b, f, ac, lo, q = (results[c] for c in CONFIGS)
    summary = {
        "tokens_per_s_ratio": f["tokens_per_s"] / b["tokens_per_s"],
        "tokens_per_s_ratio_incl_first_step": f["tokens_per_s_incl_first_step"] / b["tokens_per_s_incl_first_step"],
        "peak_rss_ratio": f["peak_rss_mb"] / b["peak_rss_mb"],
        "qlora_memory_ratio": q["peak_rss_mb"] / lo["peak_rss_mb"],
        "qlora_rss_growth_ratio": q["rss_growth_mb"] / lo["rss_growth_mb"],
        "qlora_anon_memory_ratio": q["peak_anon_mb"] / lo["peak_anon_mb"],
        "qlora_train_memory_ratio": q["train_peak_rss_mb"] / lo["train_peak_rss_mb"],
        "qlora_weights_ratio": q["weights_mb"] / lo["weights_mb"],
        "qlora_tokens_per_s_ratio": q["tokens_per_s"] / lo["tokens_per_s"],
        "autocast_tokens_per_s_ratio": ac["tokens_per_s"] / b["tokens_per_s"],
        "final_loss": {c: results[c]["final_loss"] for c in CONFIGS},
        "mfu": f["mfu"], "baseline_mfu": b["mfu"], "lora32_mfu": lo["mfu"], "steps": steps, "batch": batch,
        "useful_tokens": f["useful_tokens"],
    }
    return _report_big(results, summary) if big else _print_json(summary)


def _print_json(summary: dict) -> int:
    print(json.dumps(summary))
    return 0


def _report_big(results: dict, summary: dict) -> int:
    """Print the big-model LoRA vs QLoRA memory line and add its ratios to the final JSON."""
    bl, bq, bp = results["big_lora32"], results["big_qlora"], results["big_qlora_prequant"]
    print("random SmolLM2-1.7B shape, batch 1 x 64 (MB):")
    print(f"{'config':<20}{'peak RSS':>10}{'train peak':>12}{'peak anon':>11}{'weights':>9}")
    for r in (bl, bq, bp):
        print(f"{r['config']:<20}{r['peak_rss_mb']:>10.0f}{r['train_peak_rss_mb']:>12.0f}{r['peak_anon_mb']:>11.0f}"
              f"{r['weights_mb']:>9.0f}")
    summary.update(qlora_memory_ratio_big_prequantized=bp["peak_rss_mb"] / bl["peak_rss_mb"],
                   qlora_big_prequant_anon_memory_ratio=bp["peak_anon_mb"] / bl["peak_anon_mb"],
                   qlora_big_memory_ratio=bq["peak_rss_mb"] / bl["peak_rss_mb"],
                   qlora_big_anon_memory_ratio=bq["peak_anon_mb"] / bl["peak_anon_mb"],
                   qlora_big_train_memory_ratio=bq["train_peak_rss_mb"] / bl["train_peak_rss_mb"],
                   qlora_big_rss_growth_ratio=bq["rss_growth_mb"] / bl["rss_growth_mb"],
                   qlora_big_weights_ratio=bq["weights_mb"] / bl["weights_mb"])
    return _print_json(summary)


if __name__ == "__main__":
    raise SystemExit(main())
