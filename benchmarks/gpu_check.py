"""One-shot check for a lent GPU (driven by ``benchmarks/gpu_check.sh``): train, DDP, scoring; one JSON of figures.

Steps (each in its own subprocess, so every memory peak is that step's alone):

1. ``train``: the embedded default (``smollm2-135m``) and a random tiny Llama (built here, saved with the default's
   tokenizer, loaded through ``from_pretrained``), each with LoRA and with QLoRA NF4 (bf16 compute on CUDA), on real
   Financial PhraseBank rows through fintune's own ``prepare_model`` / ``run_training``, one epoch of exactly
   ``steps x batch`` rows. Records ``torch.cuda.max_memory_allocated`` (CUDA only), peak RSS, useful tokens/s
   (non-pad tokens of every row / ``train_runtime``, first step included) and the QLoRA/LoRA memory ratio.
2. ``ddp``: ``torchrun --nproc_per_node 2 -m fintune train`` on the tiny Llama when 2 GPUs are visible (or with
   ``--cpu``, 2 CPU processes on gloo); otherwise a note says why it was skipped.
3. ``score``: ``fintune eval`` of the embedded default's LoRA run on the FPB test prompts with the torch backend
   (examples/s from the eval's own ``speed`` record); with vLLM importable, the same with ``--backend vllm``.

``--cpu`` runs the same steps at small sizes with CUDA-only figures set to null and a reason. Writes
``gpu_check.json`` into ``--out`` (default ``$OUT``, else ``runs/gpu_check``) and prints it as the final line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = Path(os.environ.get("FINTUNE_DATA", ROOT.parent / "shared" / "data")) / "financial_phrasebank"


def _sizes(cpu: bool) -> dict[str, Any]:
    if cpu:
        return {"steps": 2, "batch": 2, "seq": 128, "fpb_limit": 60, "score_limit": 12,
                "llama": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2)}
    return {"steps": 30, "batch": 8, "seq": 256, "fpb_limit": None, "score_limit": None,
            "llama": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16,
                          num_key_value_heads=4)}


def _source(sizes: dict[str, Any]) -> dict[str, Any]:
    """FPB (all-agree) when the data folder is there, else the built-in synthetic news (no files needed)."""
    if not DATA.is_dir():
        return {"name": "synth", "options": {"n": sizes["fpb_limit"] or 2000, "seed": 0}}
    source: dict[str, Any] = {"name": "phrasebank", "path": str(DATA), "agreement": "all"}
    if sizes["fpb_limit"]:
        source["limit"] = sizes["fpb_limit"]
    return source


def _recipe_dict(model: str, method: str, cpu: bool, sizes: dict[str, Any]) -> dict[str, Any]:
    source = _source(sizes)
    raw = {"name": f"gpu-check-{method}", "model_name_or_path": model, "method": method, "lora_r": 16,
           "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear",
           "per_device_train_batch_size": sizes["batch"], "learning_rate": 2e-4, "num_train_epochs": 1,
           "max_seq_length": sizes["seq"], "logging_steps": 1, "save_steps": 10_000, "seed": 0,
           "dtype": "float32" if cpu else "bfloat16", "bf16": not cpu,
           "data": {"task": "sentiment", "format": "label", "template": "auto", "sources": [source],
                    "max_train_examples": sizes["steps"] * sizes["batch"],
                    "split": {"method": "stratified", "test_size": 0.2, "val_size": 0.0, "seed": 0}}}
    if method == "qlora":
        raw["bnb_4bit_compute_dtype"] = "float32" if cpu else "bfloat16"
    return raw


def worker_train(model: str, method: str, out: Path, cpu: bool) -> dict[str, Any]:
    """Train one configuration in this process; return its figures."""
    import torch

    from fintune.data.prepare import prepare_data, read_prepared
    from fintune.recipe import Recipe
    from fintune.train.sft import encode_rows, prepare_model, run_training

    sizes = _sizes(cpu)
    recipe = Recipe.model_validate(_recipe_dict(model, method, cpu, sizes))
    t0 = time.perf_counter()
    model_obj, tokenizer, lineage = prepare_model(recipe)
    load_s = time.perf_counter() - t0
    data_dir = prepare_data(recipe, out / "data", tokenizer=tokenizer)
    rows = encode_rows(read_prepared(data_dir)["train"], tokenizer, recipe.max_seq_length, "train")
    rows = rows[: sizes["steps"] * sizes["batch"]]
    tokens = sum(len(r["input_ids"]) for r in rows)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    summary = run_training(recipe, model_obj, tokenizer, rows, None, out, False, "train",
                           dict(lineage, data_dir=str(data_dir), labels=recipe.data.labels))
    runtime = next(r["train_runtime"] for r in summary["history"] if "train_runtime" in r)
    cuda = torch.cuda.is_available()
    return {"model": model, "method": method, "steps": summary["global_step"], "rows": len(rows), "tokens": tokens,
            "train_runtime_s": runtime, "tokens_per_s": tokens / runtime, "load_s": load_s,
            "max_memory_allocated_bytes": torch.cuda.max_memory_allocated() if cuda else None,
            "max_memory_allocated_note": None if cuda else "no CUDA device: torch.cuda.max_memory_allocated n/a",
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "final_loss": summary["final_logged_loss"], "bf16": summary["bf16"]}


def make_tiny_llama(out: Path, default_dir: str | None, cpu: bool) -> Path:
    """A random Llama with the embedded default's tokenizer (so the chat template and labels work), or the test
    suite's small BPE tokenizer with a ChatML template when the default is not available offline."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if default_dir:
        tok = AutoTokenizer.from_pretrained(default_dir)
    else:
        sys.path.insert(0, str(ROOT))
        from tests.tiny import make_tokenizer

        tok = make_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=2048, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      **_sizes(cpu)["llama"])
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _run(cmd: list[str], timeout: int, env: dict[str, str] | None = None) -> tuple[int, str, str, float]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})})
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout} s", time.perf_counter() - t0
    return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def step_train(work: Path, models: dict[str, str], cpu: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, path in models.items():
        runs = {}
        for method in ("lora", "qlora"):
            if method == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
                runs[method] = {"skipped": "bitsandbytes not installed"}
                continue
            cmd = [sys.executable, __file__, "--worker", path, method, str(work / f"{name}-{method}")]
            rc, stdout, stderr, wall = _run(cmd + (["--cpu"] if cpu else []), timeout=600 if cpu else 240)
            runs[method] = _last_json(stdout) if rc == 0 else {"error": stderr.strip().splitlines()[-1:]}
            runs[method]["wall_s"] = wall
        lora, qlora = runs["lora"], runs["qlora"]
        key = "max_memory_allocated_bytes" if not cpu else "peak_rss_bytes"
        ratio = (qlora[key] / lora[key]) if lora.get(key) and qlora.get(key) else None
        out[name] = {**runs, "qlora_lora_memory_ratio": ratio, "memory_ratio_of": key}
    return out


def step_ddp(work: Path, tiny: Path, cpu: bool) -> dict[str, Any]:
    import torch

    if not cpu and torch.cuda.device_count() < 2:
        return {"skipped": f"{torch.cuda.device_count()} CUDA device(s) visible; 2-process DDP needs 2"}
    import yaml

    raw = _recipe_dict(str(tiny), "lora", cpu, _sizes(cpu))
    recipe = work / "ddp.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", "29533", "-m", "fintune", "train", str(recipe),
           "--out", str(work / "ddp")]
    rc, stdout, stderr, wall = _run(cmd, timeout=300, env={"OMP_NUM_THREADS": "1"})
    if rc != 0:
        return {"error": stderr.strip().splitlines()[-3:], "wall_s": wall}
    summary = _last_json(stdout) or {}
    return {"backend": "gloo (CPU)" if cpu else "nccl", "world_size": summary.get("world_size"),
            "global_step": summary.get("global_step"), "train_loss": summary.get("train_loss"),
            "ranks_stepped": sum(f"rank {r}/2:" in stderr for r in (0, 1)), "wall_s": wall}


def step_score(work: Path, run: Path, cpu: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    limit = _sizes(cpu)["score_limit"]
    backends = ["torch"] + (["vllm"] if importlib.util.find_spec("vllm") else [])
    if "vllm" not in backends:
        out["vllm"] = {"skipped": "vllm not installed"}
    for backend in backends:
        cmd = [sys.executable, "-m", "fintune", "eval", str(run), "--data", str(run / "data"), "--out",
               str(work / f"eval-{backend}"), "--bootstrap-samples", "0", "--no-progress", "--batch-size", "16"]
        cmd += ["--limit", str(limit)] if limit else []
        cmd += ["--backend", backend] if backend != "torch" else []
        rc, _, stderr, wall = _run(cmd, timeout=600 if cpu else 240)
        if rc != 0:
            out[backend] = {"error": stderr.strip().splitlines()[-1:], "wall_s": wall}
            continue
        metrics = json.loads((work / f"eval-{backend}" / "metrics.json").read_text())
        speed = metrics.get("speed") or {}
        out[backend] = {"n": metrics["n"], "accuracy": metrics.get("accuracy"),
                        "examples_per_s": speed.get("examples_per_s"), "wall_s": wall}
    return out


def main() -> int:
    """Parse arguments; run the worker or the whole check."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="run on the CPU at small sizes (CUDA figures null)")
    p.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "runs" / "gpu_check"))
    p.add_argument("--worker", nargs=3, metavar=("MODEL", "METHOD", "RUN"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker_train(args.worker[0], args.worker[1], Path(args.worker[2]), args.cpu)))
        return 0
    import torch

    from fintune.errors import FintuneError
    from fintune.models import resolve_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda and not args.cpu:
        print("no CUDA device visible; pass --cpu to run the CPU version", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        default: str | None = resolve_model("smollm2-135m")
        default_note = None
    except FintuneError as exc:  # offline without the cache or $FINTUNE_SMOLLM2_GGUF: the tiny Llama still runs
        default, default_note = None, exc.one_line()
    tiny = make_tiny_llama(work / "tiny-llama", default, args.cpu)
    result: dict[str, Any] = {
        "mode": "cpu" if args.cpu else "cuda", "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu", "cuda_devices": torch.cuda.device_count(),
        "sizes": {k: v for k, v in _sizes(args.cpu).items() if k != "llama"}, "tiny_llama": _sizes(args.cpu)["llama"],
        "data": _source(_sizes(args.cpu))["name"],
    }
    models = {"smollm2-135m": default} if default else {}
    result["train"] = step_train(work, {**models, "tiny-llama": str(tiny)}, args.cpu)
    if not default:
        result["train"]["smollm2-135m"] = {"skipped": f"embedded default not available: {default_note}"}
    result["ddp"] = step_ddp(work, tiny, args.cpu)
    scored = "smollm2-135m" if default else "tiny-llama"
    result["score"] = {"model": scored, **step_score(work, work / f"{scored}-lora", args.cpu)}
    result["total_wall_s"] = time.perf_counter() - t0
    text = json.dumps(result)
    (out / "gpu_check.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
