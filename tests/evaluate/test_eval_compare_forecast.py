"""`fintune compare` on forecaster runs: the six-metric table with hand-checkable values and paired CIs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fintune.evaluate import write_eval_outputs
from fintune.evaluate.compare import run_compare
from fintune.records import INVALID, Prediction

GOLD = ["U3", "D2", "U1", "D5+"]  # midpoints 2.5, -1.5, 0.5, -5.5


def _run(tmp_path: Path, name: str, labels: list[str], rouge1: list[float], log: list[dict], speed: float,
         thinking: dict | None = None) -> Path:
    from fintune.prompts.parse import bin_midpoint

    preds = []
    for i, (label, gold, r1) in enumerate(zip(labels, GOLD, rouge1, strict=True)):
        move = None if label == INVALID else bin_midpoint(label)
        preds.append(Prediction(id=f"w{i}", label=label, gold=gold, expected_move=move,
                                extra={"rouge": {"rouge1": r1, "rouge2": r1 / 2, "rougeL": r1}}))
    metrics = {"format": "forecaster", "task": "forecaster", "mode": "generate", "n": len(preds),
               "forecast": {"parse_rate": sum(p.label != INVALID for p in preds) / len(preds)},
               "speed": {"examples_per_s": speed, "tokens_per_s": speed * 10, "includes_thinking_tokens": True},
               "thinking": thinking or {"outputs": 4, "with_thinking": 0, "unit": "tokens", "total": 0,
                                        "mean_per_output": 0.0}}
    run = tmp_path / name
    (run / "eval").mkdir(parents=True)
    write_eval_outputs(run / "eval", preds, metrics)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return run


def test_six_metric_table_values_and_paired_deltas(tmp_path: Path) -> None:
    a = _run(tmp_path, "llama", ["U3", "U2", "U1", INVALID], [0.5, 0.5, 0.5, 0.0],
             [{"step": 5, "loss": 2.0}, {"step": 5, "eval_loss": 1.9}, {"step": 10, "eval_loss": 1.7},
              {"step": 10, "train_loss": 1.8}], speed=2.0)
    b = _run(tmp_path, "r1", ["U3", "D2", "U1", "D5+"], [1.0, 0.5, 0.5, 0.5],
             [{"step": 10, "eval_loss": 1.5}, {"step": 10, "train_loss": 1.6}], speed=3.0,
             thinking={"outputs": 4, "with_thinking": 2, "unit": "tokens", "total": 30, "mean_per_output": 7.5})
    res = run_compare([a, b], tmp_path / "cmp", bootstrap_samples=200)
    f = res["forecast"]
    ra, rb = f["runs"]
    assert (ra["train_loss"], ra["eval_loss"], ra["eval_loss_step"]) == (1.8, 1.7, 10)
    assert ra["direction_accuracy"]["value"] == pytest.approx(2 / 4)  # U2 vs gold D2 misses; invalid misses
    assert rb["direction_accuracy"]["value"] == 1.0
    # llama parsed 3: squared errors (2.5-2.5)^2, (1.5-(-1.5))^2, 0 -> 9/3; r1 is exact
    assert ra["mse"]["value"] == pytest.approx(3.0) and ra["mse"]["n"] == 3 and rb["mse"]["value"] == 0.0
    assert ra["rouge1"]["value"] == pytest.approx(0.375) and rb["rouge2"]["value"] == pytest.approx(0.3125)
    d = f["deltas"]["r1"]
    assert d["hit"]["difference"] == pytest.approx(0.5) and d["hit"]["n"] == 4
    assert d["sq_err"]["difference"] == pytest.approx(-3.0) and d["sq_err"]["n"] == 3  # ids both parsed
    lo, hi = d["hit"]["ci"]
    assert lo <= 0.5 <= hi
    assert f["mse_against"].startswith("gold bin midpoint")
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    for row in ("1. training loss", "2. evaluation loss", "3. evaluation speed", "4. direction accuracy",
                "5. MSE of predicted vs gold bin midpoint % move", "6. ROUGE-1", "6. ROUGE-2", "6. ROUGE-L",
                "thinking before the answer"):
        assert sum(line.startswith(f"| {row}") for line in md.splitlines()) == 1, row
    assert "| 1. training loss | 1.8000 | 1.6000 | -0.2000 |" in md
    assert "7.5 tokens/output (2/4 with <think>)" in md and "2.000 ex/s, 20.0 tok/s" in md
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["forecast"]["vs"] == "llama"


def test_actual_moves_are_used_when_known_and_cli_prints_without_out(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", ["U3", "D2", "U1", "D5+"], [0.1] * 4, [], speed=1.0)
    lines = (a / "eval" / "predictions.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    for r in rows:
        r["extra"]["actual_move"] = 1.0
    (a / "eval" / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = run_compare([a], None, bootstrap_samples=0)
    assert res["forecast"]["mse_against"] == "actual % move"
    assert res["forecast"]["runs"][0]["mse"]["value"] == pytest.approx((1.5**2 + 2.5**2 + 0.5**2 + 6.5**2) / 4)
    assert not (tmp_path / "cmp").exists()
    out = subprocess.run([sys.executable, "-m", "fintune", "compare", str(a)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "5. MSE of predicted vs actual % move" in out.stdout and "| 1. training loss | - |" in out.stdout
