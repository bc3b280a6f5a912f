"""Purging and embargo (Lopez de Prado, "Advances in Financial Machine Learning", ch. 7), for retrain-per-window.

A training sample ``i`` is known at ``t0_i`` and its label is resolved at ``t1_i`` (e.g. a weekly forecaster
example: prompt information ends at ``asof``, label = the following week's move, resolved ``label_bars`` later).
Training on a sample whose label interval ``[t0_i, t1_i]`` overlaps a test window leaks the test outcome into
the model. So, in bar positions on the trading calendar:

* **purge**: drop from training every sample with ``[t0_i, t1_i]`` intersecting a test range ``[a, b]``;
* **embargo**: also drop samples with ``t0_i`` in ``(b, b + embargo]`` (features right after a test window are
  serially correlated with it). In walk-forward every training range precedes its test range, so only the purge
  bites; the embargo matters for combinatorial purged CV, where training data also follows test folds.

:func:`cpcv_splits` is combinatorial purged CV on one observation per bar with the exact conventions of skfolio's
``CombinatorialPurgedCV`` (``purged_size`` bars removed on both sides of each test block, ``embargo_size`` more
after it); :func:`cpcv_splits_skfolio` delegates to skfolio when it is installed (optional extra ``[cv]``), and a
test checks the two agree. :func:`assert_no_leak` is the guard: any training sample whose label crosses into a test
range (or its embargo) raises a one-line error naming it.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from fintune.errors import FintuneError


def purged_train_mask(t0: Any, t1: Any, test_ranges: list[tuple[int, int]], embargo: int = 0) -> Any:
    """Boolean mask over samples: True = may train. ``t0``/``t1``: bar positions (known / label resolved);
    ``test_ranges``: inclusive ``(a, b)`` bar positions; a sample is dropped when ``[t0, t1]`` meets a test
    range or ``t0`` falls in its embargo ``(b, b + embargo]``. Samples inside a test range are dropped too."""
    import numpy as np

    t0, t1 = np.asarray(t0), np.asarray(t1)
    if (t1 < t0).any():
        i = int(np.flatnonzero(t1 < t0)[0])
        raise FintuneError(f"sample {i}: label end {t1[i]} is before its start {t0[i]}")
    keep = np.ones(t0.shape, dtype=bool)
    for a, b in test_ranges:
        overlaps = (t0 <= b) & (t1 >= a)
        embargoed = (t0 > b) & (t0 <= b + embargo)
        keep &= ~(overlaps | embargoed)
    return keep


def assert_no_leak(t0: Any, t1: Any, train_idx: Any, test_ranges: list[tuple[int, int]], embargo: int = 0,
                   names: list[str] | None = None) -> None:
    """Raise if any training sample's label interval crosses into a test range or its embargo."""
    import numpy as np

    ok = purged_train_mask(t0, t1, test_ranges, embargo)
    train_idx = np.asarray(train_idx, dtype=int)
    bad = train_idx[~ok[train_idx]]
    if bad.size:
        i = int(bad[0])
        who = names[i] if names else f"sample {i}"
        raise FintuneError(f"{who}: training label interval [{int(np.asarray(t0)[i])}, {int(np.asarray(t1)[i])}] "
                           f"crosses a test range or its embargo {test_ranges} ({bad.size} such samples)",
                           "purge them (fintune.backtest.purged.purged_train_mask) before training")


def walk_forward_purged_splits(t0: Any, t1: Any, windows: list[tuple[int, int, int, int]],
                               embargo: int = 0) -> list[tuple[Any, Any]]:
    """``(train_idx, test_idx)`` per walk-forward window ``(train_start, train_end, test_start, test_end)`` (bar
    positions): train = samples known inside the train range whose labels are resolved before the test range;
    test = samples known inside the test range."""
    import numpy as np

    t0, t1 = np.asarray(t0), np.asarray(t1)
    out = []
    for tr0, tr1, a, b in windows:
        in_train = (t0 >= tr0) & (t0 <= tr1) & purged_train_mask(t0, t1, [(a, b)], embargo)
        out.append((np.flatnonzero(in_train), np.flatnonzero((t0 >= a) & (t0 <= b))))
    return out


def _folds(n_obs: int, n_folds: int) -> Any:
    import numpy as np

    size = n_obs // n_folds
    return np.minimum(np.arange(n_obs) // size, n_folds - 1)


def cpcv_splits(n_obs: int, n_folds: int = 6, n_test_folds: int = 2, purged_size: int = 0,
                embargo_size: int = 0) -> list[tuple[Any, Any]]:
    """Combinatorial purged CV on ``n_obs`` consecutive bars: ``(train_idx, test_idx)`` for every choice of
    ``n_test_folds`` of ``n_folds`` folds (skfolio's conventions, see module doc)."""
    import numpy as np

    if n_folds < 3 or not 2 <= n_test_folds < n_folds:
        raise FintuneError(f"cpcv: need n_folds >= 3 and 2 <= n_test_folds < n_folds (got {n_folds}, {n_test_folds})")
    if purged_size + embargo_size >= n_obs // n_folds - 1:
        raise FintuneError(f"cpcv: purge + embargo ({purged_size}+{embargo_size}) must be smaller than a fold "
                           f"({n_obs // n_folds} bars)", "use fewer folds or a shorter purge")
    fold = _folds(n_obs, n_folds)
    out = []
    for test_folds in combinations(range(n_folds), n_test_folds):
        is_test = np.isin(fold, test_folds)
        drop = is_test.copy()
        starts = np.flatnonzero(is_test[1:] & ~is_test[:-1]) + 1  # first bar of each test block (not bar 0)
        ends = np.flatnonzero(is_test[:-1] & ~is_test[1:])  # last bar of each test block (not the last bar)
        for s in starts:
            drop[max(0, s - purged_size):s] = True
        for e in ends:
            drop[e + 1:min(n_obs, e + 1 + purged_size + embargo_size)] = True
        out.append((np.flatnonzero(~drop), np.flatnonzero(is_test)))
    return out


def cpcv_splits_skfolio(n_obs: int, n_folds: int = 6, n_test_folds: int = 2, purged_size: int = 0,
                        embargo_size: int = 0) -> list[tuple[Any, Any]]:
    """The same splits from ``skfolio.model_selection.CombinatorialPurgedCV`` (needs ``pip install skfolio``)."""
    import numpy as np

    try:
        from skfolio.model_selection import CombinatorialPurgedCV
    except ImportError:
        raise FintuneError("combinatorial purged CV via skfolio needs skfolio",
                           "pip install 'fintune[cv]' (or use cpcv_splits, the built-in equivalent)") from None
    cv = CombinatorialPurgedCV(n_folds=n_folds, n_test_folds=n_test_folds, purged_size=purged_size,
                               embargo_size=embargo_size)
    return [(np.asarray(train), np.sort(np.concatenate(tests)))
            for train, tests in cv.split(np.zeros((n_obs, 1)))]
