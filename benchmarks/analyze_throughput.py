"""Score-mode throughput of `fintune analyze --file` vs a plain transformers loop, in one process.

    python benchmarks/analyze_throughput.py --docs 2000 --plain-docs 200 --parity-docs 0   # 0 = the whole FPB test

Measures (median of ``--repeats`` where cheap): documents/min of ``analyze_file`` (fp32, and bf16 weights) on
StockNet tweets; the same documents through a plain transformers loop (fp32, padded batches, one full forward per
(document, label) sequence, the adapter unmerged, as a user would write it); each speed step switched off in turn
(adapter merge, prompt-prefix cache, length sorting); bf16 vs exact fp32 label agreement and max |delta p| on the
FPB test split; inference efficiency = docs/s x FLOPs/doc / the same-run measured GEMM rate; peak RSS.

``--run`` takes a fine-tuned run; without it a freshly LoRA-initialised adapter (r=16, all linear layers) on the
embedded default is written to a temporary run directory: throughput does not depend on what the adapter learned.
FLOPs per document are counted from the model config and the tokens actually run: 2 x (linear parameters) per
token of the prompt suffix and of the answer continuations, plus the output head for the rows kept, plus attention
(4 x layers x hidden x context per token). The last line printed is one JSON object.
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

import torch

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


def parity(run: str, n: int, batch_size: int) -> dict[str, float]:
    """bf16 weights vs exact fp32: label agreement and max |delta p| on the FPB test split."""
    import numpy as np

    from fintune.data.prepare import prepare_data, read_prepared
    from fintune.recipe import load_recipe

    fp32 = Predictor.load(run, dtype="float32", batch_size=batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_data(load_recipe("recipes/smollm2-135m/fpb_lora.yaml"), Path(tmp) / "fpb",
                            tokenizer=fp32.tokenizer)
        rows = read_prepared(data)["test"]
    rows = rows[:n] if n else rows
    fp32.spec = fp32.spec.model_copy(update={"template": "auto"})
    a = fp32.score_rows(rows)
    del fp32
    bf16 = Predictor.load(run, dtype="bfloat16", batch_size=batch_size)
    b = bf16.score_rows(rows)
    pa = np.exp(a - a.max(1, keepdims=True))
    pa /= pa.sum(1, keepdims=True)
    pb = np.exp(b - b.max(1, keepdims=True))
    pb /= pb.sum(1, keepdims=True)
    return {"n": len(rows), "label_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
            "max_abs_delta_p": float(np.abs(pa - pb).max())}


def main() -> None:
    """Run every measurement and print the final JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="a fine-tuned run (default: a fresh LoRA on the embedded default)")
    ap.add_argument("--stocknet", default="../shared/data/stocknet")
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--plain-docs", type=int, default=200, help="documents for the (slow) plain loop")
    ap.add_argument("--ablation-docs", type=int, default=300, help="documents per speed step switched off")
    ap.add_argument("--parity-docs", type=int, default=0, help="FPB test rows for bf16 parity (0 = all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    threads = set_inference_threads(a.threads)
    res: dict[str, object] = {"threads": threads, "docs": a.docs, "batch_size": a.batch_size}
    note("GEMM rates")
    res["gemm_gflops"] = {"float32": gemm_rate(torch.float32) / 1e9, "bfloat16": gemm_rate(torch.bfloat16) / 1e9}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = a.run or str(fresh_run(tmp / "run"))
        res["run"] = a.run or "fresh LoRA r=16 on smollm2-135m (untrained)"
        src = tweets(a.stocknet, a.docs, tmp / "tweets.jsonl")
        items = [AnalyzeItem(text=json.loads(x)["text"], id=str(i)) for i, x in
                 enumerate(src.read_text().splitlines())]
        speeds: dict[str, float] = {}
        for dtype in ("float32", "bfloat16"):
            analyzer = Analyzer.load(run, dtype=dtype, batch_size=a.batch_size)
            note(f"analyze {dtype}")
            speeds[f"analyze_{dtype}"] = timed_analyze(analyzer, src, tmp / f"{dtype}.jsonl", a.batch_size,
                                                       f"analyze_{dtype}")
            res[f"flops_per_doc_{dtype}"] = flops_per_doc(analyzer, items[:200])
        best = max(("float32", "bfloat16"), key=lambda d: speeds[f"analyze_{d}"])
        # each speed step switched off in turn, on the best dtype, the first --ablation-docs documents
        sub = tmp / "sub.jsonl"
        sub.write_text("\n".join(src.read_text().splitlines()[:a.ablation_docs]) + "\n")
        analyzer = Analyzer.load(run, dtype=best, batch_size=a.batch_size)
        note(f"speed steps switched off in turn ({best})")
        speeds["steps_all_on"] = timed_analyze(analyzer, sub, tmp / "s0.jsonl", a.batch_size, "steps_all_on")
        analyzer.predictor.backend.prefix_cache = None
        speeds["steps_no_prefix_cache_across_batches"] = timed_analyze(analyzer, sub, tmp / "s1.jsonl", a.batch_size,
                                                                       "steps_no_prefix_cache_across_batches")
        unmerged = Analyzer(Predictor.load(run, dtype=best, batch_size=a.batch_size, merge=False),
                            analyzer.temperature)
        speeds["steps_adapter_unmerged"] = timed_analyze(unmerged, sub, tmp / "s2.jsonl", a.batch_size,
                                                         "steps_adapter_unmerged")
        del unmerged
        note("plain transformers loop")
        plain_docs = items[:a.plain_docs]
        speeds["plain_loop_fp32"], plain_labels = plain_loop(analyzer, plain_docs, a.batch_size)
        ref = Analyzer.load(run, dtype="float32", batch_size=a.batch_size).predict(plain_docs)
        res["plain_vs_fintune_fp32_label_agreement"] = sum(
            p.label == q for p, q in zip(ref, plain_labels, strict=True)) / len(plain_docs)
        res["docs_per_min"] = {k: round(v, 1) for k, v in speeds.items()}
        res["docs_per_min_cpu_time"] = {k: round(v, 1) for k, v in CPU_SPEEDS.items()}
        res["ratio_vs_plain_loop_cpu_time"] = CPU_SPEEDS[f"analyze_{best}"] / CPU_SPEEDS["plain_loop_fp32"]
        res["best_dtype"] = best
        res["ratio_vs_plain_loop"] = speeds[f"analyze_{best}"] / speeds["plain_loop_fp32"]
        rate = res["gemm_gflops"][best] * 1e9  # type: ignore[index]
        res["efficiency"] = speeds[f"analyze_{best}"] / 60.0 * res[f"flops_per_doc_{best}"] / rate
        res["efficiency_cpu_time"] = CPU_SPEEDS[f"analyze_{best}"] / 60.0 * res[f"flops_per_doc_{best}"] / rate
        note("bf16 vs fp32 parity on the FPB test split")
        res["parity_bf16_vs_fp32_fpb_test"] = parity(run, a.parity_docs, a.batch_size)
    res["peak_rss_mib"] = round(peak_rss_mib(), 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
