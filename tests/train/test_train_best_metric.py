"""Best checkpoint by a task metric (weighted F1 on the validation split, scored like `fintune eval`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers_train import SENTENCES, tiny_recipe
from tests.tiny import make_tiny_model_dir

from fintune.errors import FintuneError
from fintune.train.best_metric import task_metric

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "news.csv"
    lines = ["text,label"] + [f'"{t} ({i})",{lab}' for i in range(4) for t, lab in SENTENCES]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_full_weight_run_keeps_the_checkpoint_with_the_best_validation_f1(tmp_path: Path) -> None:
    from fintune.evaluate import run_eval
    from fintune.train.sft import train_sft

    model_dir = make_tiny_model_dir(tmp_path, "gpt_neox")
    data = {"task": "sentiment", "format": "label", "template": "chatml",
            "sources": [{"name": "csv", "path": str(_csv(tmp_path)), "text_column": "text", "label_column": "label"}],
            "split": {"method": "stratified", "test_size": 0.25, "val_size": 0.25, "seed": 1}}
    recipe = tiny_recipe(model_dir, method="full", learning_rate=1e-2, max_steps=3, eval_steps=1, save_steps=1,
                         max_seq_length=96, metric_for_best_model="f1_weighted", load_best_model_at_end=True,
                         per_device_eval_batch_size=8, data=data)
    summary = train_sft(recipe, out=tmp_path / "run")
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    f1s = {r["step"]: r["eval_f1_weighted"] for r in logged if "eval_f1_weighted" in r}
    assert sorted(f1s) == [1, 2, 3] and all("eval_loss" in r for r in logged if "eval_f1_weighted" in r)
    best_step = max(f1s, key=lambda s: (f1s[s], -s))  # Trainer keeps the first of equal values
    assert summary["best_metric"] == pytest.approx(f1s[best_step])
    assert summary["best_model_checkpoint"].endswith(f"checkpoint-{best_step}")
    # selected by F1, not by eval_loss: with equal F1s the first is kept even though the loss kept falling
    losses = {r["step"]: r["eval_loss"] for r in logged if "eval_f1_weighted" in r}
    if len(set(f1s.values())) == 1:
        assert best_step == 1 and min(losses, key=losses.get) != 1
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "run" / "model.safetensors"))
    best = load_file(str(Path(summary["best_model_checkpoint"]) / "model.safetensors"))
    last = load_file(str(tmp_path / "run" / "checkpoints" / "checkpoint-3" / "model.safetensors"))
    assert saved.keys() == best.keys() and all(saved[k].equal(best[k]) for k in saved)
    assert best_step == 3 or any(not saved[k].equal(last[k]) for k in saved)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["training"]["saved_weights"] == "best"
    assert manifest["training"]["metric_for_best_model"] == "f1_weighted"
    # RUN/ holds the best checkpoint's weights: `fintune eval` on the validation split gives the same F1
    metrics = run_eval(str(tmp_path / "run"), tmp_path / "run" / "data", tmp_path / "ev", split="validation",
                       bootstrap_samples=0, progress=False)
    assert metrics["f1_weighted"] == pytest.approx(f1s[best_step])


def test_task_metric_names_are_checked_before_loading(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    assert task_metric(tiny_recipe(model_dir)) is None  # eval_loss
    assert task_metric(tiny_recipe(model_dir, metric_for_best_model="eval_f1_weighted", eval_steps=2)) == \
        "f1_weighted"
    forecaster = {"task": "forecaster", "format": "forecaster"}
    assert task_metric(tiny_recipe(model_dir, metric_for_best_model="direction_accuracy", eval_steps=2,
                                   data=forecaster)) == "direction_accuracy"
    for kw, msg in (({"metric_for_best_model": "f1"}, "unknown metric 'f1'"),
                    ({"metric_for_best_model": "f1_weighted"}, "eval_steps is not set"),
                    ({"metric_for_best_model": "f1_weighted", "eval_steps": 2, "data": forecaster},
                     "does not apply to data.format 'forecaster'"),
                    ({"metric_for_best_model": "f1_weighted", "eval_steps": 2, "stage": "pretrain"},
                     "stage 1 \\(pretrain\\) selects by eval_loss")):
        with pytest.raises(FintuneError, match=msg):
            task_metric(tiny_recipe(model_dir, **kw))


def test_forecaster_keeps_the_checkpoint_with_the_best_validation_direction_accuracy(tmp_path: Path) -> None:
    """LoRA on FinGPT-shaped label-only rows, ranked in score mode (the recipe's eval block) at each evaluation."""
    from fintune.data.fingpt import B_INST, B_SYS, E_INST, E_SYS
    from fintune.evaluate import run_eval
    from fintune.train.sft import train_sft

    moves = [("Up by 1-2%", "up by 1-2%"), ("Down by 2-3%", "down by 2-3%"), ("Up by 0-1%", "up by 0-1%")]
    lines = []
    for week in range(16):
        a, b = f"2023-{1 + week // 4:02d}-{1 + 7 * (week % 4):02d}", f"2023-{1 + week // 4:02d}-{7 + 7 * (week % 4):02d}"
        text, label = moves[week % 3]
        lines.append(json.dumps({
            "prompt": f"{B_INST}{B_SYS}Predict next week.{E_SYS}AAPL news: revenue rose in week {week}.{E_INST}",
            "answer": f"[Prediction & Analysis]:\nPrediction: {text}", "period": f"{a} to {b}", "label": label,
            "symbol": "AAPL"}))
    rows = tmp_path / "fc.jsonl"
    rows.write_text("\n".join(lines) + "\n")
    data = {"task": "forecaster", "format": "forecaster", "template": "chatml",
            "sources": [{"name": "fingpt_forecaster", "path": str(rows)}],
            "split": {"method": "chronological", "test_size": 0.25, "val_size": 0.34, "seed": 0}}
    recipe = tiny_recipe(make_tiny_model_dir(tmp_path, "llama"), max_steps=2, eval_steps=1, save_steps=1,
                         max_seq_length=128, metric_for_best_model="direction_accuracy",
                         load_best_model_at_end=True, data=data, eval={"mode": "score"})
    summary = train_sft(recipe, out=tmp_path / "run")
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    acc = {r["step"]: r["eval_direction_accuracy"] for r in logged if "eval_direction_accuracy" in r}
    assert sorted(acc) == [1, 2] and summary["best_metric"] == max(acc.values())
    metrics = run_eval(str(tmp_path / "run"), tmp_path / "run" / "data", tmp_path / "ev", mode="score",
                       split="validation", bootstrap_samples=0, progress=False)
    assert metrics["forecast"]["direction_accuracy"] == pytest.approx(summary["best_metric"])
