"""Sharpe statistics that account for non-normal returns, short records and the number of things tried.

Bailey & Lopez de Prado, "The Sharpe Ratio Efficient Frontier" (Journal of Risk, 2012) and "The Deflated Sharpe
Ratio" (Journal of Portfolio Management, 2014). Notation: ``SR`` the observed Sharpe ratio *per period* (not
annualised; ``SR_annual = SR * sqrt(A)``), ``T`` the number of returns, ``g3`` their skewness, ``g4`` their
kurtosis (not excess: 3 for a normal), ``Z`` the standard normal CDF, ``gamma`` the Euler-Mascheroni constant.

* Standard error of SR (Mertens 2002 / Lo 2002 under non-normal IID returns)::

      sigma(SR) = sqrt((1 - g3*SR + (g4 - 1)/4 * SR^2) / (T - 1))

* Probabilistic Sharpe Ratio, the probability that the true SR exceeds a benchmark ``SR*``::

      PSR(SR*) = Z[(SR - SR*) * sqrt(T - 1) / sqrt(1 - g3*SR + (g4 - 1)/4 * SR^2)]

* Minimum track record length, the ``T`` at which ``PSR(SR*)`` reaches the confidence ``1 - alpha``::

      MinTRL = 1 + (1 - g3*SR + (g4 - 1)/4 * SR^2) * (Z^-1[1 - alpha] / (SR - SR*))^2

* Expected maximum Sharpe of ``N`` independent trials with no skill (the false strategy theorem)::

      SR0 = sqrt(V[SR_n]) * ((1 - gamma) * Z^-1[1 - 1/N] + gamma * Z^-1[1 - 1/(N e)])

  with ``V[SR_n]`` the variance of the ``N`` trials' (per-period) Sharpe ratios.

* Deflated Sharpe Ratio: ``DSR = PSR(SR0)``, the probability that the best of ``N`` trials has a true SR above
  what luck alone would give the best of ``N``. One trial: ``SR0 = 0`` and ``DSR = PSR(0)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def return_moments(returns: Any) -> tuple[float, float, float, int]:
    """``(SR, skewness, kurtosis, T)`` of a return series: SR per period with ``ddof=1`` std (as
    :func:`fintune.backtest.metrics.sharpe_ratio`), skewness and (non-excess) kurtosis from the biased sample
    moments ``m_k = mean((r - mean)^k)`` as in the papers' code: ``g3 = m3 / m2^1.5``, ``g4 = m4 / m2^2``."""
    import numpy as np

    r = np.asarray(returns, dtype="float64")
    n = int(r.size)
    if n < 3:
        return math.nan, math.nan, math.nan, n
    d = r - r.mean()
    m2 = float(np.mean(d ** 2))
    sd = float(np.std(r, ddof=1))
    if m2 <= 0 or sd <= 0:
        return math.nan, math.nan, math.nan, n
    return float(r.mean() / sd), float(np.mean(d ** 3) / m2 ** 1.5), float(np.mean(d ** 4) / m2 ** 2), n


def _sr_var_term(sr: float, skew: float, kurt: float) -> float:
    return 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr ** 2


def sharpe_standard_error(sr: float, n_obs: int, skew: float = 0.0, kurt: float = 3.0) -> float:
    """``sigma(SR) = sqrt((1 - g3*SR + (g4-1)/4*SR^2) / (T-1))`` (per-period SR, non-excess kurtosis)."""
    term = _sr_var_term(sr, skew, kurt)
    if n_obs < 2 or not term > 0:
        return math.nan
    return math.sqrt(term / (n_obs - 1))


def probabilistic_sharpe_ratio(sr: float, n_obs: int, skew: float = 0.0, kurt: float = 3.0,
                               benchmark: float = 0.0) -> float:
    """``PSR(SR*) = Z[(SR - SR*) * sqrt(T-1) / sqrt(1 - g3*SR + (g4-1)/4*SR^2)]``; all Sharpes per period."""
    se = sharpe_standard_error(sr, n_obs, skew, kurt)
    if not (math.isfinite(se) and math.isfinite(sr) and math.isfinite(benchmark)) or se == 0:
        return math.nan
    return _N.cdf((sr - benchmark) / se)


def min_track_record_length(sr: float, skew: float = 0.0, kurt: float = 3.0, benchmark: float = 0.0,
                            confidence: float = 0.95) -> float:
    """``MinTRL = 1 + (1 - g3*SR + (g4-1)/4*SR^2) * (Z^-1[confidence] / (SR - SR*))^2`` periods; infinite when
    ``SR <= SR*`` (no record is long enough to show an edge the estimate does not have)."""
    if not math.isfinite(sr) or sr <= benchmark:
        return math.inf
    return 1.0 + _sr_var_term(sr, skew, kurt) * (_N.inv_cdf(confidence) / (sr - benchmark)) ** 2


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """``SR0 = sqrt(V) * ((1-gamma) Z^-1[1 - 1/N] + gamma Z^-1[1 - 1/(N e)])``; 0 for a single trial."""
    if n_trials < 1:
        raise ValueError("n_trials must be >= 1")
    if n_trials == 1:
        return 0.0
    if not (math.isfinite(sr_variance) and sr_variance >= 0):
        return math.nan
    z = (1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n_trials) + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n_trials * math.e))
    return math.sqrt(sr_variance) * z


def deflated_sharpe_ratio(sr: float, n_obs: int, n_trials: int, sr_variance: float, skew: float = 0.0,
                          kurt: float = 3.0) -> float:
    """``DSR = PSR(SR0)`` with ``SR0 = expected_max_sharpe(n_trials, sr_variance)`` (per-period Sharpes)."""
    return probabilistic_sharpe_ratio(sr, n_obs, skew, kurt, expected_max_sharpe(n_trials, sr_variance))


@dataclass
class SharpeStatistics:
    """The multiple-testing-aware summary of one return series, as written into metrics.json.

    Attributes:
        sharpe_per_period / sharpe_annual: observed SR (per bar, and x sqrt(A)).
        skewness / kurtosis: of the bar returns (kurtosis non-excess).
        n_obs: bars.
        psr: ``PSR(0)``, probability the true SR > 0 (one trial).
        n_trials / trial_sharpe_variance: trials in the ledger and the variance of their per-bar Sharpes.
        sr0_per_period / sr0_annual: expected best Sharpe of ``n_trials`` skill-less trials.
        dsr: ``PSR(SR0)``.
        min_track_record_bars / min_track_record_years: bars (years) needed for PSR(0) >= 0.95 at this SR.
    """

    sharpe_per_period: float
    sharpe_annual: float
    skewness: float
    kurtosis: float
    n_obs: int
    psr: float
    n_trials: int
    trial_sharpe_variance: float
    sr0_per_period: float
    sr0_annual: float
    dsr: float
    min_track_record_bars: float
    min_track_record_years: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite numbers become None)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def sharpe_statistics(returns: Any, trial_sharpes: list[float] | None = None, periods: int = 252) -> SharpeStatistics:
    """PSR, DSR and MinTRL of ``returns``; ``trial_sharpes`` = the per-period Sharpes of every trial in the ledger
    (this one included). Fewer than 2 trials: ``n_trials = 1``, ``SR0 = 0``, ``DSR = PSR``."""
    import numpy as np

    sr, skew, kurt, n = return_moments(returns)
    trials = [t for t in (trial_sharpes or []) if t is not None and math.isfinite(t)]
    n_trials = max(1, len(trials))
    var = float(np.var(trials, ddof=1)) if len(trials) >= 2 else 0.0
    sr0 = expected_max_sharpe(n_trials, var)
    psr = probabilistic_sharpe_ratio(sr, n, skew, kurt)
    mintrl = min_track_record_length(sr, skew, kurt)
    return SharpeStatistics(
        sharpe_per_period=sr, sharpe_annual=sr * math.sqrt(periods), skewness=skew, kurtosis=kurt, n_obs=n,
        psr=psr, n_trials=n_trials, trial_sharpe_variance=var, sr0_per_period=sr0,
        sr0_annual=sr0 * math.sqrt(periods), dsr=probabilistic_sharpe_ratio(sr, n, skew, kurt, sr0),
        min_track_record_bars=mintrl, min_track_record_years=mintrl / periods)
