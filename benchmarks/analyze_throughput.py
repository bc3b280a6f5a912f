"""Score-mode throughput of `fintune analyze --file` and `fintune serve` vs a plain transformers loop, in one run.

    python benchmarks/analyze_throughput.py --run runs/fpb-lora --docs 2000 --plain-docs 200 --parity-docs 0

Measures, on StockNet tweets: documents/min of ``analyze_file`` in three precisions (exact float32, float32 weights
with bf16 matmul units, bfloat16 weights; the exact one on ``--slow-docs``); the same documents through a plain
transformers loop (fp32, padded batches, one full forward per (document, label) sequence, the adapter unmerged, as
a user would write it); each speed step switched off in turn (adapter merge, prompt-prefix cache, length sorting);
``fintune serve`` at ``--concurrency`` over loopback HTTP on the same documents (errors, server peak RSS);
label agreement and max |delta p| of each fast precision with exact float32 on the FPB test split; inference
efficiency = docs/s x FLOPs/doc / the same-run measured GEMM rate; peak RSS.

``--run`` takes a fine-tuned run; without it a freshly LoRA-initialised adapter (r=16, all linear layers) on the
embedded default is written to a temporary run directory: throughput does not depend on what the adapter learned,
parity does (an untrained adapter's label margins are tiny). FLOPs per document are counted from the model config
and the tokens actually run: 2 x (linear parameters) per token of the prompt suffix and of the answer continuations,
plus the output head for the rows kept, plus attention (4 x layers x hidden x context per token). The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import fintune.analyze as analyze_module
from fintune.analyze import AnalyzeItem, Analyzer, analyze_file
from fintune.models import resolve_model
from fintune.predict.predictor import Predictor, set_inference_threads
from fintune.prompts.tokenize import encode_prompt, encode_text


def gemm_rate(dtype: torch.dtype, n: int = 1024, repeats: int = 5) -> float:
    """Median FLOP/s of an ``n x n`` matmul in ``dtype`` on this process's threads."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        times.append((time.perf_counter() - t0) / 4)
    return 2 * n ** 3 / statistics.median(times)


def fresh_run(out: Path, base: str = "smollm2-135m") -> Path:
    """A LoRA-initialised (untrained) adapter on ``base`` written as `fintune train` writes a run."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from fintune.artifacts import write_manifest
    from fintune.models import load_tokenizer, resolve_model
    from fintune.recipe import validate_recipe_dict
    from fintune.run import TaskSpec

    path = resolve_model(base)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
                           LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.save_pretrained(str(out))
    load_tokenizer(path).save_pretrained(str(out))
    recipe = validate_recipe_dict({"model_name_or_path": base}, "bench")
    write_manifest(out, "train", recipe=recipe.model_dump(mode="json"), seed=0, base_model=base,
                   merged_adapters=[], labels=["negative", "neutral", "positive"], template="auto",
                   task_spec=TaskSpec.from_recipe(recipe).model_dump(mode="json"))
    return out


def tweets(root: str, n: int, out: Path) -> Path:
    """The first ``n`` StockNet tweets (distinct texts) as an analyze input file."""
    from fintune.data.stocknet import load_stocknet_tweets

    seen, rows = set(), []
    for ex in load_stocknet_tweets(root):
        if ex.text in seen:
            continue
        seen.add(ex.text)
        rows.append({"id": ex.id, "text": ex.text, "ticker": ex.ticker, "date": ex.date})
        if len(rows) == n:
            break
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out


CPU_SPEEDS: dict[str, float] = {}
"""Documents per minute of process CPU time / threads: what an idle machine with the same threads would do when
the machine is shared (wall time then measures the other jobs as much as this one)."""


def timed_analyze(analyzer: Analyzer, src: Path, out: Path, batch_size: int, key: str = "") -> float:
    """Documents per minute of ``analyze_file`` (a fresh output file); CPU-time figure into ``CPU_SPEEDS[key]``."""
    out.unlink(missing_ok=True)
    c0 = time.process_time()
    summary = analyze_file(analyzer, src, out, batch_size=batch_size, progress=False)
    if key:
        CPU_SPEEDS[key] = 60.0 * summary["predicted"] / ((time.process_time() - c0) / torch.get_num_threads())
    return 60.0 * summary["predicted"] / summary["seconds"]


def plain_loop(analyzer: Analyzer, items: list[AnalyzeItem], batch_size: int) -> tuple[float, list[str]]:
    """The loop a user writes: every (prompt + label answer) sequence through a full fp32 forward, padded."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    info = analyzer.predictor.info
    name = resolve_model(info.base_model) if info.kind == "adapter" else analyzer.predictor.model_name
    base = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, analyzer.predictor.model_name) if info.kind == "adapter" else base
    model.eval()
    tok = analyzer.tokenizer
    prepared = [analyzer.prepare(i) for i in items]
    t0, c0 = time.perf_counter(), time.process_time()
    labels = []
    for s in range(0, len(prepared), batch_size):
        seqs, spans = [], []
        for p in prepared[s:s + batch_size]:
            ids = encode_prompt(tok, p.prompt)
            for c in p.continuations:
                cid = encode_text(tok, c)
                seqs.append(ids + cid)
                spans.append((len(ids), len(ids) + len(cid)))
        width = max(len(x) for x in seqs)
        inp = torch.full((len(seqs), width), tok.pad_token_id)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, x in enumerate(seqs):
            inp[i, :len(x)], mask[i, :len(x)] = torch.tensor(x), 1
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=inp, attention_mask=mask).logits.float(), -1)
        scores = [float(sum(logp[i, k - 1, seqs[i][k]] for k in range(lo, hi))) for i, (lo, hi) in enumerate(spans)]
        n_lab = len(analyzer.labels)
        for d in range(len(scores) // n_lab):
            row = scores[d * n_lab:(d + 1) * n_lab]
            labels.append(analyzer.labels[row.index(max(row))])
    CPU_SPEEDS["plain_loop_fp32"] = 60.0 * len(prepared) / ((time.process_time() - c0) / torch.get_num_threads())
    return 60.0 * len(prepared) / (time.perf_counter() - t0), labels


def flops_per_doc(analyzer: Analyzer, items: list[AnalyzeItem]) -> float:
    """Mean FLOPs per document actually run (prefix cached once, last-row logits, answer continuations)."""
    cfg = analyzer.model.config
    h, layers, vocab = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    linear = sum(p.numel() for n, p in analyzer.model.named_parameters() if p.dim() == 2 and "embed" not in n
                 and "lm_head" not in n)
    prefix = len(analyzer.predictor.backend.prefix_cache.ids)
    tok = analyzer.tokenizer
    total = 0.0
    for it in items:
        p = analyzer.prepare(it)
        n = len(encode_prompt(tok, p.prompt))
        cont = [len(encode_text(tok, c)) - 1 for c in p.continuations]
        run_tokens = (n - prefix) + sum(cont)
        total += 2 * linear * run_tokens + 2 * h * vocab * (1 + sum(cont)) + 4 * layers * h * n * run_tokens
    return total / len(items)


def note(msg: str) -> None:
    """Progress to stderr (the JSON result goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    """This process's peak resident memory (MiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


MODES = {"float32": ("float32", "ieee"), "float32_bf16_matmul": ("float32", "bf16"), "bfloat16": ("bfloat16", "ieee")}
"""Inference precisions: (weight dtype, float32 matmul precision). ``float32_bf16_matmul`` keeps float32 weights and
activations and lets oneDNN round matmul inputs to bfloat16 (float32 accumulation) on CPUs with bf16 units."""


WARMUP: list[AnalyzeItem] = []
"""Documents predicted (untimed) by every freshly loaded analyzer, so no timing includes first-shape kernel setup."""


def load_mode(run: str, mode: str, batch_size: int, merge: bool = True) -> Analyzer:
    """An :class:`Analyzer` in one of :data:`MODES` (the matmul precision is set for the whole process), warmed up
    on :data:`WARMUP`."""
    dtype, matmul = MODES[mode]
    torch.backends.mkldnn.matmul.fp32_precision = matmul
    analyzer = Analyzer(Predictor.load(run, dtype=dtype, batch_size=batch_size, merge=merge), None)
    if WARMUP:
        analyzer.predict(WARMUP)
    return analyzer


def parity(run: str, n: int, batch_size: int, modes: list[str]) -> dict[str, dict[str, float]]:
    """Each of ``modes`` vs exact float32: label agreement and max |delta p| on the FPB test split."""
    import numpy as np

    from fintune.data.prepare import prepare_data, read_prepared
    from fintune.recipe import load_recipe

    def probs(mode: str) -> Any:
        pred = load_mode(run, mode, batch_size).predictor
        pred.spec = pred.spec.model_copy(update={"template": "auto"})
        logp = pred.score_rows(rows)
        p = np.exp(logp - logp.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    tok = load_mode(run, "float32", batch_size).tokenizer
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_data(load_recipe("recipes/smollm2-135m/fpb_lora.yaml"), Path(tmp) / "fpb", tokenizer=tok)
        rows = read_prepared(data)["test"]
    rows = rows[:n] if n else rows
    exact = probs("float32")
    out = {}
    for mode in modes:
        p = probs(mode)
        out[mode] = {"n": len(rows), "label_agreement": float((exact.argmax(1) == p.argmax(1)).mean()),
                     "max_abs_delta_p": float(np.abs(exact - p).max())}
    torch.backends.mkldnn.matmul.fp32_precision = "ieee"
    return out


def serve_speed(run: str, mode: str, texts: list[str], concurrency: int, max_batch: int,
                threads: int | None = None) -> dict[str, Any]:
    """Documents/min of ``fintune serve`` (``--threads``; None = its default) at ``concurrency`` on ``texts``, errors,
    server peak RSS."""
    import serve_load

    dtype, matmul = MODES[mode]
    if matmul != "ieee":
        raise SystemExit(f"serve has no flag for {mode}; measure a weight dtype")
    with serve_load.running_server(run, max_batch, 5.0, extra_args=["--dtype", dtype, "--log-level", "warning",
                                                            *(["--threads", str(threads)] if threads else [])]) as (
            url, proc, _):
        serve_load.run_load(url, min(64, len(texts)), concurrency, texts=texts[-64:])  # warm-up
        res = serve_load.run_load(url, len(texts), concurrency, texts=texts)
        status = Path(f"/proc/{proc.pid}/status")
        hwm = [ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM")] if status.exists() else []
    return {"docs_per_min": round(60.0 * res["requests_per_s"], 1), "errors": res["errors"],
            "first_errors": res["first_errors"], "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"],
            "server_batching": res["server_batching"],
            "server_peak_rss_mib": round(int(hwm[0].split()[1]) / 1024, 1) if hwm else None}


def main() -> None:
    """Run every measurement and print the final JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="a fine-tuned run (default: a fresh LoRA on the embedded default)")
    ap.add_argument("--stocknet", default="../shared/data/stocknet")
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--slow-docs", type=int, default=500, help="documents for the exact float32 analyze timing")
    ap.add_argument("--plain-docs", type=int, default=200, help="documents for the (slow) plain loop")
    ap.add_argument("--ablation-docs", type=int, default=300, help="documents per speed step switched off")
    ap.add_argument("--parity-docs", type=int, default=0, help="FPB test rows for the parity check (0 = all)")
    ap.add_argument("--serve-docs", type=int, default=None, help="documents sent to fintune serve (default --docs)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--serve-threads", default="", help="comma list of serve --threads to compare (default: its own)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    threads = set_inference_threads(a.threads)
    res: dict[str, Any] = {"threads": threads, "docs": a.docs, "batch_size": a.batch_size}
    note("GEMM rates")
    res["gemm_gflops"] = {"float32": gemm_rate(torch.float32) / 1e9, "bfloat16": gemm_rate(torch.bfloat16) / 1e9}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = a.run or str(fresh_run(tmp / "run"))
        res["run"] = a.run or "fresh LoRA r=16 on smollm2-135m (untrained)"
        src = tweets(a.stocknet, a.docs, tmp / "tweets.jsonl")
        lines = src.read_text().splitlines()
        items = [AnalyzeItem(text=json.loads(x)["text"], id=str(i)) for i, x in enumerate(lines)]
        WARMUP[:] = items[-2 * a.batch_size:]
        slow = tmp / "slow.jsonl"
        slow.write_text("\n".join(lines[:a.slow_docs]) + "\n")
        speeds: dict[str, float] = {}
        for mode in MODES:
            analyzer = load_mode(run, mode, a.batch_size)
            n = len(lines) if mode == "bfloat16" else min(a.slow_docs, len(lines))
            note(f"analyze {mode} ({n} documents)")
            speeds[f"analyze_{mode}"] = timed_analyze(analyzer, src if n == len(lines) else slow,
                                                      tmp / f"{mode}.jsonl", a.batch_size, f"analyze_{mode}")
            res[f"flops_per_doc_{mode}"] = flops_per_doc(analyzer, items[:200])
            del analyzer
        best = max(MODES, key=lambda m: speeds[f"analyze_{m}"])
        # each speed step switched off in turn, on the best mode, the first --ablation-docs documents
        sub = tmp / "sub.jsonl"
        sub.write_text("\n".join(lines[:a.ablation_docs]) + "\n")
        analyzer = load_mode(run, best, a.batch_size)
        note(f"speed steps switched off in turn ({best})")
        speeds["steps_all_on"] = timed_analyze(analyzer, sub, tmp / "s0.jsonl", a.batch_size, "steps_all_on")
        analyze_module.FLUSH_EVERY_BATCHES, grouped = 1, analyze_module.FLUSH_EVERY_BATCHES
        speeds["steps_no_length_sorting_across_batches"] = timed_analyze(
            analyzer, sub, tmp / "s3.jsonl", a.batch_size, "steps_no_length_sorting_across_batches")
        analyze_module.FLUSH_EVERY_BATCHES = grouped
        analyzer.predictor.backend.prefix_cache = None
        speeds["steps_no_prefix_cache_across_batches"] = timed_analyze(analyzer, sub, tmp / "s1.jsonl", a.batch_size,
                                                                       "steps_no_prefix_cache_across_batches")
        del analyzer
        unmerged = load_mode(run, best, a.batch_size, merge=False)
        speeds["steps_adapter_unmerged"] = timed_analyze(unmerged, sub, tmp / "s2.jsonl", a.batch_size,
                                                         "steps_adapter_unmerged")
        del unmerged
        note("plain transformers loop")
        ref = load_mode(run, "float32", a.batch_size)
        plain_docs = items[:a.plain_docs]
        speeds["plain_loop_fp32"], plain_labels = plain_loop(ref, plain_docs, a.batch_size)
        res["plain_vs_fintune_fp32_label_agreement"] = sum(
            p.label == q for p, q in zip(ref.predict(plain_docs), plain_labels, strict=True)) / len(plain_docs)
        del ref
        serve_mode = best if MODES[best][1] == "ieee" else "float32"
        note(f"fintune serve ({serve_mode}) at concurrency {a.concurrency}")
        texts = [it.text for it in items[:a.serve_docs or len(items)]]
        res["serve"] = {"mode": serve_mode, "concurrency": a.concurrency, "threads": "default",
                        **serve_speed(run, serve_mode, texts, a.concurrency, a.batch_size)}
        speeds["serve"] = res["serve"]["docs_per_min"]
        for n in [int(x) for x in a.serve_threads.split(",") if x]:
            note(f"fintune serve --threads {n}")
            res[f"serve_threads_{n}"] = serve_speed(run, serve_mode, texts, a.concurrency, a.batch_size, n)
            speeds[f"serve_threads_{n}"] = res[f"serve_threads_{n}"]["docs_per_min"]
        res["serve_vs_analyze"] = speeds["serve"] / speeds[f"analyze_{serve_mode}"]
        res["docs_per_min"] = {k: round(v, 1) for k, v in speeds.items()}
        res["docs_per_min_cpu_time"] = {k: round(v, 1) for k, v in CPU_SPEEDS.items()}
        res["ratio_vs_plain_loop_cpu_time"] = CPU_SPEEDS[f"analyze_{best}"] / CPU_SPEEDS["plain_loop_fp32"]
        res["best_mode"] = best
        res["ratio_vs_plain_loop"] = speeds[f"analyze_{best}"] / speeds["plain_loop_fp32"]
        rate = res["gemm_gflops"]["bfloat16" if MODES[best] != ("float32", "ieee") else "float32"] * 1e9
        res["efficiency"] = speeds[f"analyze_{best}"] / 60.0 * res[f"flops_per_doc_{best}"] / rate
        res["efficiency_cpu_time"] = CPU_SPEEDS[f"analyze_{best}"] / 60.0 * res[f"flops_per_doc_{best}"] / rate
        res["arithmetic_limit_docs_per_min"] = 60.0 * rate / res[f"flops_per_doc_{best}"]
        note("parity with exact float32 on the FPB test split")
        res["parity_vs_exact_fp32_fpb_test"] = parity(run, a.parity_docs, a.batch_size,
                                                      ["float32_bf16_matmul", "bfloat16"])
    res["peak_rss_mib"] = round(peak_rss_mib(), 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
