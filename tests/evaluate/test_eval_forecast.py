"""Forecaster metrics: direction accuracy, MAE/MSE two ways, ROUGE per section, naive baselines."""

from __future__ import annotations

import pytest

from fintune.evaluate.forecast import forecast_baselines, forecast_metrics, rouge_by_section
from fintune.records import INVALID


def test_forecast_metrics_hand_case():
    gold = ["U2", "D1", "U5+", "D3"]
    pred = ["U3", "U1", INVALID, "D3"]
    moves = [2.5, 0.5, None, -2.5]
    actual = [1.2, -0.4, 7.0, None]
    m = forecast_metrics(gold, pred, moves, actual_moves=actual)
    assert m["parse_rate"] == 0.75 and m["invalid"] == 1
    assert m["direction_accuracy"] == 0.5  # invalid counts as wrong
    assert m["direction_accuracy_parsed"] == pytest.approx(2 / 3)
    assert m["bin_accuracy"] == 0.25
    # vs gold bin midpoints (U2 -> 1.5, D1 -> -0.5, D3 -> -2.5): errors 1.0, 1.0, 0.0
    assert m["vs_bin_midpoint"] == {"n": 3, "mae": pytest.approx(2 / 3), "mse": pytest.approx(2 / 3)}
    # vs actual moves where known and predicted: (2.5-1.2), (0.5+0.4)
    assert m["vs_actual_move"]["n"] == 2
    assert m["vs_actual_move"]["mse"] == pytest.approx((1.3 ** 2 + 0.9 ** 2) / 2)
    zero = m["vs_actual_move"]["zero_forecast"]  # predicting 0% on the same two examples
    assert zero["n"] == 2 and zero["mse"] == pytest.approx((1.2 ** 2 + 0.4 ** 2) / 2)


def test_rouge_sections_penalise_missing_outputs():
    ref = [{"analysis": "revenue growth was strong", "positive_developments": "new product"},
           {"analysis": "weak demand"}]
    pred = [{"analysis": "revenue growth was strong", "positive_developments": None}, None]
    r = rouge_by_section(pred, ref)
    assert r["analysis"]["n"] == 2 and r["analysis"]["rouge1"] == pytest.approx(0.5)
    assert r["positive_developments"] == {"n": 1, "rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    assert r["potential_concerns"]["n"] == 0 and r["potential_concerns"]["rouge1"] is None


def test_forecast_baselines():
    gold = ["U1", "U2", "D1", "D2"]
    b = forecast_baselines(gold, train_bins=["D1", "D1", "U1"], previous_moves=[0.3, -1.0, -0.2, None])
    assert b["always_up"]["direction_accuracy"] == 0.5
    assert b["momentum"] == {"direction_accuracy": pytest.approx(2 / 3), "n": 3}
    assert b["majority"]["bin"] == "D1" and b["majority"]["bin_accuracy"] == 0.25
    assert b["majority"]["direction_accuracy"] == 0.5
    assert forecast_baselines(gold, [], None)["momentum"]["direction_accuracy"] is None


def test_bootstrap_rate_and_paired_difference():
    from fintune.evaluate.forecast import bootstrap_rate, paired_difference

    r = bootstrap_rate([True] * 60 + [False] * 40, samples=500, seed=1)
    assert r["value"] == 0.6 and r["n"] == 100 and r["ci"][0] < 0.6 < r["ci"][1]
    assert bootstrap_rate([True, False], samples=0)["ci"] is None and bootstrap_rate([])["value"] is None
    same = paired_difference([True, False] * 20, [True, False] * 20, samples=200)
    assert same["difference"] == 0.0 and same["ci"] == [0.0, 0.0] and same["p_not_better"] == 1.0
    better = paired_difference([True] * 50, [False] * 50, samples=200)
    assert better["difference"] == 1.0 and better["p_not_better"] == 0.0


def test_direction_intervals_model_vs_baselines():
    from fintune.evaluate.forecast import direction_intervals

    gold = ["U1", "D2", "U3", "D1"]
    pred = ["U2", "D1", "D1", "D5+"]  # directions right, right, wrong, right
    prev = [1.0, None, -0.5, -2.0]  # momentum: up (right), -, down (wrong), down (right)
    out = direction_intervals(gold, pred, prev, p_up=[0.6, 0.55, 0.4, 0.2], samples=100, seed=0)
    assert out["model"]["value"] == 0.75 and out["always_up"]["value"] == 0.5
    assert out["model_minus_always_up"]["difference"] == 0.25
    assert out["momentum"] == {**out["momentum"], "n": 3, "value": pytest.approx(2 / 3)}
    assert out["model_minus_momentum"]["n"] == 3  # paired on the rows that have a previous move
    assert out["model_minus_momentum"]["difference"] == pytest.approx(0.0)
    assert out["model_p_up"]["value"] == 0.5  # p_up >= 0.5 says up: right, wrong, wrong, right
    assert "model_p_up" not in direction_intervals(gold, pred, None, None, samples=0)
