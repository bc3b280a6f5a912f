"""The base model's pretraining cutoff as a recipe key: validated, recorded by `fintune train` as a typed manifest
field and in the model card, read back (typed) by `fintune backtest`, whose flag still wins."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pandas as pd
import pytest
from tests.backtest.price_files import write_random_walk_prices
from tests.tiny import make_tiny_model_dir

from fintune.artifacts import write_manifest
from fintune.backtest.cutoff import resolve_cutoff
from fintune.errors import FintuneError
from fintune.modelcard import model_card
from fintune.recipe import load_recipe, validate_recipe_dict
from fintune.records import Prediction, write_jsonl
from fintune.run import TrainManifest, parse_manifest, read_run


@pytest.mark.parametrize("value", ["2023-02-30", "soon", "2023-1-1", 20231231, "2023-12-31T00:00"])
def test_recipe_model_cutoff_must_be_a_real_iso_date(value):
    with pytest.raises(FintuneError) as exc:
        validate_recipe_dict({"model_name_or_path": "m", "model_cutoff": value}, "r.yaml")
    msg = exc.value.one_line()
    assert "\n" not in msg and msg.startswith("r.yaml: key 'model_cutoff'") and "YYYY-MM-DD" in msg


def test_recipe_model_cutoff_accepts_iso_strings_and_yaml_dates(tmp_path: Path):
    assert validate_recipe_dict({"model_name_or_path": "m", "model_cutoff": "2023-12-31"}).model_cutoff == "2023-12-31"
    assert validate_recipe_dict({"model_name_or_path": "m"}).model_cutoff is None
    f = tmp_path / "r.yaml"
    f.write_text("model_name_or_path: m\nmodel_cutoff: 2024-06-30\n")  # YAML reads this as a date
    assert load_recipe(f).model_cutoff == "2024-06-30"
    assert load_recipe(f, ["model_cutoff=2020-01-01"]).model_cutoff == "2020-01-01"
    with pytest.raises(FintuneError, match="model_cutoff"):
        load_recipe(f, ["model_cutoff=2020-13-01"])
    assert validate_recipe_dict({"model_name_or_path": "m",
                                 "model_cutoff": datetime.date(2022, 1, 2)}).model_cutoff == "2022-01-02"


def test_manifest_field_is_typed_and_rebuilt_from_an_older_recipe_record():
    m = parse_manifest({"stage": "train", "base_model": "b", "recipe": {"model_cutoff": "2014-06-30"}})
    assert isinstance(m, TrainManifest) and m.model_cutoff == "2014-06-30"
    with pytest.raises(FintuneError, match="model_cutoff"):
        parse_manifest({"stage": "train", "base_model": "b", "model_cutoff": "June"})


def _prices(root: Path, days: list[str]) -> Path:
    return write_random_walk_prices(root, days, ("AAA",), start=50.0, seed=0)


def test_train_records_cutoff_card_shows_it_and_backtest_warns(tmp_path: Path, capsys):
    from fintune.cli import main
    from fintune.train.sft import train_sft

    csv = tmp_path / "news.csv"
    csv.write_text("text,label\n" + "\n".join(f"Revenue rose {i} percent,positive\nShares fell {i} percent,negative"
                                              for i in range(6)) + "\n")
    recipe = validate_recipe_dict({
        "model_name_or_path": str(make_tiny_model_dir(tmp_path, "llama")), "model_cutoff": "2015-03-31",
        "dtype": "float32", "lora_r": 4, "lora_alpha": 8, "per_device_train_batch_size": 4, "max_steps": 1,
        "max_seq_length": 64, "bf16": False, "warmup_ratio": 0.0, "logging_steps": 1,
        "data": {"task": "sentiment", "format": "label", "template": "chatml",
                 "sources": [{"name": "csv", "path": str(csv), "text_column": "text", "label_column": "label"}],
                 "split": {"method": "random", "test_size": 0.25, "seed": 0}}})
    run = tmp_path / "run"
    train_sft(recipe, out=run)
    manifest = read_run(run, "train")
    assert isinstance(manifest, TrainManifest) and manifest.model_cutoff == "2015-03-31"
    assert json.loads((run / "manifest.json").read_text())["model_cutoff"] == "2015-03-31"
    card = model_card(manifest, manifest.base_model, "tiny")
    assert "model_cutoff: '2015-03-31'" in card and "pretraining cutoff: 2015-03-31" in card

    # predictions of that run (an eval directory pointing back at it) over Jan..Apr 2015
    days = list(pd.bdate_range("2015-01-05", periods=80).strftime("%Y-%m-%d"))
    ev = run / "eval"
    ev.mkdir()
    write_manifest(ev, "eval", model=str(run), parent=str(run))
    write_jsonl(ev / "predictions.jsonl", [Prediction(id=f"p{i}", label="positive" if i % 3 else "negative",
                                                      ticker="AAA", date=days[i]) for i in range(5, 70)])
    assert resolve_cutoff(ev / "predictions.jsonl")["cutoff"] == "2015-03-31"
    prices = _prices(tmp_path / "px", days)
    common = ["backtest", "--predictions", str(ev / "predictions.jsonl"), "--prices", str(prices),
              "--random-sims", "0", "--bootstrap-samples", "0"]
    assert main([*common, "--out", str(tmp_path / "bt" / "a")]) == 0
    printed = capsys.readouterr().out
    mc = json.loads((tmp_path / "bt" / "a" / "metrics.json").read_text())["model_cutoff"]
    assert mc["status"] == "warning" and mc["cutoff"] == "2015-03-31" and "model_cutoff" in mc["source"]
    assert "model cutoff: warning" in printed and "2015-03-31" in printed
    # the flag wins over the run's field
    assert main([*common, "--out", str(tmp_path / "bt" / "b"), "--model-cutoff", "2014-12-31"]) == 0
    mc = json.loads((tmp_path / "bt" / "b" / "metrics.json").read_text())["model_cutoff"]
    assert mc["status"] == "ok" and mc["source"] == "--model-cutoff"
    # without the recipe key the known-model table (none for a tiny local model) -> unknown
    (run / "manifest.json").write_text(json.dumps({**json.loads((run / "manifest.json").read_text()),
                                                   "model_cutoff": None, "recipe": {}}))
    assert resolve_cutoff(ev / "predictions.jsonl")["cutoff"] is None
    # a fintune manifest up the chain that does not validate is a one-line error, not a silent 'unknown'
    (run / "manifest.json").write_text(json.dumps({"stage": "train", "model_cutoff": "2015-03-31"}))
    with pytest.raises(FintuneError, match="missing field 'base_model'"):
        resolve_cutoff(ev / "predictions.jsonl")


def test_analyze_file_predictions_find_their_model_through_the_file_manifest(tmp_path: Path):
    """`analyze --file` writes `<out>.manifest.json` beside its output (no manifest.json in that folder): the cutoff
    chain starts there and follows `parent_run` to the run, so the base model's cutoff is found, not 'unknown'."""
    from fintune.artifacts import atomic_write_json, build_manifest

    run = tmp_path / "run"
    run.mkdir()
    write_manifest(run, "train", base_model="smollm2-135m")
    preds = tmp_path / "out" / "q4_preds.jsonl"
    preds.parent.mkdir()
    write_jsonl(preds, [Prediction(id="p1", label="positive", ticker="AAA", date="2015-10-01")])
    assert resolve_cutoff(preds)["cutoff"] is None  # no manifest anywhere yet
    atomic_write_json(preds.with_name(preds.name + ".manifest.json"), build_manifest("analyze", parent=str(run),
                                                                                     model=str(run)))
    got = resolve_cutoff(preds)
    assert got["cutoff"] == "2023-12-31" and got["model"] == "smollm2-135m"
