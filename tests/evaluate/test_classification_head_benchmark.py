"""benchmarks/classification_head.py on a tiny random Llama: trains, scores, writes eval files compare can read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tests.tiny import make_tiny_model_dir

from fintune.evaluate.compare import load_run, paired_bootstrap

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "classification_head.py"
LABELS = ["negative", "neutral", "positive"]
WORDS = {"negative": "profit fell sharply", "neutral": "the company held a meeting", "positive": "sales rose strongly"}


def _split(path: Path, name: str, n: int) -> None:
    rows = []
    for i in range(n):
        label = LABELS[i % 3]
        text = f"{WORDS[label]} {i}"
        rows.append({"id": f"{name}-{i}", "text": text, "label": label, "date": None, "ticker": None, "source": "t",
                     "extra": "{}", "messages": "[]", "completion": f"{label}<|im_end|>\n",
                     "prompt": f"<|im_start|>user\nSentiment? {text}<|im_end|>\n<|im_start|>assistant\n"})
    pq.write_table(pa.Table.from_pylist(rows), path / f"{name}.parquet")


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          cwd=SCRIPT.parents[1], timeout=600)


def test_head_trains_scores_and_writes_an_eval_directory(tmp_path):
    model = make_tiny_model_dir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "manifest.json").write_text("{}")  # read_prepared's marker of a prepared directory
    for name, n in (("train", 24), ("validation", 9), ("test", 12)):
        _split(data, name, n)
    out = tmp_path / "head"
    args = ["--data", str(data), "--steps", "2", "--model", str(model), "--no-compile", "--out", str(out)]
    done = _run([*args, "--reference", str(out.parent / "missing")])
    # the reference is read after the head ran: a missing one is a one-line error, the eval files stay
    assert done.returncode != 0 and "error:" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    run = load_run(out)
    assert [p.id for p in run.predictions] == [f"test-{i}" for i in range(12)]
    for p in run.predictions:
        assert abs(sum(p.probabilities.values()) - 1.0) < 1e-6 and p.label == max(p.probabilities,
                                                                                  key=p.probabilities.get)
        assert p.gold in LABELS and set(p.label_logprobs) == set(LABELS)
    assert run.metrics["n"] == 12 and run.metrics["invalid_rate"] == 0.0
    assert paired_bootstrap(run, run, samples=5)["f1_weighted"]["delta"] == 0.0

    again = _run(args)  # the output exists: refused without --overwrite
    assert again.returncode != 0 and "--overwrite" in again.stderr
    done = _run([*args, "--overwrite", "--reference", str(out)])
    assert done.returncode == 0, done.stderr[-2000:]
    final = json.loads(done.stdout.strip().splitlines()[-1])
    assert final["steps"] == 2 and final["delta_f1_weighted"] == 0.0 and len(final["gemm_bf16_gflops"]) == 2
    assert 0.0 <= final["f1_weighted"] <= 1.0 and final["trainable_params"] > 0
