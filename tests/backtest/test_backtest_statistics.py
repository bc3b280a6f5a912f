"""PSR / DSR / MinTRL against the papers' worked example, closed forms and simulation."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from fintune.backtest.statistics import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    min_track_record_length,
    probabilistic_sharpe_ratio,
    return_moments,
    sharpe_standard_error,
    sharpe_statistics,
)


def test_deflated_sharpe_paper_numerical_example():
    """Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio", numerical example: 100 trials, variance of
    the trials' annualised Sharpes 1/2, best annualised Sharpe 2.5 over 5 years of daily returns (T = 1250,
    250 days a year), skewness -3, kurtosis 10. The paper reports SR0 = 0.1132 (per day) and DSR = 0.9004."""
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe_ratio(2.5 / math.sqrt(250), 1250, 100, 0.5 / 250, skew=-3, kurt=10)
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    # DSR is PSR against SR0
    assert probabilistic_sharpe_ratio(2.5 / math.sqrt(250), 1250, -3, 10, benchmark=sr0) == pytest.approx(dsr)


def test_psr_normal_returns_closed_form_and_moments():
    # normal returns (skew 0, kurtosis 3): sigma(SR) = sqrt((1 + SR^2/2) / (T-1)) (Lo 2002)
    sr, n = 0.1, 500
    se = sharpe_standard_error(sr, n)
    assert se == pytest.approx(math.sqrt((1 + sr ** 2 / 2) / (n - 1)))
    assert probabilistic_sharpe_ratio(sr, n) == pytest.approx(NormalDist().cdf(sr / se))
    # negative skew and fat tails widen the error, so the same SR is less convincing
    assert probabilistic_sharpe_ratio(sr, n, skew=-2, kurt=9) < probabilistic_sharpe_ratio(sr, n)
    # moments: biased sample skewness / (non-excess) kurtosis as scipy.stats with bias=True
    r = np.random.default_rng(1).standard_t(5, 5000) * 0.01 + 0.0005
    s, g3, g4, t = return_moments(r)
    d = r - r.mean()
    assert t == 5000 and s == pytest.approx(r.mean() / r.std(ddof=1))
    assert g3 == pytest.approx((d ** 3).mean() / (d ** 2).mean() ** 1.5)
    assert g4 == pytest.approx((d ** 4).mean() / (d ** 2).mean() ** 2) and g4 > 3.5


def test_min_track_record_length_inverts_psr():
    sr, skew, kurt = 0.08, -0.5, 6.0
    n = min_track_record_length(sr, skew, kurt, benchmark=0.02, confidence=0.95)
    # at exactly MinTRL observations, PSR(benchmark) equals the confidence level
    assert probabilistic_sharpe_ratio(sr, n, skew, kurt, benchmark=0.02) == pytest.approx(0.95, abs=1e-9)
    assert min_track_record_length(0.01, benchmark=0.02) == math.inf  # no record shows an edge it lacks


def test_expected_max_sharpe_matches_simulation():
    """The false strategy theorem: the best of N skill-less Sharpes, each ~ N(0, V), averages about SR0 (an
    extreme-value approximation: measured 2.1% high at N=10, 0.9% at N=100, 0.3% at N=1000)."""
    rng = np.random.default_rng(0)
    v = 0.04
    for n_trials, tol in ((10, 0.03), (100, 0.015), (1000, 0.006)):
        best = (rng.standard_normal((200_000 // n_trials * 10, n_trials)) * math.sqrt(v)).max(axis=1).mean()
        assert expected_max_sharpe(n_trials, v) == pytest.approx(best, rel=tol)
    assert expected_max_sharpe(1, v) == 0.0
    with pytest.raises(ValueError):
        expected_max_sharpe(0, v)


def test_sharpe_statistics_deflates_with_more_trials():
    r = np.random.default_rng(3).normal(0.001, 0.01, 750)
    one = sharpe_statistics(r)
    assert one.n_trials == 1 and one.dsr == pytest.approx(one.psr) and one.sr0_per_period == 0
    trials = [*(np.random.default_rng(4).normal(0, 0.05, 49)), one.sharpe_per_period]
    many = sharpe_statistics(r, trials)
    assert many.n_trials == 50 and many.trial_sharpe_variance == pytest.approx(np.var(trials, ddof=1))
    assert many.dsr < one.dsr and many.sr0_annual > 0
    d = many.to_dict()
    assert all(v is None or math.isfinite(v) for v in d.values() if isinstance(v, float))
    flat = sharpe_statistics(np.zeros(10)).to_dict()  # constant returns: undefined, reported as None
    assert flat["psr"] is None and flat["dsr"] is None
