"""`fintune analyze`: score-mode results match the predict module, calibration is applied, files resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fintune.analyze import AnalyzeItem, Analyzer, analyze_file, find_temperature, public_result
from fintune.errors import FintuneError
from fintune.records import read_predictions

RUN_TEMPERATURE = 2.5  # what conftest.tiny_run writes into RUN/eval/calibration.json
TEXTS = ["Apple beats Q4 estimates by 15%", "Shares fell 5.2 percent on Monday.", "The board meets in March."]


@pytest.fixture(scope="module")
def plain(tiny_model) -> Analyzer:
    return Analyzer.load(str(tiny_model), batch_size=4)


@pytest.fixture(scope="module")
def run_analyzer(tiny_run) -> Analyzer:
    return Analyzer.load(str(tiny_run), batch_size=4)


def test_plain_model_scores_the_sentiment_labels_exactly_like_predict(plain):
    from fintune.predict import label_prompts, score_continuations, softmax_rows
    from fintune.prompts.tasks import build_messages
    from fintune.records import Example

    preds = plain.predict([AnalyzeItem(text=t, id=str(i)) for i, t in enumerate(TEXTS)])
    assert plain.describe()["labels"] == ["negative", "neutral", "positive"] and plain.mode == "score"
    prompts, conts = [], []
    for i, t in enumerate(TEXTS):
        msgs = build_messages(Example(id=str(i), text=t), "label", None, with_answer=False)
        p, c = label_prompts({"id": str(i), "messages": msgs}, plain.labels, "label", "auto", plain.tokenizer)
        prompts.append(p)
        conts.append(c)
    expected = softmax_rows(score_continuations(plain.model, plain.tokenizer, prompts, conts, progress=False))
    for pred, row in zip(preds, expected, strict=True):
        got = np.array([pred.probabilities[lab] for lab in plain.labels])
        np.testing.assert_allclose(got, row, rtol=1e-5, atol=1e-7)
        assert pred.label == plain.labels[int(row.argmax())] and pred.confidence == pytest.approx(row.max())
    out = public_result(preds[0], plain)
    assert set(out) >= {"sentiment", "confidence", "probabilities", "expected_move", "analysis", "model",
                        "latency_ms"}
    assert out["calibrated"] is False and out["expected_move"] is None and out["latency_ms"] > 0


def test_run_uses_its_manifest_and_the_fitted_temperature(run_analyzer, tiny_run):
    info = run_analyzer.describe()
    assert info["kind"] == "adapter" and info["calibrated"] and info["temperature"] == RUN_TEMPERATURE
    assert info["temperature_source"].endswith("eval/calibration.json")
    assert run_analyzer.system_prompt == "You are a financial analyst."
    pred = run_analyzer.predict([AnalyzeItem(text=TEXTS[0], id="a")])[0]
    logp = np.array([pred.label_logprobs[lab] for lab in run_analyzer.labels])
    z = np.exp((logp - logp.max()) / RUN_TEMPERATURE)
    np.testing.assert_allclose([pred.probabilities[lab] for lab in run_analyzer.labels], z / z.sum(), rtol=1e-9)
    assert public_result(pred, run_analyzer)["calibrated"] is True
    # a temperature fitted on another label set is refused
    (tiny_run / "eval" / "calibration.json").write_text(json.dumps(
        {"temperature": 1.5, "fitted_on": "validation", "labels": ["bearish", "bullish"]}))
    try:
        with pytest.raises(FintuneError, match="fitted on labels"):
            find_temperature(tiny_run, run_analyzer.labels)
    finally:
        (tiny_run / "eval" / "calibration.json").write_text(json.dumps(
            {"temperature": RUN_TEMPERATURE, "fitted_on": "validation", "labels": list(run_analyzer.labels)}))


def test_too_long_and_empty_texts_are_one_line_errors(plain):
    with pytest.raises(FintuneError, match="too long for the model"):
        plain.prepare(AnalyzeItem(text="revenue rose " * 400, where="TEXT"))
    with pytest.raises(FintuneError, match="TEXT: field 'text' is missing or empty"):
        plain.prepare(AnalyzeItem(text="   ", where="TEXT"))


def test_explain_generates_an_analysis(plain):
    pred = plain.predict([AnalyzeItem(text=TEXTS[0], id="e")], explain=True)[0]
    assert isinstance(pred.extra["analysis"], str) and pred.raw_output


def test_file_is_streamed_and_resumes_after_a_kill(plain, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "text": TEXTS[i % 3], "ticker": "aapl",
                                       "date": "2015-01-02"}) + "\n" for i in range(10)))
    out = tmp_path / "out.jsonl"
    summary = analyze_file(plain, src, out, batch_size=4, progress=False)
    assert summary["predicted"] == 10 and summary["skipped_already_done"] == 0
    full = out.read_text().splitlines()
    preds = read_predictions(out)  # the shared schema: backtest reads this file directly
    assert [p.id for p in preds] == [f"r{i}" for i in range(10)]
    assert preds[0].ticker == "AAPL" and preds[0].date == "2015-01-02" and preds[0].extra["model"]
    assert (tmp_path / "out.jsonl.manifest.json").exists()
    # a kill mid-write leaves 6 complete lines and half of the 7th
    out.write_text("\n".join(full[:6]) + "\n" + full[6][: len(full[6]) // 2])
    summary = analyze_file(plain, src, out, batch_size=4, progress=False)
    assert summary["skipped_already_done"] == 6 and summary["predicted"] == 4
    again = read_predictions(out)
    assert [p.id for p in again] == [p.id for p in preds]
    for a, b in zip(again, preds, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities)
    # nothing left to do: a rerun predicts nothing
    assert analyze_file(plain, src, out, batch_size=4, progress=False)["predicted"] == 0


def test_csv_input_and_bad_rows_name_file_and_line(plain, tmp_path):
    good = tmp_path / "in.csv"
    good.write_text("text,ticker\n\"Apple beats, again\",AAPL\nShares fell,MSFT\n")
    analyze_file(plain, good, tmp_path / "o.jsonl", progress=False)
    assert [p.id for p in read_predictions(tmp_path / "o.jsonl")] == ["line-000002", "line-000003"]
    bad = tmp_path / "bad.csv"
    bad.write_text("text,ticker\nfine,AAPL\n,MSFT\n")
    with pytest.raises(FintuneError, match=r"bad\.csv:3: field 'text' is missing or empty"):
        analyze_file(plain, bad, tmp_path / "b.jsonl", progress=False)
    assert not (tmp_path / "b.jsonl").exists()  # validated before any model work
    typo = tmp_path / "typo.jsonl"
    typo.write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"txt": "oops"}) + "\n")
    with pytest.raises(FintuneError, match=r"typo\.jsonl:2: unknown field\(s\) \['txt'\]"):
        analyze_file(plain, typo, tmp_path / "t.jsonl", progress=False)
    other = tmp_path / "o2.jsonl"
    other.write_text(json.dumps({"id": "zzz", "label": "positive"}) + "\n")
    with pytest.raises(FintuneError, match="not in"):
        analyze_file(plain, good, other, progress=False)


def test_cli_prints_json_for_one_text(tiny_run, capsys):
    from fintune.cli import main

    assert main(["analyze", "Apple beats Q4 estimates by 15%", "--model", str(tiny_run)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sentiment"] in ("negative", "neutral", "positive") and out["calibrated"] is True
    assert abs(sum(out["probabilities"].values()) - 1) < 1e-9 and out["model"] == str(tiny_run)
    assert main(["analyze", "--model", str(tiny_run)]) == 2
    assert "give either TEXT or --file" in capsys.readouterr().err


@pytest.mark.slow
def test_embedded_default_analyzes(shared_model_dir, monkeypatch):
    from fintune.models import ALIASES

    monkeypatch.setenv(ALIASES["smollm2-135m"].env_var, str(shared_model_dir))  # used only when not cached
    analyzer = Analyzer.load("smollm2-135m")
    pred = analyzer.predict([AnalyzeItem(text=TEXTS[0], id="x")])[0]
    assert pred.label in analyzer.labels and abs(sum(pred.probabilities.values()) - 1) < 1e-9
