"""Quality levers of a recipe: a wall-clock training budget with its schedule, LoRA+, rsLoRA (tiny models)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers_train import encoded_rows, tiny_recipe
from tests.tiny import make_tiny_model_dir

import fintune.train.budget as budget
from fintune.errors import FintuneError
from fintune.recipe import Recipe, validate_recipe_dict
from fintune.train.budget import budget_lr_factor
from fintune.train.sft import prepare_model, run_training

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny"), "llama")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A fake monotonic clock for the budget: every reading moves it 10 s on."""
    now = [0.0]

    def tick() -> float:
        now[0] += 10.0
        return now[0]

    monkeypatch.setattr(budget, "monotonic", tick)
    return now


def _logged(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_budget_factor_formulas() -> None:
    assert budget_lr_factor(0.0, 0.0, "cosine") == 1.0 and budget_lr_factor(1.0, 0.0, "cosine") == 0.0
    assert budget_lr_factor(0.05, 0.1, "cosine") == pytest.approx(0.5)  # halfway through warmup
    assert budget_lr_factor(0.55, 0.1, "cosine") == pytest.approx(0.5)  # cosine midpoint after warmup
    assert budget_lr_factor(0.75, 0.0, "linear") == pytest.approx(0.25)
    assert budget_lr_factor(2.0, 0.0, "linear") == 0.0 and budget_lr_factor(0.9, 0.0, "constant") == 1.0
    with pytest.raises(ValueError, match="no time-budget schedule"):
        budget_lr_factor(0.5, 0.0, "polynomial")


def test_time_budget_stops_the_run_and_lays_the_schedule_over_time(llama: Path, tmp_path: Path,
                                                                   clock: list[float]) -> None:
    # 1 minute of budget, 10 s per step on the fake clock: 6 steps whatever max_steps says
    recipe = tiny_recipe(llama, max_steps=50, save_steps=100, max_train_minutes=1.0, lr_scheduler_type="cosine")
    model, tok, lineage = prepare_model(recipe)
    summary = run_training(recipe, model, tok, encoded_rows(tok, n=16), None, tmp_path / "run", False, "train",
                           dict(lineage))
    assert summary["global_step"] == 6 and summary["stopped_by_time_budget"]
    # the lr step k trains with was set by the scheduler after step k-1, from the elapsed time synced at the end
    # of step k-2: (k-2)/6 of the budget (one step of lag, the price of every rank using the same number)
    lrs = [r["learning_rate"] for r in _logged(tmp_path / "run") if "loss" in r]
    expected = [5e-3 * budget_lr_factor(max(k - 2, 0) / 6, 0.0, "cosine") for k in range(1, 7)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["training"]["max_train_minutes"] == 1.0 and manifest["training"]["stopped_by_time_budget"]


def test_resume_continues_the_same_budget(llama: Path, tmp_path: Path, clock: list[float]) -> None:
    first = tiny_recipe(llama, max_steps=4, save_steps=2, max_train_minutes=1.0)
    model, tok, lineage = prepare_model(first)
    rows = encoded_rows(tok, n=16)
    summary = run_training(first, model, tok, rows, None, tmp_path / "run", False, "train", dict(lineage))
    assert summary["global_step"] == 4 and not summary["stopped_by_time_budget"]  # stopped by max_steps at 40 s
    again = tiny_recipe(llama, max_steps=50, save_steps=2, max_train_minutes=1.0)
    model, tok, lineage = prepare_model(again)
    summary = run_training(again, model, tok, rows, None, tmp_path / "run", True, "train", dict(lineage))
    # 40 s were spent before the resume, so 2 more steps use the budget (a fresh budget would run 6 more)
    assert summary["global_step"] == 6 and summary["stopped_by_time_budget"]
    # step 6's lr comes from the restored 40 s (4/6 of the budget); a restarted clock would give the full lr
    step6 = next(r for r in _logged(tmp_path / "run") if r.get("step") == 6 and "loss" in r)
    assert step6["learning_rate"] == pytest.approx(5e-3 * budget_lr_factor(4 / 6, 0.0, "cosine"), rel=1e-6)


def test_loraplus_gives_b_matrices_the_ratio_and_rslora_scales_by_sqrt_r(llama: Path, tmp_path: Path) -> None:
    from fintune.train.callbacks import FintuneTrainer
    from fintune.train.sft import build_training_arguments

    recipe = tiny_recipe(llama, loraplus_lr_ratio=16.0, use_rslora=True)
    model, _, _ = prepare_model(recipe)
    layer = next(m for m in model.modules() if isinstance(getattr(m, "scaling", None), dict) and m.scaling)
    assert layer.scaling["default"] == pytest.approx(8 / 4 ** 0.5)  # alpha / sqrt(r), not alpha / r = 2
    trainer = FintuneTrainer(model=model, args=build_training_arguments(recipe, tmp_path, False),
                             loraplus_lr_ratio=16.0)
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in model.named_parameters()}
    lr_of = {names[id(p)]: g["lr"] for g in optimizer.param_groups for p in g["params"]}
    b = [lr for n, lr in lr_of.items() if "lora_B" in n]
    a = [lr for n, lr in lr_of.items() if "lora_A" in n]
    assert b and a and set(b) == {5e-3 * 16} and set(a) == {5e-3}


def test_lever_keys_are_validated() -> None:
    base = {"model_name_or_path": "smollm2-135m"}
    with pytest.raises(FintuneError, match="max_train_minutes needs lr_scheduler_type"):
        validate_recipe_dict({**base, "max_train_minutes": 5, "lr_scheduler_type": "polynomial"}, "r.yaml")
    with pytest.raises(FintuneError, match="loraplus_lr_ratio needs method lora"):
        validate_recipe_dict({**base, "method": "full", "loraplus_lr_ratio": 16}, "r.yaml")
    assert Recipe.model_validate({**base, "max_train_minutes": 0.5}).max_train_minutes == 0.5


def test_balanced_class_weights_match_sklearn_and_weight_the_loss(llama: Path) -> None:
    import numpy as np
    import torch
    from sklearn.utils.class_weight import compute_class_weight
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fintune.train.collate import PackingCollator, PaddingCollator, answer_only_loss
    from fintune.train.sft import balanced_weights

    labels = ["neutral"] * 6 + ["positive"] * 3 + ["negative"]
    weights = balanced_weights([{"id": i, "label": v} for i, v in enumerate(labels)], "train.parquet")
    classes = np.array(sorted(set(labels)))
    reference = dict(zip(classes, compute_class_weight("balanced", classes=classes, y=np.array(labels)),
                         strict=True))
    assert weights == pytest.approx([reference[v] for v in labels]) and np.mean(weights) == pytest.approx(1.0)
    with pytest.raises(FintuneError, match="row 1 .*no 'label'"):
        balanced_weights([{"id": 0, "label": "neutral"}, {"id": 1}], "train.parquet")

    model = AutoModelForCausalLM.from_pretrained(llama)
    rows = encoded_rows(AutoTokenizer.from_pretrained(llama), n=4)
    w = [0.5, 2.0, 1.0, 3.0]
    weighted = [{**r, "weight": x} for r, x in zip(rows, w, strict=True)]
    # reference: per-example token sums from unweighted single-example batches, weighted by hand
    sums, tokens = [], []
    for r in rows:
        one = PaddingCollator(3)([r])
        n = int((one["labels"][:, 1:] != -100).sum())
        sums.append(answer_only_loss(model, one).item() * n)
        tokens.append(n)
    expected = sum(s * x for s, x in zip(sums, w, strict=True)) / sum(tokens)
    for collate in (PackingCollator(3, 256), PaddingCollator(3)):
        batch = collate(weighted)
        assert "token_weights" in batch
        assert answer_only_loss(model, batch).item() == pytest.approx(expected, rel=1e-5)
    assert "token_weights" not in PackingCollator(3, 256)(rows)
    with torch.no_grad():
        assert answer_only_loss(model, PackingCollator(3, 256)(rows)).item() == pytest.approx(
            sum(sums) / sum(tokens), rel=1e-5)
