"""GGUF export round trip on the embedded default: ``fintune export smollm2-135m --quant Q`` -> transformers' GGUF
reader -> label log-probabilities vs fintune's own scoring of the original weights on PhraseBank sentences.

Run: ``python benchmarks/export_gguf_roundtrip.py [--n 20] [--quant f16 q8_0]`` (needs ../shared/data and the
embedded default pulled). Final line: one JSON object per quant with label agreement and max |delta log p|.
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

FPB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "financial_phrasebank" / "Sentences_AllAgree.txt"
PROMPT = "What is the sentiment of this financial sentence? Answer with one of: negative, neutral, positive.\n\n"


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
    return res


if __name__ == "__main__":
    print(json.dumps(run()))
