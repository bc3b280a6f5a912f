"""The run contract: typed manifests per stage, legacy directories, one-line errors, eval settings' sources."""

from __future__ import annotations

import json

import pytest

from fintune.errors import FintuneError
from fintune.recipe import validate_recipe_dict
from fintune.run import (
    CollectManifest,
    DataManifest,
    DemoManifest,
    EvalManifest,
    RunManifest,
    SynthManifest,
    TaskSpec,
    TrainManifest,
    read_run,
)


def _write(path, obj):
    path.mkdir(parents=True, exist_ok=True)
    (path / "manifest.json").write_text(json.dumps(obj))
    return path


def test_each_stage_reads_as_its_type_and_a_missing_field_is_named(tmp_path):
    spec = {"task": "sentiment", "format": "label", "labels": ["negative", "neutral", "positive"]}
    data = read_run(_write(tmp_path / "d", {"stage": "data", "task_spec": spec, "counts": {"train": 3}}))
    assert isinstance(data, DataManifest) and data.spec.labels == spec["labels"] and data.world_size == 1
    train = read_run(_write(tmp_path / "t", {"stage": "train", "base_model": "m", "task_spec": spec}), "train")
    assert isinstance(train, TrainManifest) and train.base_model == "m"
    assert isinstance(read_run(_write(tmp_path / "e", {"stage": "eval", "model": "m"})), EvalManifest)
    assert type(read_run(_write(tmp_path / "s", {"stage": "sweep"}))) is RunManifest
    with pytest.raises(FintuneError, match=r"t2/manifest.json: missing field 'base_model' \(train manifest\)"):
        read_run(_write(tmp_path / "t2", {"stage": "train"}))
    with pytest.raises(FintuneError, match="not a train run"):
        read_run(tmp_path / "e", "train")
    with pytest.raises(FintuneError, match="missing field 'stage'"):
        read_run(_write(tmp_path / "x", {"foo": 1}))
    with pytest.raises(FintuneError, match="no manifest"):
        read_run(tmp_path / "nowhere")


def test_legacy_manifest_rebuilds_the_task_spec(tmp_path):
    legacy = {"stage": "train", "base_model": "m", "labels": ["bearish", "bullish"], "template": "chatml",
              "recipe": {"data": {"task": "sentiment", "format": "structured", "system_prompt": "Be brief."},
                         "eval": {"mode": "generate", "max_new_tokens": 512, "per_device_eval_batch_size": 8}}}
    spec = read_run(_write(tmp_path / "r", legacy)).spec
    assert spec.labels == ["bearish", "bullish"] and spec.template == "chatml" and spec.format == "structured"
    assert spec.system_prompt == "Be brief." and spec.eval.max_new_tokens == 512
    assert spec.eval_set == ["max_new_tokens", "mode"]  # the batch size is the default


def test_task_spec_from_recipe_records_what_the_recipe_set():
    recipe = validate_recipe_dict({"model_name_or_path": "m", "data": {"template": "llama3", "sources": [
        {"name": "tfns", "label_map": {"0": "negative"}}]}, "eval": {"max_new_tokens": 512}}, "r")
    spec = TaskSpec.from_recipe(recipe)
    assert spec.template_date == "26 Jul 2024" and spec.label_maps == {"tfns": {"0": "negative"}}
    assert spec.eval_set == ["max_new_tokens"] and spec.labels == ["negative", "neutral", "positive"]


def test_eval_settings_flag_then_run_recipe_then_default():
    from fintune.evaluate import resolve_eval_settings

    spec = TaskSpec(eval={"max_new_tokens": 512, "mode": "generate"}, eval_set=["max_new_tokens", "mode"])
    got = resolve_eval_settings({"max_new_tokens": None, "mode": None, "batch_size": 4}, spec)
    assert got["max_new_tokens"] == {"value": 512, "from": "run recipe eval block"}
    assert got["mode"] == {"value": "generate", "from": "run recipe eval block"}
    assert got["batch_size"] == {"value": 4, "from": "flag"}
    assert got["bootstrap_samples"] == {"value": 1000, "from": "default"}
    assert resolve_eval_settings({"max_new_tokens": 32}, spec)["max_new_tokens"]["from"] == "flag"


def test_prediction_typed_fields_lift_legacy_extra(tmp_path):
    from fintune.records import Prediction, read_predictions, write_jsonl

    old = {"id": "a", "label": "U2", "extra": {"asof": "2015-01-09", "p_up": 0.7, "model": "m"}}
    (tmp_path / "p.jsonl").write_text(json.dumps(old) + "\n")
    pred = read_predictions(tmp_path / "p.jsonl")[0]
    assert pred.asof == "2015-01-09" and pred.p_up == 0.7 and pred.extra == {"model": "m"}
    write_jsonl(tmp_path / "q.jsonl", [Prediction(id="b", label="x", label_logprobs={"x": -0.1})])
    assert read_predictions(tmp_path / "q.jsonl")[0].label_logprobs == {"x": -0.1}


def test_data_manifest_types_what_later_stages_read(tmp_path):
    spec = {"task": "sentiment", "labels": ["negative", "positive"]}
    raw = {"stage": "data", "task_spec": spec, "task": "sentiment", "counts": {"train": 2, "test": 1},
           "label_counts": {"train": {"negative": 1, "positive": 1}}, "date_range": {"train": ["2020-01-01", None]},
           "sources": [{"name": "synth", "path": None, "examples": 3, "seed": 7}],
           "leakage": {"across": {"test_vs_train": {"exact": 1, "normalized": 2, "near": 3, "total": 3}},
                       "dropped": None, "threshold": 0.8},
           "mix": {"train": {"synth": {"examples": 2, "share": 1.0}}}, "warnings": ["w"]}
    m = read_run(_write(tmp_path / "d", raw), "data")
    assert isinstance(m, DataManifest) and m.task == "sentiment" and m.label_counts["train"]["positive"] == 1
    assert m.sources[0].name == "synth" and m.sources[0].model_extra == {"seed": 7}  # loader keys are kept
    assert m.leakage.across["test_vs_train"].near == 3 and m.leakage.dropped is None
    assert m.mix["train"]["synth"]["share"] == 1.0 and m.warnings == ["w"] and m.date_range["train"][1] is None
    bad = {**raw, "leakage": {"across": {"test_vs_train": {"exact": 1, "near": 3}}}}
    with pytest.raises(FintuneError, match=r"missing field 'leakage.across.test_vs_train.normalized' \(data"):
        read_run(_write(tmp_path / "d2", bad))


def test_synth_collect_and_demo_manifests_read_as_their_types(tmp_path):
    synth = {"stage": "synth", "n": 4, "summary": {"labels": {"positive": 4}, "hard": 1, "distinct_3": 0.5},
             "universe": [{"ticker": "ABC", "name": "Abc Corp"}]}
    s = read_run(_write(tmp_path / "s", synth), "synth")
    assert isinstance(s, SynthManifest) and s.summary.hard == 1 and s.universe[0]["ticker"] == "ABC"
    c = read_run(_write(tmp_path / "c", {"stage": "collect", "tickers": ["A"], "start": "2024-01-01",
                                         "end": "2024-02-01", "news_examples": 5, "finnhub": {"calls": 2}}))
    assert isinstance(c, CollectManifest) and c.news_examples == 5 and c.finnhub == {"calls": 2}
    d = read_run(_write(tmp_path / "demo", {"stage": "demo", "runs": ["x/data"]}), "demo")
    assert isinstance(d, DemoManifest) and d.runs == ["x/data"]
    for stage, raw, field in (("synth", {"n": 4}, "summary"), ("collect", {"tickers": []}, "start"),
                              ("demo", {}, "runs")):
        with pytest.raises(FintuneError, match=rf"manifest.json: missing field '{field}' \({stage} manifest\)"):
            read_run(_write(tmp_path / f"old-{stage}", {"stage": stage, **raw}))
    with pytest.raises(FintuneError, match="a 'collect' directory, not a synth run"):
        read_run(tmp_path / "c", "synth")
