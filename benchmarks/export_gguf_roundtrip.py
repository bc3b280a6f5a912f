"""GGUF export round trip on the embedded default: ``fintune export smollm2-135m --quant Q`` -> transformers' GGUF
reader -> label log-probabilities vs fintune's own scoring of the original weights on PhraseBank sentences.

Run: ``python benchmarks/export_gguf_roundtrip.py [--n 20] [--quant f16 q8_0]`` (needs ../shared/data and the
embedded default pulled). With ``llama_cpp`` installed (the ``export`` extra) the GGUF is also scored in llama.cpp.
Final line: one JSON object per quant with label agreement and max |delta log p|.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from fintune.cli import main
from fintune.predict.predictor import Predictor
from fintune.predict.rows import label_prompts
from fintune.prompts.tokenize import encode_prompt, encode_text, leading_special_ids

FPB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "financial_phrasebank" / "Sentences_AllAgree.txt"
PROMPT = "What is the sentiment of this financial sentence? Answer with one of: negative, neutral, positive.\n\n"


def llama_cpp_scores(gguf: Path, ours: Predictor, rows: list[dict]) -> np.ndarray:
    """Label log-probabilities of ``rows`` from llama.cpp on the exported file, fed fintune's token ids."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=512, logits_all=True, verbose=False, n_threads=1)
    tok, lead = ours.tokenizer, leading_special_ids(ours.tokenizer)
    out = []
    for row in rows:
        prompt, conts = label_prompts(row, ours.labels, ours.spec.format, ours.spec.template, tok,
                                      ours.spec.template_date)
        p_ids = encode_prompt(tok, prompt, lead)
        scores = []
        for cont in conts:
            c_ids = encode_text(tok, cont)
            llm.reset()
            llm.eval(p_ids + c_ids)
            logits = np.asarray(llm.scores[: len(p_ids) + len(c_ids)], dtype=np.float64)
            logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
            scores.append(sum(logp[len(p_ids) - 1 + j, t] for j, t in enumerate(c_ids)))
        out.append(scores)
    return np.asarray(out)


def run() -> dict:
    """Export at each quant and compare with fintune's scoring; returns the summary."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--quant", nargs="+", default=["f16", "q8_0"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    lines = FPB.read_text(encoding="latin-1").splitlines()
    texts = [line.rsplit("@", 1)[0] for line in lines[: args.n * 10 : 10]]
    rows = [{"id": str(i), "messages": [{"role": "user", "content": PROMPT + t}]} for i, t in enumerate(texts)]
    ours = Predictor.load("smollm2-135m", dtype="float32")
    want = np.asarray(ours.score_rows(rows))
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for q in args.quant:
            out = Path(tmp) / q
            t0 = time.perf_counter()
            assert main(["export", "smollm2-135m", "--format", "ollama", "--quant", q, "--out", str(out)]) == 0
            secs = time.perf_counter() - t0
            name = json.loads((out / "manifest.json").read_text())["gguf"]
            model = AutoModelForCausalLM.from_pretrained(str(out), gguf_file=name, dtype=torch.float32).eval()
            got = np.asarray(Predictor(ours.spec, model, ours.tokenizer).score_rows(rows))
            res[q] = {"n": len(rows), "agreement": float((got.argmax(1) == want.argmax(1)).mean()),
                      "max_abs_delta_logp": float(np.abs(got - want).max()), "export_s": round(secs, 1),
                      "gguf_mb": round((out / name).stat().st_size / 2**20, 1)}
            try:
                import llama_cpp  # noqa: F401
            except ImportError:
                continue
            lc = llama_cpp_scores(out / name, ours, rows)
            res[q]["llama_cpp_agreement"] = float((lc.argmax(1) == want.argmax(1)).mean())
            res[q]["llama_cpp_max_abs_delta_logp"] = float(np.abs(lc - want).max())
    return res


if __name__ == "__main__":
    print(json.dumps(run()))
