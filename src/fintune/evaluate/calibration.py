"""Calibration: ECE (15 equal-width bins), Brier, NLL, temperature scaling, accuracy vs coverage.

Probabilities are the softmax of the labels' sequence log-probabilities (score mode). Temperature ``T`` is fitted
on the validation split by minimising NLL of ``softmax(logits / T)`` and then applied to the test split, but only
when it does no harm (:func:`choose_temperature`): the validation split has at least
:data:`MIN_VALIDATION_FOR_TEMPERATURE` labelled rows and a temperature fitted on one half of it lowers the NLL of the
other half (2-fold cross-fitting, both directions summed). Otherwise the raw probabilities are kept (``T = 1``) and
the reason is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fintune.errors import FintuneError
from fintune.predict.rows import softmax_rows


def _bin_index(conf: Any, n_bins: int) -> Any:
    """Bin k holds confidences in ``(edges[k], edges[k+1]]`` (the first bin also holds 0)."""
    import numpy as np

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted on the inner edges avoids float error of ceil(c * n_bins) at exact edges such as 0.2
    return np.searchsorted(edges[1:-1], conf, side="left")


def expected_calibration_error(confidences: Any, correct: Any, n_bins: int = 15) -> float:
    """ECE: sum over equal-width confidence bins of ``|bin| / n * |accuracy(bin) - mean confidence(bin)|``.

    Bins are ``(lo, hi]`` (the first also takes 0), the convention of Guo et al. 2017 and torchmetrics.
    """
    import numpy as np

    conf = np.asarray(confidences, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        raise FintuneError("ECE: no predictions")
    bins = _bin_index(conf, n_bins)
    ece = 0.0
    for k in range(n_bins):
        sel = bins == k
        if sel.any():
            ece += sel.mean() * abs(hit[sel].mean() - conf[sel].mean())
    return float(ece)


def reliability_bins(confidences: Any, correct: Any, n_bins: int = 15) -> list[dict[str, float]]:
    """Per-bin count, mean confidence and accuracy (for the reliability diagram)."""
    import numpy as np

    conf = np.asarray(confidences, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    bins = _bin_index(conf, n_bins)
    out = []
    for k in range(n_bins):
        sel = bins == k
        out.append({"lo": k / n_bins, "hi": (k + 1) / n_bins, "count": int(sel.sum()),
                    "confidence": float(conf[sel].mean()) if sel.any() else None,
                    "accuracy": float(hit[sel].mean()) if sel.any() else None})
    return out


def brier_score(probs: Any, gold_idx: Any) -> float:
    """Multi-class Brier score: mean over examples of the squared distance to the one-hot gold vector."""
    import numpy as np

    p = np.asarray(probs, dtype=np.float64)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(p)), np.asarray(gold_idx)] = 1.0
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def negative_log_likelihood(probs: Any, gold_idx: Any) -> float:
    """Mean ``-log p(gold)`` (probabilities clipped at 1e-12)."""
    import numpy as np

    p = np.asarray(probs, dtype=np.float64)
    return float(-np.log(np.clip(p[np.arange(len(p)), np.asarray(gold_idx)], 1e-12, None)).mean())


def fit_temperature(logits: Any, gold_idx: Any, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature minimising validation NLL of ``softmax(logits / T)`` (bounded 1-D search on log T)."""
    import numpy as np
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    if len(z) == 0:
        raise FintuneError("temperature scaling: no validation examples")

    def nll(log_t: float) -> float:
        return negative_log_likelihood(softmax_rows(z, float(np.exp(log_t))), gold_idx)

    res = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-5})
    return float(np.exp(res.x))


def accuracy_coverage(confidences: Any, correct: Any, points: int = 20) -> list[dict[str, float]]:
    """Accuracy on the most confident fraction of examples, abstaining on the rest, for coverages 1/points..1."""
    import numpy as np

    conf = np.asarray(confidences, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    order = np.argsort(-conf, kind="stable")
    out = []
    for k in range(1, points + 1):
        cov = k / points
        keep = max(1, round(cov * len(conf)))
        out.append({"coverage": cov, "n": keep, "accuracy": float(hit[order[:keep]].mean()),
                    "min_confidence": float(conf[order[keep - 1]])})
    return out


def calibration_metrics(probs: Any, gold: Sequence[str], labels: Sequence[str], n_bins: int = 15) -> dict[str, Any]:
    """ECE, Brier, NLL, reliability bins and the accuracy-vs-coverage curve of label probabilities.

    Args:
        probs: ``[n, len(labels)]`` probabilities (rows sum to 1).
        gold: gold labels.
        labels: column order of ``probs``.
    """
    import numpy as np

    index = {lab: i for i, lab in enumerate(labels)}
    gold_idx = np.array([index[g] for g in gold])
    p = np.asarray(probs, dtype=np.float64)
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == gold_idx
    return {
        "ece": expected_calibration_error(conf, correct, n_bins),
        "ece_bins": n_bins,
        "brier": brier_score(p, gold_idx),
        "nll": negative_log_likelihood(p, gold_idx),
        "reliability": reliability_bins(conf, correct, n_bins),
        "accuracy_vs_coverage": accuracy_coverage(conf, correct),
    }


MIN_VALIDATION_FOR_TEMPERATURE = 100
"""Fewest labelled validation rows for which temperature scaling is considered (each cross-fitting half then has
>= 50). Below it a one-parameter fit is too noisy to trust: on FiQA, T fitted on 88 rows worsened the test ECE
from 0.055 to 0.119."""


@dataclass(frozen=True)
class TemperatureChoice:
    """Whether temperature scaling is applied, with what ``temperature`` (1.0 when not), and why.

    ``nll_raw_cv`` / ``nll_scaled_cv``: held-out validation NLL (mean over both halves) with raw probabilities and
    with the temperature fitted on the other half; ``fitted_temperature``: the fit on the whole validation split
    (``None`` when the split was too small to try).
    """

    temperature: float
    applied: bool
    reason: str
    n_validation: int
    min_validation: int
    fitted_temperature: float | None = None
    nll_raw_cv: float | None = None
    nll_scaled_cv: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The eval's ``calibration`` block: these fields plus ``fitted_on`` and ``note`` (= ``reason``)."""
        return {**asdict(self), "fitted_on": "validation" if self.applied else None, "note": self.reason}


def choose_temperature(logits: Any, gold_idx: Any,
                       min_validation: int = MIN_VALIDATION_FOR_TEMPERATURE) -> TemperatureChoice:
    """Temperature scaling only when it does no harm (see the module docstring); returns the decision.

    Args:
        logits: ``[n, k]`` validation label scores (log-probabilities).
        gold_idx: gold label column per validation row.
        min_validation: fewest rows to consider scaling at all.
    """
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)
    gold = np.asarray(gold_idx)
    n = len(z)
    if n < min_validation:
        return TemperatureChoice(1.0, False, f"raw probabilities kept: the validation split has {n} labelled rows, "
                                             f"fewer than the {min_validation} a temperature fit needs", n,
                                 min_validation)
    order = np.random.default_rng(0).permutation(n)
    halves = (order[: n // 2], order[n // 2:])
    raw = scaled = 0.0
    for fit_on, test_on in (halves, halves[::-1]):
        t = fit_temperature(z[fit_on], gold[fit_on])
        raw += negative_log_likelihood(softmax_rows(z[test_on], 1.0), gold[test_on]) * len(test_on) / n
        scaled += negative_log_likelihood(softmax_rows(z[test_on], t), gold[test_on]) * len(test_on) / n
    fitted = fit_temperature(z, gold)
    if scaled < raw:
        return TemperatureChoice(fitted, True, f"temperature {fitted:.3f} applied: it lowers held-out validation NLL "
                                               f"{raw:.4f} -> {scaled:.4f} (2-fold cross-fitting on {n} rows)",
                                 n, min_validation, fitted, raw, scaled)
    return TemperatureChoice(1.0, False, f"raw probabilities kept: a fitted temperature does not lower held-out "
                                         f"validation NLL ({raw:.4f} raw vs {scaled:.4f} scaled, {n} rows)",
                             n, min_validation, fitted, raw, scaled)
