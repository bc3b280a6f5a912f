"""`fintune ensemble`: mean of members' calibrated probabilities, eval's metrics, one-line errors, output guard.

Member eval directories are written by the functions `fintune eval` writes with (predictions from label
log-probabilities and a temperature, compute_metrics, write_eval_outputs, write_manifest).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fintune.artifacts import write_manifest
from fintune.cli import main
from fintune.errors import FintuneError
from fintune.evaluate import EvalData, compute_metrics, write_eval_outputs
from fintune.evaluate.ensemble import run_ensemble
from fintune.predict.rows import predictions_from_scores
from fintune.records import iter_jsonl, read_predictions
from fintune.report.runs import classify
from fintune.run import EnsembleManifest, EvalManifest, TaskSpec, read_run

LABELS = ("negative", "neutral", "positive")


def _train_run(tmp_path, name, seed, training=None, runtime_s=None):
    run = tmp_path / name
    run.mkdir()
    write_manifest(run, "train", seed=seed, base_model="tiny-base", training=training or {})
    if runtime_s is not None:
        rows = [{"loss": 1.0, "step": 1}, {"train_runtime": runtime_s, "step": 2}]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def _eval_dir(tmp_path, name, probs, gold, temperature=1.0, ids=None, run=None, labels=LABELS,
              bootstrap_samples=50, fmt="label"):
    """An eval directory whose calibrated probabilities are ``probs`` (label log-probs = T * log p)."""
    ids = ids or [f"e{i}" for i in range(len(gold))]
    rows = [{"id": i, "label": g} for i, g in zip(ids, gold, strict=True)]
    logprobs = temperature * np.log(np.asarray(probs, dtype=np.float64))
    preds = predictions_from_scores(rows, list(labels), logprobs, temperature, model_name=name)
    data = EvalData(splits={}, task="sentiment", fmt=fmt, template="chatml", labels=tuple(labels), source="prep")
    metrics = compute_metrics(preds, data, "test", "score", bootstrap_samples, 0,
                              {"temperature": temperature, "fitted_on": "validation" if temperature != 1 else None})
    metrics.update(model=name, data="prep", speed={"examples": len(preds), "seconds": 2.0})
    d = tmp_path / name
    d.mkdir()
    write_eval_outputs(d, preds, metrics)
    write_manifest(d, "eval", recipe={"out": str(d)}, seed=0, data_hashes={}, parent=str(run) if run else None,
                   model=str(run or name), labels=list(labels), mode="score", temperature=temperature,
                   task_spec=TaskSpec(labels=list(labels), format=fmt).model_dump(mode="json"))
    return d


P_A = [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.1, 0.4]]
P_B = [[0.1, 0.5, 0.4], [0.1, 0.2, 0.7], [0.3, 0.1, 0.6]]
GOLD3 = ["negative", "positive", "negative"]


def test_the_mean_of_calibrated_probabilities_on_hand_computed_numbers(tmp_path):
    # member a's probabilities come from log-probs scaled by T=2: the ensemble must average the calibrated ones
    a = _eval_dir(tmp_path, "a", P_A, GOLD3, temperature=2.0, run=_train_run(tmp_path, "run-a", 1,
                                                                             training={"train_runtime_s": 600.0}))
    b = _eval_dir(tmp_path, "b", P_B, GOLD3, run=_train_run(tmp_path, "run-b", 2, runtime_s=900.0))
    out = tmp_path / "ens"
    metrics = run_ensemble([a, b], out, bootstrap_samples=20)
    preds = read_predictions(out / "predictions.jsonl")
    want = [[0.4, 0.35, 0.25], [0.1, 0.4, 0.5], [0.4, 0.1, 0.5]]
    assert [p.label for p in preds] == ["negative", "positive", "positive"]
    for p, w in zip(preds, want, strict=True):
        assert [p.probabilities[lab] for lab in LABELS] == pytest.approx(w)
        assert p.confidence == pytest.approx(max(w))
        assert p.extra["members"] == [str(a), str(b)]
    assert preds[0].extra["member_labels"] == ["negative", "neutral"]
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    # ECE by hand: confidences 0.4 (right), 0.5 (right), 0.5 (wrong), 15 bins -> 1/3 * 0.6 + 2/3 * 0 = 0.2
    assert metrics["calibration"]["ece_after"] == pytest.approx(0.2)
    assert metrics["invalid_rate"] == 0.0
    assert [m["eval_dir"] for m in metrics["ensemble"]["members"]] == [str(a), str(b)]
    # a: negative, neutral, negative (2 right); b: neutral, positive, positive (1 right)
    assert [m["accuracy"] for m in metrics["ensemble"]["members"]] == pytest.approx([2 / 3, 1 / 3])
    assert metrics["ensemble"]["best_member"] == str(a)
    assert metrics["ensemble"]["vs_best_member"]["n_shared"] == 3
    manifest = read_run(out, "ensemble")
    assert isinstance(manifest, EnsembleManifest) and isinstance(read_run(out, "eval"), EvalManifest)
    assert [m.seed for m in manifest.members] == [1, 2]
    assert [m.train_minutes for m in manifest.members] == [10.0, 15.0]
    assert "training.train_runtime_s" in manifest.members[0].train_minutes_from
    assert "metrics.jsonl" in manifest.members[1].train_minutes_from
    assert manifest.cost.train_minutes == 25.0 and manifest.cost.forward_passes_per_text == 2
    assert manifest.cost.eval_seconds == 4.0
    assert json.loads((out / "calibration.json").read_text())["temperature"] == 1.0
    assert classify(out).kind == "eval"  # `fintune report` shows it with the evals


def test_two_copies_of_one_eval_have_that_evals_metrics(tmp_path):
    rng = np.random.default_rng(3)
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=40)
    gold = [LABELS[i] for i in rng.integers(0, 3, 40)]
    a = _eval_dir(tmp_path, "a", probs, gold, temperature=1.5, bootstrap_samples=100)
    got = run_ensemble([a, a], tmp_path / "ens")  # bootstrap samples and seed: the member's
    want = json.loads((a / "metrics.json").read_text())
    for key in ("accuracy", "f1_weighted", "f1_macro", "mcc", "invalid_rate"):
        assert got[key] == pytest.approx(want[key]), key
    for key, ci in want["classification"]["ci95"].items():
        assert got["classification"]["ci95"][key] == pytest.approx(ci), key
    assert got["classification"]["confusion_matrix"] == want["classification"]["confusion_matrix"]
    assert got["calibration"]["ece_after"] == pytest.approx(want["calibration"]["ece_after"])
    delta = got["ensemble"]["vs_best_member"]["f1_weighted"]
    assert delta["delta"] == 0.0 and not delta["significant"]
    # members' runs unknown: no training minutes, but the inference cost is still 2 passes per text
    cost = got["ensemble"]["cost"]
    assert cost["train_minutes"] is None and cost["forward_passes_per_text"] == 2


@pytest.fixture
def no_plots(monkeypatch):
    """Skip the PNGs (matplotlib is most of a member's write time); the files the ensemble reads are unchanged."""
    from fintune.evaluate import plots

    for name in ("plot_confusion_matrix", "plot_reliability", "plot_accuracy_coverage"):
        monkeypatch.setattr(plots, name, lambda *a, **k: None)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = exc.value.one_line()
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("case", ["missing", "extra", "gold", "labels", "forecaster", "generate", "probs"])
def test_mismatched_members_are_one_line_errors_naming_file_and_row(tmp_path, case, no_plots):
    a = _eval_dir(tmp_path, "a", P_A, GOLD3)
    ids = ["e0", "e1", "e2"]
    if case == "missing":
        b = _eval_dir(tmp_path, "b", P_B[:2], GOLD3[:2])
        want = f"{b / 'predictions.jsonl'}: id 'e2' of {a / 'predictions.jsonl'}:3 is missing"
    elif case == "extra":
        b = _eval_dir(tmp_path, "b", P_B, GOLD3, ids=["e0", "e1", "e9"])
        want = f"{b / 'predictions.jsonl'}:3: id 'e9' is not in {a / 'predictions.jsonl'}"
    elif case == "gold":
        b = _eval_dir(tmp_path, "b", P_B, ["negative", "neutral", "negative"], ids=ids)
        want = f"{b / 'predictions.jsonl'}:2: id 'e1' has gold 'neutral' but 'positive'"
    elif case == "labels":
        b = _eval_dir(tmp_path, "b", [[0.5, 0.5]] * 3, ["bearish", "bullish", "bearish"],
                      labels=("bearish", "bullish"))
        want = f"{b / 'metrics.json'}: field 'labels' is ['bearish', 'bullish']"
    elif case in ("forecaster", "generate"):
        b = _eval_dir(tmp_path, "b", P_B, GOLD3)
        m = json.loads((b / "metrics.json").read_text())
        m.update(format="forecaster") if case == "forecaster" else m.update(mode="generate")
        (b / "metrics.json").write_text(json.dumps(m))
        want = (f"{b / 'metrics.json'}: field 'format' is 'forecaster', not a classification eval"
                if case == "forecaster" else f"{b / 'metrics.json'}: field 'mode' is 'generate', not 'score'")
    else:
        b = _eval_dir(tmp_path, "b", P_B, GOLD3)
        rows = [r for _, r in iter_jsonl(b / "predictions.jsonl")]
        rows[1]["probabilities"] = {}
        (b / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        want = f"{b / 'predictions.jsonl'}:2: id 'e1' field 'probabilities' has labels []"
    with pytest.raises(FintuneError) as exc:
        run_ensemble([a, b], tmp_path / "ens")
    assert want in _one_line(exc)
    assert not (tmp_path / "ens").exists()


def test_output_guard(tmp_path, no_plots):
    a = _eval_dir(tmp_path, "a", P_A, GOLD3)
    b = _eval_dir(tmp_path, "b", P_B, GOLD3)
    out = tmp_path / "ens"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FintuneError, match="not empty"):
        run_ensemble([a, b], out, bootstrap_samples=0)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(FintuneError, match="is the input"):
        run_ensemble([a, b], a, bootstrap_samples=0, overwrite=True)
    assert (a / "predictions.jsonl").exists()
    run_ensemble([a, b], out, bootstrap_samples=0, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "predictions.jsonl").exists()
    with pytest.raises(FintuneError, match="at least two"):
        run_ensemble([a], tmp_path / "one")
    # a training run evaluated into RUN/eval is read through its eval/ subdirectory (and is an input too)
    run = tmp_path / "run"
    run.mkdir()
    a.rename(run / "eval")
    run_ensemble([run, b], tmp_path / "from-run", bootstrap_samples=0)
    assert read_run(tmp_path / "from-run", "ensemble").members[0].eval_dir == str(run / "eval")
    with pytest.raises(FintuneError, match="is the input"):
        run_ensemble([run, b], run / "eval", bootstrap_samples=0, overwrite=True)


def test_cli_exit_codes(tmp_path, capsys):
    a = _eval_dir(tmp_path, "a", P_A, GOLD3)
    b = _eval_dir(tmp_path, "b", P_B, GOLD3)
    assert main(["ensemble", str(a), str(b), "--out", str(tmp_path / "ens"), "--bootstrap-samples", "10"]) == 0
    out = capsys.readouterr().out
    assert '"forward_passes_per_text": 2' in out and f"wrote {tmp_path / 'ens'}" in out
    assert main(["ensemble", str(a), str(b), "--out", str(tmp_path / "ens")]) == 2  # not empty, no --overwrite
    err = capsys.readouterr().err
    assert err.startswith("fintune ensemble: error:") and err.count("\n") == 1
    assert main(["ensemble", str(a), str(tmp_path / "nope"), "--out", str(tmp_path / "e2")]) == 2
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "e2").exists()
    assert math.isclose(json.loads((tmp_path / "ens" / "metrics.json").read_text())["accuracy"], 2 / 3)
