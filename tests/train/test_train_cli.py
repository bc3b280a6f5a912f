"""``fintune train`` / ``merge`` end to end through the CLI on a tiny model and real FPB rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from tests.tiny import make_tiny_model_dir

from fintune.cli import main

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _recipe(tmp_path: Path, model: str, fpb: Path) -> Path:
    raw = {
        "name": "tiny-fpb", "model_name_or_path": model, "dtype": "float32", "method": "lora", "lora_r": 4,
        "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "per_device_train_batch_size": 4,
        "learning_rate": 1e-3, "max_steps": 2, "save_steps": 2, "eval_steps": 2, "max_seq_length": 128,
        "logging_steps": 1, "bf16": False, "seed": 3,
        "data": {"task": "sentiment", "format": "label", "template": "auto",
                 "sources": [{"name": "phrasebank", "path": str(fpb), "agreement": "all", "limit": 40}],
                 "split": {"method": "stratified", "test_size": 0.25, "val_size": 0.1, "seed": 3}},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text("# Launch: fintune train recipe.yaml\n" + yaml.safe_dump(raw))
    return path


def test_train_and_merge_cli(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fintune.data.prepare")
    model = make_tiny_model_dir(tmp_path, "llama")
    recipe = _recipe(tmp_path, str(model), shared_data / "financial_phrasebank")
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "trainable params: 1,792 || all params:" in out  # 2 layers x (q: 4x(64+64) + v: 4x64+32x4)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["global_step"] == 2 and summary["train_examples"] > 0 and summary["eval_examples"] > 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["labels"] == ["negative", "neutral", "positive"] and manifest["data_sha256"]
    assert (run / "data" / "train.parquet").exists() and (run / "adapter_model.safetensors").exists()
    assert main(["merge", str(run), "--out", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "model.safetensors").exists()
    # a second train into the same run without --resume refuses instead of mixing runs
    assert main(["train", str(recipe), "--out", str(run)]) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_train_cli_bad_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"model_name_or_path": str(tmp_path / "missing-model")}))
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model not found" in err


def test_train_cli_with_the_quality_levers(shared_data: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """class_weighting, LoRA+, rsLoRA and a time budget reach the Trainer from `--set` and the manifest says so."""
    model = make_tiny_model_dir(tmp_path, "llama")
    recipe = _recipe(tmp_path, str(model), shared_data / "financial_phrasebank")
    run = tmp_path / "run"
    sets = ["class_weighting=balanced", "loraplus_lr_ratio=4", "use_rslora=true", "max_train_minutes=5"]
    assert main(["train", str(recipe), "--out", str(run), *[a for s in sets for a in ("--set", s)]]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["global_step"] == 2 and summary["max_train_minutes"] == 5 and not summary["stopped_by_time_budget"]
    recipe_used = json.loads((run / "manifest.json").read_text())["recipe"]
    assert (recipe_used["class_weighting"], recipe_used["loraplus_lr_ratio"], recipe_used["use_rslora"]) == (
        "balanced", 4.0, True)
    assert json.loads((run / "adapter_config.json").read_text())["use_rslora"] is True
