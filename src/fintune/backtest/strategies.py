"""From Prediction records to point-in-time scores, and the strategy settings that turn scores into positions.

Score of one prediction, in [-1, 1]:

* with ``probabilities``: ``p_pos - p_neg`` where p_pos sums the bullish labels (``positive``, ``U1``..``U5+``) and
  p_neg the bearish ones (``negative``, ``D1``..``D5+``); other labels (``neutral``) count for neither;
* else from ``label``: bullish ``+c``, bearish ``-c``, other ``0`` with ``c = confidence`` (1 when unknown);
* label ``invalid`` (an unparsable model output) is no signal and is counted, never guessed.

Never guess: a label that is none of bullish, bearish or neutral (``neutral``, ``flat``, ``hold``) - e.g. ``pos``,
``Positive.``, ``banana`` - or a probability key that is not one of those labels (``"Positive "`` with its space),
or probabilities outside [0, 1] / not summing to 1 (within :data:`PROB_SUM_TOLERANCE`) make the prediction
*unreadable*: it is no signal, counted (``unknown_label``, ``bad_probabilities``) and, when unreadable predictions
exceed ``max_invalid_rate`` of all predictions (default 0: any), the backtest fails with a one-line error naming the
first one. It is never mapped to neutral.

Point in time (the look-ahead guard): an item's *signal day* is its date when that is a trading day and the item
is not timestamped at or after the close (16:00 exchange time); otherwise the next trading day (weekends, holidays
and after-close items roll forward). The engine trades a signal at the bar *after* its signal day. Date-only items
are taken as known at that day's close. Naive timestamps are exchange-local; ones with an offset are converted to
``exchange_tz``.

A prediction whose ``asof`` is set (a weekly forecaster prediction: the date its prompt's information
ends, the close before the predicted week) is placed at that date instead of ``date`` (the predicted week's first
day), so it trades at the predicted week's first open; ``asof`` after ``date`` is refused as look-ahead.

Several items for one (ticker, signal day) aggregate to one score: ``mean`` (mean score) or ``count`` (net vote
``(n_bull - n_bear) / n``, so a day of 3 bullish and 1 neutral item scores 0.75 whatever their probabilities).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from fintune.errors import FintuneError
from fintune.records import INVALID, Prediction

BULLISH = re.compile(r"^(positive|bullish|up|u\d\+?)$", re.IGNORECASE)
BEARISH = re.compile(r"^(negative|bearish|down|d\d\+?)$", re.IGNORECASE)
NEUTRAL = re.compile(r"^(neutral|flat|hold)$", re.IGNORECASE)
PROB_SUM_TOLERANCE = 1e-3
"""|sum of probabilities - 1| above this makes a prediction unreadable."""


def _direction(label: str) -> int | None:
    """+1 bullish, -1 bearish, 0 neutral, None for a label the backtest does not know."""
    return 1 if BULLISH.match(label) else -1 if BEARISH.match(label) else 0 if NEUTRAL.match(label) else None


def unreadable_reason(pred: Prediction) -> str | None:
    """Why the backtest cannot read a (non-``invalid``) prediction, naming the field; None when it can."""
    import math

    if _direction(pred.label) is None:
        return f"field 'label' {pred.label!r} is not a known label (bullish, bearish or neutral)"
    if pred.probabilities:
        for k, v in pred.probabilities.items():
            if _direction(k) is None:
                return f"field 'probabilities' has unknown key {k!r}"
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v <= 1.0):
                return f"field 'probabilities.{k}' is {v!r}, not in [0, 1]"
        total = sum(pred.probabilities.values())
        if abs(total - 1.0) > PROB_SUM_TOLERANCE:
            return f"field 'probabilities' sums to {total:.6g}, not 1"
    if pred.confidence is not None and not 0.0 <= pred.confidence <= 1.0:
        return f"field 'confidence' is {pred.confidence!r}, not in [0, 1]"
    return None


@dataclass
class StrategyConfig:
    """How scores become positions and what trading costs.

    Attributes:
        mode: ``long_only`` (short signals go flat) or ``long_short``.
        sizing: ``equal`` (each position +-1 unit) or ``confidence`` (unit scaled by ``|score|``).
        threshold: go long when score > threshold, short (long_short) when score < -threshold, else flat.
        holding_days: a signal holds its position for this many bars unless a newer signal replaces it.
        aggregate: ``mean`` or ``count`` for several items on one (ticker, signal day).
        fill: ``next_open`` (trade at the open of the bar after the signal day; default) or ``next_close``
            (trade at that bar's close, i.e. earn close-to-close returns from the following bar on).
        weighting: ``active`` (units divided by the number of open positions that bar, gross exposure <= 1) or
            ``universe`` (units divided by the number of tickers, a fixed 1/N sleeve each).
        demean: subtract each signal day's cross-sectional mean score (over the tickers with a signal that day)
            before the threshold, so a long_short book is long the above-average and short the below-average names
            (market-neutral by count) even when a model's scores all lean one way.
        commission_bps / slippage_bps: costs in basis points of traded value (turnover), paid at each fill.
        exchange_tz / close_time: where and when the market closes, for after-close roll-forward.
    """

    mode: Literal["long_only", "long_short"] = "long_only"
    sizing: Literal["equal", "confidence"] = "equal"
    threshold: float = 0.0
    holding_days: int = 1
    aggregate: Literal["mean", "count"] = "mean"
    fill: Literal["next_open", "next_close"] = "next_open"
    weighting: Literal["active", "universe"] = "active"
    demean: bool = False
    commission_bps: float = 0.0
    slippage_bps: float = 0.0
    exchange_tz: str = "America/New_York"
    close_time: str = "16:00"

    def __post_init__(self) -> None:
        checks = [
            (self.mode in ("long_only", "long_short"), "mode", "long_only or long_short"),
            (self.sizing in ("equal", "confidence"), "sizing", "equal or confidence"),
            (self.aggregate in ("mean", "count"), "aggregate", "mean or count"),
            (self.fill in ("next_open", "next_close"), "fill", "next_open or next_close"),
            (self.weighting in ("active", "universe"), "weighting", "active or universe"),
            (isinstance(self.demean, bool), "demean", "true or false"),
            (isinstance(self.holding_days, int) and self.holding_days >= 1, "holding_days", "an integer >= 1"),
            (0.0 <= self.threshold < 1.0, "threshold", "a number in [0, 1)"),
            (self.commission_bps >= 0 and self.slippage_bps >= 0, "commission_bps/slippage_bps", ">= 0"),
            (bool(re.fullmatch(r"\d{1,2}:\d{2}", self.close_time)), "close_time", "HH:MM"),
        ]
        for ok, name, allowed in checks:
            if not ok:
                raise FintuneError(f"strategy: invalid {name} {getattr(self, name.split('/')[0])!r}",
                                   f"use {allowed}")

    @property
    def cost_rate(self) -> float:
        """Total cost per unit of turnover (commission + slippage), as a fraction."""
        return (self.commission_bps + self.slippage_bps) / 1e4

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def prediction_score(pred: Prediction) -> tuple[float | None, int]:
    """Score in [-1, 1] and direction vote (+1/-1/0) of one prediction; ``(None, 0)`` for ``invalid`` and for
    an unreadable one (see :func:`unreadable_reason`)."""
    if pred.label == INVALID or unreadable_reason(pred) is not None:
        return None, 0
    if pred.probabilities:
        p_pos = sum(p for k, p in pred.probabilities.items() if BULLISH.match(k))
        p_neg = sum(p for k, p in pred.probabilities.items() if BEARISH.match(k))
        score = p_pos - p_neg
    else:
        c = 1.0 if pred.confidence is None else pred.confidence
        score = c * (_direction(pred.label) or 0)
    vote = _direction(pred.label) or 0
    return max(-1.0, min(1.0, score)), vote


def signal_date(pred: Prediction) -> str:
    """The date a prediction is known: ``asof`` when given (never after ``date``), else ``date``."""
    asof = pred.asof
    if not asof:
        return str(pred.date)
    if str(asof)[:10] > str(pred.date)[:10]:
        raise FintuneError(f"prediction '{pred.id}': asof {asof!r} is after its date {pred.date!r}",
                           "asof is when the prediction's information ends; it cannot follow the predicted period")
    return str(asof)


def _signal_days(dates: list[str], ids: list[str], tickers: list[str], calendar: Any, cfg: StrategyConfig,
                 available: Any = None) -> Any:
    """Positions on ``calendar`` of each item's signal day (``len(calendar)`` when past the end).

    With ``available`` (bar x ticker booleans) each ticker rolls forward on its own bars, so a bar missing for
    one ticker is a non-trading day for that ticker only.
    """
    import numpy as np
    import pandas as pd

    stamps = []
    for d, pid in zip(dates, ids, strict=True):
        try:
            ts = pd.Timestamp(d)
        except (ValueError, TypeError):
            raise FintuneError(f"prediction '{pid}': field 'date' {d!r} is not a date or timestamp",
                               "use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS") from None
        if ts.tzinfo is not None:
            ts = ts.tz_convert(cfg.exchange_tz).tz_localize(None)
        stamps.append(ts)
    ts = pd.DatetimeIndex(stamps)
    day = ts.normalize()
    hh, mm = (int(x) for x in cfg.close_time.split(":"))
    has_time = ts != day
    after_close = has_time & ((ts.hour * 60 + ts.minute) >= hh * 60 + mm)
    # first trading day >= day, or > day when the item arrived after that day's close
    days = day.to_numpy()
    after_close = np.asarray(after_close)
    if available is None:
        cal = calendar.to_numpy()
        pos = np.searchsorted(cal, days, side="left")
        return np.where(after_close, np.searchsorted(cal, days, side="right"), pos)
    pos = np.full(len(days), len(calendar))
    tick = np.asarray(tickers)
    for t in np.unique(tick):
        rows = np.flatnonzero(tick == t)
        own = np.flatnonzero(available[t].to_numpy())
        cal = calendar.to_numpy()[own]
        k = np.where(after_close[rows], np.searchsorted(cal, days[rows], side="right"),
                     np.searchsorted(cal, days[rows], side="left"))
        ok = (k < len(own)) & (days[rows] >= cal[0]) if len(own) else np.zeros(len(rows), dtype=bool)
        pos[rows] = np.where(ok, own[np.minimum(k, max(len(own) - 1, 0))] if len(own) else 0, len(calendar))
    return pos


def predictions_to_scores(predictions: list[Prediction], calendar: Any, cfg: StrategyConfig,
                          tickers: list[str] | None = None, available: Any = None,
                          max_invalid_rate: float = 0.0, source: str = "predictions") -> tuple[Any, dict[str, Any]]:
    """Aggregate predictions into a (signal day x ticker) score frame on ``calendar``.

    Args:
        predictions: Prediction records; each needs ``ticker`` and ``date`` (else an error naming the id).
        calendar: sorted ``DatetimeIndex`` of trading days (the union price calendar).
        cfg: strategy settings (aggregation, close time, time zone).
        tickers: the tickers with prices; predictions for others are an error.
        available: optional (bar x ticker) booleans of real bars (``price_panel(...)["available"]``): each ticker
            then rolls to its own next bar, and items after a ticker's last bar count as outside the range.
        max_invalid_rate: share of unreadable predictions (unknown label or probability key, bad probabilities)
            tolerated, counted and reported; above it a one-line error names ``source`` and the first one.

    Returns:
        ``(scores, counts)``: ``scores`` is a DataFrame indexed by ``calendar`` with one column per ticker, NaN
        where there is no signal; ``counts`` says how many items were used, invalid, outside the price range
        and aggregated.
    """
    import numpy as np
    import pandas as pd

    if not 0.0 <= max_invalid_rate <= 1.0:
        raise FintuneError(f"max_invalid_rate {max_invalid_rate!r} is not in [0, 1]", "e.g. --max-invalid-rate 0.01")
    counts = {"predictions": len(predictions), "invalid": 0, "unknown_label": 0, "bad_probabilities": 0,
              "outside_price_range": 0, "used": 0, "signal_cells": 0, "aggregated_items": 0, "rolled_forward": 0}
    first_bad: tuple[str, str] | None = None
    known = set(tickers) if tickers is not None else None
    rows_t, rows_d, rows_id, rows_s, rows_v = [], [], [], [], []
    for p in predictions:
        if not p.ticker or not p.date:
            missing = "ticker" if not p.ticker else "date"
            raise FintuneError(f"prediction '{p.id}': missing field '{missing}'",
                               "a backtest needs each prediction's ticker and date (copy them from the Example)")
        t = p.ticker.strip().upper()
        if known is not None and t not in known:
            raise FintuneError(f"prediction '{p.id}': no prices for ticker '{t}'",
                               "add its prices or drop its predictions")
        reason = None if p.label == INVALID else unreadable_reason(p)
        if reason is not None:
            counts["unknown_label" if "label" in reason or "unknown key" in reason else "bad_probabilities"] += 1
            first_bad = first_bad or (p.id, reason)
            continue
        score, vote = prediction_score(p)
        if score is None:
            counts["invalid"] += 1
            continue
        rows_t.append(t)
        rows_d.append(signal_date(p))
        rows_id.append(p.id)
        rows_s.append(score)
        rows_v.append(vote)
    unreadable = counts["unknown_label"] + counts["bad_probabilities"]
    if first_bad and unreadable > max_invalid_rate * len(predictions):
        raise FintuneError(f"{source}: prediction '{first_bad[0]}': {first_bad[1]} ({unreadable} of "
                           f"{len(predictions)} predictions unreadable, max_invalid_rate {max_invalid_rate})",
                           "fix the labels (never mapped to neutral) or tolerate a share with --max-invalid-rate")
    empty = pd.DataFrame(np.nan, index=calendar, columns=sorted(known) if known else [])
    if not rows_t:
        return empty, counts
    pos = _signal_days(rows_d, rows_id, rows_t, calendar, cfg, available)
    first = pd.DatetimeIndex(pd.to_datetime([d[:10] for d in rows_d])).to_numpy()
    inside = (pos < len(calendar)) & (first >= calendar[0].to_datetime64())
    counts["outside_price_range"] = int((~inside).sum())
    frame = pd.DataFrame({"ticker": rows_t, "pos": pos, "score": rows_s, "vote": rows_v})[inside]
    counts["used"] = len(frame)
    if frame.empty:
        return empty, counts
    frame["day"] = calendar[frame["pos"].to_numpy()]
    counts["rolled_forward"] = int((frame["day"].to_numpy() != pd.to_datetime(
        [d[:10] for d, ok in zip(rows_d, inside, strict=True) if ok]).to_numpy()).sum())
    grouped = frame.groupby(["day", "ticker"])
    agg = grouped["score"].mean() if cfg.aggregate == "mean" else grouped["vote"].mean()
    sizes = grouped.size()
    counts["signal_cells"] = len(agg)
    counts["aggregated_items"] = int(sizes[sizes > 1].sum())
    scores = agg.unstack("ticker").reindex(index=calendar)
    cols = sorted(known) if known else sorted(scores.columns)
    return scores.reindex(columns=cols).astype("float64"), counts
