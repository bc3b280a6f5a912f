"""Temperature scaling only when it does no harm: enough validation rows and lower held-out NLL."""

from __future__ import annotations

import numpy as np
import pytest

from fintune.evaluate.calibration import MIN_VALIDATION_FOR_TEMPERATURE, choose_temperature


def _logits(n: int, scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose softmax at T=1 is over-confident by ``scale`` (true logits are ``z / scale``)."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.0, 1.5, (n, 3))
    p = np.exp(true) / np.exp(true).sum(axis=1, keepdims=True)
    gold = np.array([rng.choice(3, p=row) for row in p])
    return np.log(p) * scale, gold


def test_overconfident_scores_get_a_temperature() -> None:
    z, gold = _logits(400, scale=3.0)
    choice = choose_temperature(z, gold)
    assert choice.applied and choice.temperature == pytest.approx(3.0, rel=0.35)
    assert choice.nll_scaled_cv < choice.nll_raw_cv and "applied" in choice.reason
    assert choice.to_dict()["fitted_on"] == "validation"


def test_already_calibrated_scores_keep_raw_probabilities_when_scaling_does_not_help() -> None:
    kept = 0
    for seed in range(6):
        z, gold = _logits(200, scale=1.0, seed=seed)
        choice = choose_temperature(z, gold)
        if not choice.applied:
            kept += 1
            assert choice.temperature == 1.0 and "does not lower held-out" in choice.reason
            assert choice.nll_scaled_cv >= choice.nll_raw_cv and choice.to_dict()["fitted_on"] is None
    assert kept >= 2  # a fit to noise loses on held-out data often; never applied blindly


def test_small_validation_split_keeps_raw_probabilities_and_says_why() -> None:
    z, gold = _logits(MIN_VALIDATION_FOR_TEMPERATURE - 1, scale=3.0)
    choice = choose_temperature(z, gold)
    assert not choice.applied and choice.temperature == 1.0 and choice.fitted_temperature is None
    assert f"{MIN_VALIDATION_FOR_TEMPERATURE - 1} labelled rows" in choice.reason
    assert choice.to_dict()["note"] == choice.reason
