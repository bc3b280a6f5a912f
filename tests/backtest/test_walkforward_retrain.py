"""`fintune walkforward`: a tiny random forecaster retrained per window, each test window predicted out of sample,
purge checked (a planted leak stops the run), and the output backtested unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.backtest.price_files import write_random_walk_prices
from tests.tiny import make_tiny_model_dir

from fintune.errors import FintuneError
from fintune.recipe import validate_recipe_dict
from fintune.run import WalkForwardManifest, read_run

MOVES = [("Up by 1-2%", "up by 1-2%"), ("Down by 2-3%", "down by 2-3%"), ("Up by 0-1%", "up by 0-1%")]
WEEKS = 12
MONDAYS = [d.strftime("%Y-%m-%d") for d in pd.date_range("2023-01-02", periods=WEEKS, freq="W-MON")]


def _forecaster_recipe(tmp_path: Path, **extra) -> object:
    from fintune.data.fingpt import B_INST, B_SYS, E_INST, E_SYS

    lines = []
    for sym in ("AAPL", "MSFT"):
        for w, monday in enumerate(MONDAYS):
            friday = (pd.Timestamp(monday) + pd.Timedelta(days=4)).strftime("%Y-%m-%d")
            text, label = MOVES[(w + len(sym)) % 3]
            lines.append(json.dumps({
                "prompt": f"{B_INST}{B_SYS}Predict next week.{E_SYS}{sym} news: revenue rose in week {w}.{E_INST}",
                "answer": f"[Prediction & Analysis]:\nPrediction: {text}", "period": f"{monday} to {friday}",
                "label": label, "symbol": sym}))
    rows = tmp_path / "fc.jsonl"
    rows.write_text("\n".join(lines) + "\n")
    return validate_recipe_dict({
        "model_name_or_path": str(make_tiny_model_dir(tmp_path, "llama")), "dtype": "float32", "lora_r": 4,
        "lora_alpha": 8, "per_device_train_batch_size": 4, "max_steps": 2, "max_seq_length": 128, "bf16": False,
        "warmup_ratio": 0.0, "logging_steps": 1, "save_steps": 100, "seed": 5, "model_cutoff": "2024-01-31",
        "eval": {"mode": "score"},
        "data": {"task": "forecaster", "format": "forecaster", "template": "chatml",
                 "sources": [{"name": "fingpt_forecaster", "path": str(rows)}],
                 "split": {"method": "chronological", "test_size": 0.25, "seed": 0}}, **extra})


def _prices(root: Path) -> Path:
    days = list(pd.bdate_range("2022-12-26", "2023-04-07").strftime("%Y-%m-%d"))
    return write_random_walk_prices(root, days, ("AAPL", "MSFT"), start=100.0, seed=3)


def test_two_windows_retrain_predict_exactly_their_test_weeks_and_backtest(tmp_path: Path, capsys):
    from fintune.cli import main
    from fintune.data.prepare import read_prepared
    from fintune.walkforward import run_walkforward

    out = tmp_path / "wf"
    recipe_file = tmp_path / "fc.yaml"
    recipe_file.write_text(yaml.safe_dump(_forecaster_recipe(tmp_path).model_dump(mode="json")))
    assert main(["walkforward", str(recipe_file), "--windows", "2", "--test-weeks", "2", "--purge-weeks", "1",
                 "--no-progress", "--out", str(out)]) == 0
    assert "window 1: train" in capsys.readouterr().out
    manifest = read_run(out, "walkforward")
    assert isinstance(manifest, WalkForwardManifest) and manifest.n_predictions == 8
    assert manifest.model_cutoff == "2024-01-31"
    w0, w1 = manifest.windows
    fridays = [(pd.Timestamp(m) + pd.Timedelta(days=4)).strftime("%Y-%m-%d") for m in MONDAYS]
    # weeks 8-9 and 10-11 are tested; week 7 (resp. 9) is purged; both tickers every week
    assert (w0.test_first_week, w0.test_last_week, w1.test_first_week, w1.test_last_week) == \
        (fridays[8], fridays[9], fridays[10], fridays[11])
    assert (w0.n_train, w0.n_purged, w0.n_test) == (14, 2, 4) and (w1.n_train, w1.n_purged, w1.n_test) == (18, 2, 4)
    assert w0.train_last_week == fridays[6] and w0.purge_first_week == fridays[7] and w1.n_embargoed == 0
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    by_window = {w: sorted((p["ticker"], p["date"]) for p in preds if p["extra"]["wf_window"] == w) for w in (0, 1)}
    assert by_window[0] == sorted((t, MONDAYS[k]) for t in ("AAPL", "MSFT") for k in (8, 9))
    assert by_window[1] == sorted((t, MONDAYS[k]) for t in ("AAPL", "MSFT") for k in (10, 11))
    assert all(p["probabilities"] and p["label"] != "invalid" for p in preds)
    # every window's own model and training rows: no training label reaches its purge gap or test window
    for w in (w0, w1):
        run = read_run(out / w.run_dir, "train")
        assert run.model_cutoff == "2024-01-31" and run.training["train_examples"] == w.n_train
        train = read_prepared(out / "windows" / f"w{w.window:02d}" / "data")["train"]
        assert len(train) == w.n_train and max(r["extra"]["week_end"] for r in train) < w.purge_first_week
    # the output feeds `fintune backtest` unchanged, and its cutoff check reads the walk-forward manifest
    prices = _prices(tmp_path / "px")
    assert main(["backtest", "--predictions", str(out / "predictions.jsonl"), "--prices", str(prices),
                 "--holding-days", "5", "--random-sims", "5", "--bootstrap-samples", "0",
                 "--out", str(tmp_path / "bt")]) == 0
    metrics = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    assert metrics["signals"]["used"] == 8 and metrics["model_cutoff"]["status"] == "warning"
    assert metrics["model_cutoff"]["cutoff"] == "2024-01-31"
    # the output guard: an existing output needs --overwrite
    (tmp_path / "again").mkdir()
    with pytest.raises(FintuneError, match="overwrite"):
        run_walkforward(_forecaster_recipe(tmp_path / "again"), out, windows=2, test_weeks=2)


def test_a_planted_leak_across_the_purge_boundary_stops_the_run(tmp_path: Path, monkeypatch):
    import fintune.walkforward as wf

    honest = wf.select_train

    def leaky(idx, a, b, purge, embargo, two_sided):
        train, n_purged, n_embargoed = honest(idx, a, b, purge, embargo, two_sided)
        planted = int(np.flatnonzero(idx.t1 == a - 1)[0])  # a label resolved in the purge week before the test
        return np.append(train, planted), n_purged, n_embargoed

    monkeypatch.setattr(wf, "select_train", leaky)
    with pytest.raises(FintuneError, match=r"fingpt-\w+-2023-02-20: training label interval .* crosses"):
        wf.run_walkforward(_forecaster_recipe(tmp_path), tmp_path / "wf", windows=2, test_weeks=2, purge_weeks=1)
    assert not (tmp_path / "wf" / "windows").exists() and not (tmp_path / "wf" / "manifest.json").exists()


def test_bad_requests_are_one_line_errors(tmp_path: Path, capsys):
    from fintune.cli import main
    from fintune.walkforward import run_walkforward

    recipe = _forecaster_recipe(tmp_path)
    with pytest.raises(FintuneError, match="needs --two-sided|add --two-sided"):
        run_walkforward(recipe, tmp_path / "a", windows=2, test_weeks=2, embargo_weeks=1)
    with pytest.raises(FintuneError, match="cannot hold 6 test windows"):
        run_walkforward(recipe, tmp_path / "b", windows=6, test_weeks=2, purge_weeks=1)
    sentiment = validate_recipe_dict({**recipe.model_dump(mode="json"),
                                      "data": {"task": "sentiment", "format": "label"}})
    with pytest.raises(FintuneError, match="data.format: forecaster"):
        run_walkforward(sentiment, tmp_path / "c", windows=1, test_weeks=1)
    with pytest.raises(SystemExit) as exc:
        main(["walkforward", "missing.yaml", "--windows", "0", "--test-weeks", "1", "--out", "x"])
    assert exc.value.code == 2 and "--windows: must be an integer >= 1" in capsys.readouterr().err


def test_select_train_purges_before_and_embargoes_after_the_test_window():
    from fintune.backtest.purged import assert_no_leak
    from fintune.walkforward import WeekIndex, plan_windows, select_train

    # 20 weekly examples; example 5 has a label spanning two weeks (5..6)
    t0 = np.arange(20)
    t1 = t0.copy()
    t1[5] = 6
    idx = WeekIndex([f"w{k}" for k in range(20)], t0, t1, [f"e{k}" for k in range(20)])
    assert plan_windows(idx, 2, 3, 2) == [(14, 16), (17, 19)]
    train, purged, embargoed = select_train(idx, 8, 10, 2, 0, False)  # purge weeks 6, 7
    assert train.tolist() == [0, 1, 2, 3, 4] and (purged, embargoed) == (3, 0)  # 5 (label reaches 6), 6, 7
    train, purged, embargoed = select_train(idx, 8, 10, 2, 2, True)  # also after: embargo 11, 12
    assert train.tolist() == [0, 1, 2, 3, 4, *range(13, 20)] and (purged, embargoed) == (3, 2)
    assert_no_leak(idx.t0, idx.t1, train, [(6, 10)], 2, names=idx.ids)
    with pytest.raises(FintuneError, match="e11: training label interval"):
        assert_no_leak(idx.t0, idx.t1, np.append(train, 11), [(6, 10)], 2, names=idx.ids)
    with pytest.raises(FintuneError, match="cannot hold 7 test windows"):
        plan_windows(idx, 7, 3, 1)
