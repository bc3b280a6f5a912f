"""A 6-trial Optuna sweep on a tiny random model: trials are run dirs, validation objective, resume, outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.tiny import make_tiny_model_dir

from fintune.errors import FintuneError
from fintune.recipe import validate_recipe_dict
from fintune.sweep import load_space, run_sweep, validate_space

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = {"positive": "profit rose record revenue growth", "negative": "loss fell layoffs cut decline",
         "neutral": "company said board meeting report"}


def _recipe(tmp: Path, model: Path, val_size: float = 0.25) -> object:
    data = tmp / "sent.jsonl"
    rows = [{"id": f"r{i}", "text": f"{WORDS[lab]} {i}", "label": lab}
            for i, lab in enumerate(["positive", "negative", "neutral"] * 8)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return validate_recipe_dict({
        "name": "tiny-sweep", "model_name_or_path": str(model), "dtype": "float32", "method": "lora",
        "lora_r": 4, "lora_alpha": 8, "per_device_train_batch_size": 8, "max_steps": 2, "max_seq_length": 64,
        "logging_steps": 1, "bf16": False, "warmup_ratio": 0.0, "save_steps": 100, "seed": 3,
        "data": {"task": "sentiment", "format": "label", "sources": [{"name": "jsonl", "path": str(data)}],
                 "split": {"method": "stratified", "test_size": 0.25, "val_size": val_size, "seed": 1}}})


def test_six_trial_sweep_writes_runs_summary_plots_and_resumes(tmp_path: Path) -> None:
    model = make_tiny_model_dir(tmp_path, "llama")
    space_file = tmp_path / "space.yaml"
    space_file.write_text(
        "lora_r: {type: categorical, choices: [2, 4]}\n"
        "lora_dropout: {type: float, low: 0.0, high: 0.1}\n"
        "target_modules: {type: categorical, choices: ['all-linear', 'q_proj,v_proj']}\n"
        "learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    out = tmp_path / "sweep"
    summary = run_sweep(_recipe(tmp_path, model), load_space(space_file), out, trials=6, progress=False)
    assert summary["n_trials"] == 6 and summary["n_complete"] + summary["n_pruned"] == 6
    best = summary["best"]
    assert 0.0 <= best["value"] <= 1.0 and set(best["params"]) == {"lora_r", "lora_dropout", "target_modules",
                                                                    "learning_rate"}
    run = Path(best["run_dir"])
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["recipe"]["lora_r"] == best["params"]["lora_r"]
    assert manifest["recipe"]["learning_rate"] == pytest.approx(best["params"]["learning_rate"])
    if best["params"]["target_modules"] != "all-linear":
        assert manifest["recipe"]["target_modules"] == ["q_proj", "v_proj"]
    for name in ("study.db", "trials.csv", "summary.md", "best.json", "history.png", "manifest.json"):
        assert (out / name).exists(), name
    assert (out / "summary.md").read_text().count("| complete |") == summary["n_complete"]
    # every scored trial keeps its validation predictions for `fintune backtest` (ledger label sweep_trial)
    from fintune.backtest.ledger import run_trial_labels
    from fintune.data.prepare import read_prepared
    from fintune.run import read_run

    scored = sorted(out.glob("trials/trial-*/validation/predictions.jsonl"))
    assert len(scored) == summary["n_complete"]
    for preds in scored:
        number = int(preds.parent.parent.name.removeprefix("trial-"))
        assert read_run(preds.parent, "eval").sweep_trial == number
        assert run_trial_labels(preds) == {"sweep_trial": number}
        val = read_prepared(preds.parent.parent / "data")["validation"]
        assert [json.loads(line)["id"] for line in preds.read_text().splitlines()] == [r["id"] for r in val]
    # resume: the same study continues on disk
    again = run_sweep(_recipe(tmp_path, model), load_space(space_file), out, trials=1, progress=False)
    assert again["n_trials"] == 7


def test_sweep_refuses_without_validation_split_and_bad_space(tmp_path: Path) -> None:
    with pytest.raises(FintuneError, match="val_size is 0"):
        run_sweep(_recipe(tmp_path, tmp_path / "m", val_size=0.0), {"lora_r": {"type": "int", "low": 1,
                                                                              "high": 2}}, tmp_path / "o", 1)
    with pytest.raises(FintuneError, match="key 'lora_rank': not searchable"):
        validate_space({"lora_rank": {"type": "int", "low": 1, "high": 4}})
    with pytest.raises(FintuneError, match="low' <= 'high'"):
        validate_space({"lora_r": {"type": "int", "low": 8, "high": 4}})
    with pytest.raises(FintuneError, match="choices must be scalars"):
        validate_space({"target_modules": {"type": "categorical", "choices": [["q_proj", "v_proj"]]}})


def test_pruning_stops_training_at_the_first_bad_evaluation(tmp_path: Path) -> None:
    import optuna

    from fintune.recipe import recipe_to_dict
    from fintune.sweep import pruning_callback
    from fintune.train.sft import train_sft

    class AlwaysPrune:  # the part of optuna.Trial the callback uses
        def __init__(self) -> None:
            self.reports: list[tuple[float, int]] = []

        def report(self, value: float, step: int) -> None:
            self.reports.append((value, step))

        def should_prune(self) -> bool:
            return True

    model = make_tiny_model_dir(tmp_path, "llama")
    raw = recipe_to_dict(_recipe(tmp_path, model))
    recipe = validate_recipe_dict({**raw, "max_steps": 6, "eval_steps": 2, "save_steps": 100})
    trial = AlwaysPrune()
    with pytest.raises(optuna.TrialPruned, match="step 2"):
        train_sft(recipe, tmp_path / "run", callbacks=[pruning_callback(trial)])
    assert [step for _, step in trial.reports] == [2]  # stopped after the first evaluation, not after 6 steps
    assert not (tmp_path / "run" / "adapter_model.safetensors").exists()
