"""Sweep trials in the trials ledger: each trial's kept validation predictions backtest with a ``sweep_trial``
label read from their manifest, and the deflated Sharpe counts every trial."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tests.backtest.price_files import write_random_walk_prices

from fintune.artifacts import write_manifest
from fintune.backtest.ledger import read_trials, run_trial_labels
from fintune.records import Prediction, write_jsonl


def _prices(root: Path, days: list[str]) -> Path:
    return write_random_walk_prices(root, days, ("AAA", "BBB"), start=50.0, seed=1)


def test_each_sweep_trial_backtest_joins_the_ledger_with_its_label(tmp_path: Path, capsys):
    from fintune.cli import main

    days = list(pd.bdate_range("2016-01-04", periods=60).strftime("%Y-%m-%d"))
    prices = _prices(tmp_path / "px", days)
    sweep = tmp_path / "sweep"
    for k in range(3):  # what fintune sweep keeps per trial: TRIAL/validation/{predictions.jsonl, manifest.json}
        run = sweep / "trials" / f"trial-{k:04d}"
        (run / "validation").mkdir(parents=True)
        write_manifest(run, "train", base_model="tiny")
        write_manifest(run / "validation", "eval", model=str(run), parent=str(run), split="validation",
                       sweep_trial=k)
        rng = np.random.default_rng(k)
        write_jsonl(run / "validation" / "predictions.jsonl", [
            Prediction(id=f"{t}{i}", label=str(rng.choice(["positive", "negative"])), ticker=t, date=days[i])
            for i in range(5, 50) for t in ("AAA", "BBB")])
        assert run_trial_labels(run / "validation" / "predictions.jsonl") == {"sweep_trial": k}
        assert main(["backtest", "--predictions", str(run / "validation" / "predictions.jsonl"), "--prices",
                     str(prices), "--random-sims", "0", "--bootstrap-samples", "0", "--model-cutoff", "2010-01-01",
                     "--ledger", str(sweep / "backtest_trials.jsonl"), "--out", str(sweep / "backtests" / str(k))]) == 0
    trials = read_trials(sweep / "backtest_trials.jsonl")
    assert [t.extra for t in trials] == [{"sweep_trial": 0}, {"sweep_trial": 1}, {"sweep_trial": 2}]
    last = json.loads((sweep / "backtests" / "2" / "metrics.json").read_text())["statistics"]
    assert last["n_trials"] == 3
    assert "best of 3 trials" in capsys.readouterr().out
    # an explicit label wins over the manifest's
    run = sweep / "trials" / "trial-0000"
    assert main(["backtest", "--predictions", str(run / "validation" / "predictions.jsonl"), "--prices", str(prices),
                 "--random-sims", "0", "--bootstrap-samples", "0", "--trial-label", "sweep_trial=x",
                 "--trial-label", "prompt=v2", "--ledger", str(tmp_path / "other.jsonl"),
                 "--out", str(tmp_path / "bt")]) == 0
    assert read_trials(tmp_path / "other.jsonl")[0].extra == {"sweep_trial": "x", "prompt": "v2"}
    # predictions outside a fintune run carry no label
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "manifest.json").write_text('{"tool": "someone else"}')
    assert run_trial_labels(tmp_path / "loose" / "p.jsonl") == {}
