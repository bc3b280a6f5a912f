"""`fintune eval` end to end on a tiny random model and a small prepared dataset: outputs, modes, bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from tests.tiny import make_tiny_model_dir

from fintune.errors import FintuneError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCES = {
    "positive": ["Revenue rose 12% to EUR 3.4 mn", "Profit increased strongly this quarter", "Shares rose on record sales",
                 "The bank raised its dividend", "Earnings beat expectations", "Operating margin gained",
                 "Orders rose in the first quarter", "Net income increased"],
    "negative": ["Shares fell 5.2 percent on Monday", "The company cut jobs", "Profit fell sharply",
                 "Sales declined in the quarter", "Loss widened to EUR 2 mn", "The analyst downgrade hit the stock",
                 "Revenue decreased", "Costs rose and margins fell"],
    "neutral": ["The board will meet next week", "The company said the report is due in March",
                "The fund holds shares of the bank", "Trading volume was reported", "The plan was announced",
                "The CEO said the deal is pending", "The index is compared with last year", "The filing was made"],
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    from fintune.data.prepare import prepare_data
    from fintune.recipe import validate_recipe_dict

    root = tmp_path_factory.mktemp("data")
    src = root / "fpb.jsonl"
    lines = [json.dumps({"text": t, "label": lab}) for lab, ts in SENTENCES.items() for t in ts]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    recipe = validate_recipe_dict({
        "model_name_or_path": "unused", "data": {
            "task": "sentiment", "format": "label", "template": "chatml",
            "sources": [{"name": "jsonl", "path": str(src)}],
            "split": {"method": "stratified", "test_size": 0.375, "val_size": 0.25, "seed": 0}}})
    return prepare_data(recipe, root / "prepared")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("model"), "llama", seed=3)


def _counts(prepared: Path) -> dict[str, int]:
    return json.loads((prepared / "manifest.json").read_text())["counts"]


def test_score_mode_writes_everything_with_calibration(prepared, tiny_dir, tmp_path):
    from fintune.evaluate import run_eval
    from fintune.records import read_predictions

    out = tmp_path / "eval"
    m = run_eval(str(tiny_dir), prepared, out, bootstrap_samples=50, progress=False)
    n_test = _counts(prepared)["test"]
    assert m["mode"] == "score" and m["n"] == n_test and m["invalid_rate"] == 0.0
    for f in ("predictions.jsonl", "metrics.json", "calibration.json", "manifest.json", "confusion_matrix.png",
              "reliability.png", "accuracy_vs_coverage.png"):
        assert (out / f).exists(), f
    preds = read_predictions(out / "predictions.jsonl")
    assert len(preds) == n_test and all(abs(sum(p.probabilities.values()) - 1) < 1e-6 for p in preds)
    assert all(p.gold in ("negative", "neutral", "positive") for p in preds)
    cal = json.loads((out / "calibration.json").read_text())
    # temperature scaling only when the validation split is large enough and it lowers held-out NLL
    assert cal["temperature"] > 0 and cal["note"]
    if _counts(prepared)["validation"] < 100:
        assert cal["fitted_on"] is None and cal["temperature"] == 1.0 and "fewer than the 100" in cal["note"]
    assert cal["n_validation"] == _counts(prepared)["validation"]
    assert m["calibration"]["after"]["nll"] is not None
    assert m["speed"]["examples_per_s"] > 0 and m["speed"]["latency_ms_p95"] >= m["speed"]["latency_ms_p50"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "eval" and manifest["data_sha256"] and manifest["temperature"] == cal["temperature"]
    # the recorded confidence is the temperature-scaled probability of the predicted label
    assert preds[0].confidence == pytest.approx(max(preds[0].probabilities.values()))


def test_generate_mode_counts_unparsable_outputs_as_invalid(prepared, tiny_dir, tmp_path):
    from fintune.evaluate import run_eval
    from fintune.records import INVALID, read_predictions

    out = tmp_path / "gen"
    m = run_eval(str(tiny_dir), prepared, out, mode="generate", max_new_tokens=4, bootstrap_samples=0,
                 progress=False)
    preds = read_predictions(out / "predictions.jsonl")
    n_invalid = sum(p.label == INVALID for p in preds)
    assert len(preds) == m["n"] == _counts(prepared)["test"]  # nothing dropped
    assert m["classification"]["invalid"] == n_invalid and m["invalid_rate"] == n_invalid / len(preds)
    assert all(p.raw_output is not None for p in preds)
    assert not (out / "calibration.json").exists()


def test_baselines_through_the_cli(prepared, tmp_path, capsys):
    from fintune.cli import main

    for name in ("majority", "tfidf"):
        out = tmp_path / name
        assert main(["eval", "--baseline", name, "--data", str(prepared), "--out", str(out),
                     "--bootstrap-samples", "20"]) == 0
        m = json.loads((out / "metrics.json").read_text())
        assert m["model"] == f"baseline:{name}" and m["n"] == _counts(prepared)["test"]
    assert '"accuracy"' in capsys.readouterr().out


def test_label_set_mismatch_is_one_clear_error_and_writes_nothing(prepared, tiny_dir, tmp_path, capsys):
    from fintune.cli import main
    from fintune.evaluate import run_eval

    run = tmp_path / "run"
    shutil.copytree(tiny_dir, run)
    (run / "manifest.json").write_text(json.dumps({"stage": "train", "base_model": "tiny",
                                                   "labels": ["bearish", "bullish"]}))
    out = tmp_path / "out"
    with pytest.raises(FintuneError, match=r"label sets differ.*bearish.*negative"):
        run_eval(str(run), prepared, out, progress=False)
    assert not out.exists()
    assert main(["eval", str(run), "--data", str(prepared), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fintune eval: error: label sets differ")


def test_unlabelled_data_still_predicts_and_says_no_gold(prepared, tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fintune.evaluate import evaluate_rows, load_eval_data

    ev = load_eval_data(prepared)
    ev.splits["test"] = [{**r, "label": None} for r in ev.splits["test"]]
    model, tok = AutoModelForCausalLM.from_pretrained(tiny_dir), AutoTokenizer.from_pretrained(tiny_dir)
    preds, m = evaluate_rows(model, tok, ev, bootstrap_samples=0, progress=False)
    assert len(preds) == len(ev.splits["test"]) and m["gold"] == "no gold" and "accuracy" not in m
    ev.splits["test"] = []
    with pytest.raises(FintuneError, match="split 'test' is empty"):
        evaluate_rows(model, tok, ev, progress=False)


def test_bad_data_paths_are_one_line_errors(tmp_path, tiny_dir):
    from fintune.evaluate import run_eval

    with pytest.raises(FintuneError, match="not found"):
        run_eval(None, tmp_path / "nope", tmp_path / "o", baseline="majority")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FintuneError, match="no manifest|not a prepared"):
        run_eval(None, empty, tmp_path / "o", baseline="tfidf")
    assert not (tmp_path / "o").exists()


def test_zero_shot_baseline_uses_the_runs_base_model(prepared, tiny_dir, tmp_path):
    from fintune.evaluate import run_eval

    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"stage": "train", "base_model": str(tiny_dir),
                                                   "labels": ["negative", "neutral", "positive"]}))
    m = run_eval(str(run), prepared, tmp_path / "zs", baseline="zero-shot", bootstrap_samples=0, progress=False)
    assert m["model"] == f"baseline:zero-shot:{tiny_dir}" and m["n"] == _counts(prepared)["test"]


def test_data_given_as_a_recipe_is_prepared_into_out_data(prepared, tiny_dir, tmp_path):
    import yaml

    from fintune.evaluate import run_eval

    manifest = json.loads((prepared / "manifest.json").read_text())
    recipe = manifest["recipe"]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    out = tmp_path / "ev"
    m = run_eval(str(tiny_dir), path, out, bootstrap_samples=0, progress=False)
    assert (out / "data" / "manifest.json").exists() and m["n"] == _counts(prepared)["test"]


def test_forecaster_metrics_from_generated_answers():
    from fintune.evaluate import EvalData, compute_metrics
    from fintune.labels import FORECAST_BINS
    from fintune.predict import predictions_from_generations

    def row(i, week_start, week_end, prev_end, label, ret, answer=None):
        extra = {"week_start": week_start, "week_end": week_end, "prev_close_date": prev_end,
                 "next_week_return": ret}
        if answer:
            extra["answer"] = answer
        return {"id": f"w{i}", "ticker": "AAPL", "label": label, "extra": extra, "date": week_start}

    answer = ("[Positive Developments]:\nstrong iphone sales\n[Potential Concerns]:\nweak china demand\n"
              "[Prediction & Analysis]:\nPrediction: up by 1-2%\nAnalysis: sales should lift the stock")
    train = [row(0, "2015-01-03", "2015-01-09", "2015-01-02", "D2", -1.4)]
    test = [row(1, "2015-01-10", "2015-01-16", "2015-01-09", "U2", 1.3, answer),
            row(2, "2015-01-17", "2015-01-23", "2015-01-16", "D1", -0.2)]
    ev = EvalData(splits={"train": train, "test": test}, task="forecaster", fmt="forecaster", template="chatml",
                  labels=FORECAST_BINS, source="x")
    texts = [answer.replace("weak china demand", "china"), "the stock will go up"]
    preds = predictions_from_generations(test, texts, "forecaster", FORECAST_BINS)
    assert [p.label for p in preds] == ["U2", "invalid"] and preds[0].expected_move == 1.5
    m = compute_metrics(preds, ev, "test", "generate")
    fc = m["forecast"]
    assert fc["parse_rate"] == 0.5 and fc["direction_accuracy"] == 0.5
    assert fc["vs_actual_move"]["n"] == 1 and fc["vs_actual_move"]["mae"] == pytest.approx(0.2)
    assert fc["rouge"]["positive_developments"]["rouge1"] == 1.0
    assert 0 < fc["rouge"]["potential_concerns"]["rouge1"] < 1
    # momentum: week 1's previous move is the train week's -1.4 (down, wrong), week 2's is week 1's +1.3 (wrong)
    assert fc["baselines"]["momentum"] == {"direction_accuracy": 0.0, "n": 2}
    assert fc["baselines"]["majority"]["bin"] == "D2"


def test_eval_of_a_run_uses_its_recipe_eval_block_unless_a_flag_overrides(prepared, tiny_dir, tmp_path, capsys):
    from fintune.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_dir, run)
    spec = {"task": "sentiment", "format": "label", "labels": ["negative", "neutral", "positive"],
            "template": "chatml", "eval": {"mode": "generate", "max_new_tokens": 3, "bootstrap_samples": 0},
            "eval_set": ["bootstrap_samples", "max_new_tokens", "mode"]}
    (run / "manifest.json").write_text(json.dumps({"stage": "train", "base_model": str(tiny_dir), "task_spec": spec}))
    assert main(["eval", str(run), "--data", str(prepared), "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert m["mode"] == "generate" and m["settings"]["max_new_tokens"] == {"value": 3, "from": "run recipe eval block"}
    assert m["speed"]["generated_tokens"] <= 3 * m["n"]
    assert "max_new_tokens=3 (run recipe eval block)" in capsys.readouterr().out
    assert main(["eval", str(run), "--data", str(prepared), "--out", str(tmp_path / "b"), "--no-progress",
                 "--mode", "score"]) == 0
    m = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert m["mode"] == "score" and m["settings"]["mode"]["from"] == "flag"
