"""Costs that scale with size: a square-root market-impact model from the price files' volume, and capacity.

For a book of ``B`` dollars, the trade in ticker ``i`` on bar ``b`` is ``B * |dW[b,i]|`` dollars. With point-in-time
liquidity estimates from the previous ``window`` bars (never the same bar):

* ``ADV[b,i]`` = mean dollar volume (``close * volume``) and ``sigma[b,i]`` = std of close-to-close returns;
* participation ``p = B * |dW| / ADV``;
* impact cost as a fraction of traded value (the square-root law, e.g. Almgren et al. 2005, Toth et al. 2011)::

      cost = k * sigma * sqrt(p)

  so the bar's cost as a fraction of equity is ``sum_i k * sigma * sqrt(B / ADV) * |dW|^1.5`` = ``c[b] * sqrt(B)``.

Capacity (the book at which costs eat the edge): with ``g`` the mean bar return before impact and
``C = mean_b c[b]``, the mean impact cost is ``C * sqrt(B)``; it equals the edge at ``B* = (g / C)^2`` (0 when
``g <= 0``). Separately, ``capacity_volume_cap`` is the largest book at which no trade exceeds ``max_volume_share``
of its ADV (``min over trades of cap * ADV / |dW|``). Trades with no volume data (zero / missing volume or too
little history) cannot be priced: they are counted, never assumed free or capped silently.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from fintune.backtest.metrics import sharpe_ratio
from fintune.errors import FintuneError


@dataclass
class ImpactModel:
    """Square-root impact settings.

    Attributes:
        book_size: dollars of equity the weights apply to.
        coef: ``k`` in ``k * sigma * sqrt(participation)`` (order 1 in the empirical literature).
        max_volume_share: participation cap per trade (share of ADV); trades above it are counted as breaches.
        window: bars of history for ADV and sigma.
    """

    book_size: float = 1_000_000.0
    coef: float = 1.0
    max_volume_share: float = 0.1
    window: int = 20

    def __post_init__(self) -> None:
        for name, ok in (("book_size", self.book_size > 0 and math.isfinite(self.book_size)),
                         ("coef", self.coef >= 0 and math.isfinite(self.coef)),
                         ("max_volume_share", 0 < self.max_volume_share <= 1),
                         ("window", isinstance(self.window, int) and self.window >= 2)):
            if not ok:
                raise FintuneError(f"impact model: invalid {name} {getattr(self, name)!r}",
                                   "book size > 0, coef >= 0, 0 < max volume share <= 1, window >= 2")


def liquidity(panel: dict[str, Any], window: int = 20) -> tuple[Any, Any]:
    """Point-in-time ``(ADV, sigma)`` frames (bar x ticker) from the previous ``window`` real bars."""
    import numpy as np

    close = panel["adj_close"]
    dv = panel["dollar_volume"].where(panel["dollar_volume"] > 0)
    adv = dv.rolling(window, min_periods=window).mean().shift(1)
    ret = close.pct_change(fill_method=None)
    sigma = ret.rolling(window, min_periods=window).std().shift(1)
    return adv.replace(0, np.nan), sigma


def impact_report(returns: Any, weights: Any, panel: dict[str, Any], model: ImpactModel,
                  periods: int = 252) -> tuple[Any, dict[str, Any]]:
    """Impact costs of a backtest's weights at ``model.book_size``; returns ``(net_returns, summary)``.

    ``net_returns[b] = (1 + returns[b]) * (1 - c[b] * sqrt(B)) - 1``. The summary has the mean cost in bps per bar,
    breaches of the volume cap, unpriced trades, and both capacities (see module doc).
    """
    import numpy as np
    import pandas as pd

    adv, sigma = liquidity(panel, model.window)
    adv = adv.reindex(index=weights.index, columns=weights.columns).to_numpy()
    sigma = sigma.reindex(index=weights.index, columns=weights.columns).to_numpy()
    w = weights.to_numpy()
    dw = np.abs(np.diff(np.vstack([np.zeros((1, w.shape[1])), w]), axis=0))
    traded = dw > 0
    priced = traded & np.isfinite(adv) & np.isfinite(sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        c_cell = np.where(priced, model.coef * sigma * dw ** 1.5 / np.sqrt(adv), 0.0)
        max_book = np.where(priced, model.max_volume_share * adv / dw, np.inf)
    c = c_cell.sum(axis=1)
    cost = np.minimum(c * math.sqrt(model.book_size), 1.0)
    r = np.asarray(returns, dtype="float64")
    net = pd.Series((1 + r) * (1 - cost) - 1, index=returns.index, name="strategy")
    edge, c_mean = float(r.mean()) if r.size else math.nan, float(c.mean()) if c.size else math.nan
    capacity = (edge / c_mean) ** 2 if c_mean > 0 and edge > 0 else (0.0 if edge <= 0 else math.inf)
    breaches = int((priced & (model.book_size * dw > model.max_volume_share * adv)).sum())
    summary = {
        **asdict(model),
        "impact_cost_bps_per_bar": float(cost.mean() * 1e4) if cost.size else None,
        "sharpe_after_impact": sharpe_ratio(net, periods),
        "total_return_after_impact": float(np.prod(1 + net.to_numpy()) - 1) if len(net) else None,
        "trades": int(traded.sum()), "unpriced_trades": int((traded & ~priced).sum()),
        "volume_cap_breaches": breaches,
        "capacity_usd": capacity,
        "capacity_volume_cap_usd": float(max_book.min()) if priced.any() else None,
    }
    return net, {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}
