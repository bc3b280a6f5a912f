"""Walk-forward evaluation: rolling train / test windows through time.

For forecaster models retrained per window: :func:`walk_forward_windows` gives the windows (the trainer fits one
model on each ``train`` range and predicts its ``test`` range); :func:`run_walk_forward` backtests each test range
with only the predictions made for it and stitches the out-of-sample returns. A prediction that names its window
(``extra["window"]``) or its training cut-off (``extra["train_end"]``) is checked: one dated inside its own training
data is look-ahead and raises.

Purge (for labels that span time, e.g. a weekly forecaster's next-week move): with ``purge_bars = h`` the training
range of each window ends ``h`` bars before its test range starts, so the label of the last training sample (known at
``train_end``, resolved ``h`` bars later) is resolved before the first test bar; a prediction whose model's
training cut-off (``extra["train_end"]``) is less than ``h`` bars before the prediction's date has a training label
that crosses into the test period and raises. The embargo after each test window only matters when training data
follows test data (combinatorial purged CV, :mod:`fintune.backtest.purged`); walk-forward training always precedes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fintune.backtest.engine import prepare_panel, run_backtest
from fintune.backtest.metrics import performance_metrics
from fintune.backtest.strategies import predictions_to_scores
from fintune.errors import FintuneError


@dataclass
class Window:
    """One walk-forward window (inclusive ISO dates)."""

    index: int
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    purge_bars: int = 0


def walk_forward_windows(calendar: Any, train_bars: int, test_bars: int, step_bars: int | None = None,
                         expanding: bool = False, purge_bars: int = 0) -> list[Window]:
    """Windows over a trading calendar: train ``train_bars`` bars, skip ``purge_bars``, test the next ``test_bars``.

    Windows advance by ``step_bars`` (default ``test_bars``, so test ranges tile without overlap); with
    ``expanding`` the training range always starts at the first bar.
    """
    if train_bars < 1 or test_bars < 1 or (step_bars is not None and step_bars < 1) or purge_bars < 0:
        raise FintuneError("walk-forward: train, test and step must be >= 1 bars, purge >= 0",
                           "e.g. --walk-forward 252:63 or 252:63:5")
    step = step_bars or test_bars
    days = [str(d)[:10] for d in calendar]
    out, begin = [], 0
    while begin + train_bars + purge_bars + test_bars <= len(days):
        tr0 = 0 if expanding else begin
        tr1 = begin + train_bars - 1
        te0 = tr1 + 1 + purge_bars
        out.append(Window(len(out), days[tr0], days[tr1], days[te0], days[te0 + test_bars - 1], purge_bars))
        begin += step
    if not out:
        raise FintuneError(f"walk-forward: {len(days)} bars cannot hold one window of "
                           f"{train_bars}+{purge_bars}+{test_bars}", "shorten the windows")
    return out


def _bars_between(calendar: Any, a: str, b: str) -> int:
    """Trading bars in ``(a, b]`` on the calendar (negative when b < a)."""
    import pandas as pd

    ia = int(calendar.searchsorted(pd.Timestamp(a), side="right"))
    ib = int(calendar.searchsorted(pd.Timestamp(b), side="right"))
    return ib - ia


def _check_prediction_windows(predictions: list[Any], windows: list[Window], calendar: Any = None) -> None:
    by_index = {w.index: w for w in windows}
    purge = max((w.purge_bars for w in windows), default=0)
    for p in predictions:
        day = (p.date or "")[:10]
        if "train_end" in p.extra and day <= str(p.extra["train_end"])[:10]:
            raise FintuneError(f"prediction '{p.id}': dated {day}, inside its model's training data "
                               f"(train_end {p.extra['train_end']})", "predict only dates after the training cut-off")
        if "train_end" in p.extra and purge and calendar is not None:
            gap = _bars_between(calendar, str(p.extra["train_end"])[:10], day)
            if gap <= purge:
                raise FintuneError(f"prediction '{p.id}': dated {day}, {gap} bar(s) after its model's training "
                                   f"cut-off {p.extra['train_end']}: a training label resolved {purge} bars later "
                                   "crosses into the test period (purge)",
                                   "train on data ending purge bars before the test window")
        if "window" in p.extra:
            w = by_index.get(int(p.extra["window"]))
            if w is None:
                raise FintuneError(f"prediction '{p.id}': unknown walk-forward window {p.extra['window']!r}",
                                   f"windows are 0..{len(windows) - 1}")
            if day <= w.train_end:
                raise FintuneError(f"prediction '{p.id}': dated {day}, inside window {w.index}'s training range "
                                   f"(ends {w.train_end})", "that is look-ahead; predict the test range only")
            if w.purge_bars and calendar is not None and day < w.test_start:
                raise FintuneError(f"prediction '{p.id}': dated {day}, in window {w.index}'s purge gap "
                                   f"({w.train_end} .. {w.test_start}): labels of its training data reach that day",
                                   "predict the test range only")


def run_walk_forward(predictions: list[Any], panel: dict[str, Any], cfg: Any, windows: list[Window],
                     max_invalid_rate: float = 0.0) -> dict[str, Any]:
    """Backtest each window's test range; returns per-window metrics and the stitched out-of-sample returns.

    Predictions carrying ``extra["window"]`` count only for that window; others count for whichever test range
    their signal day falls in.
    """
    import pandas as pd

    calendar = panel["adj_close"].index
    _check_prediction_windows(predictions, windows, calendar)
    tickers = list(panel["adj_close"].columns)
    rows, pieces = [], []
    prep = prepare_panel(panel)
    for w in windows:
        mine = [p for p in predictions if int(p.extra.get("window", w.index)) == w.index]
        scores, _counts = predictions_to_scores(mine, calendar, cfg, tickers, panel["available"],
                                                max_invalid_rate=max_invalid_rate)
        in_test = (calendar >= pd.Timestamp(w.test_start)) & (calendar <= pd.Timestamp(w.test_end))
        scores = scores.where(pd.Series(in_test, index=calendar), axis=0)
        res = run_backtest(scores, prep, cfg, start=w.test_start, end=w.test_end)
        m = performance_metrics(res.returns, res.turnover, res.weights, res.trades, bootstrap_samples=0)
        rows.append({**asdict(w), "signals": int(scores.notna().sum().sum()), **m})
        pieces.append(res.returns)
    stitched = pd.concat(pieces) if pieces else pd.Series(dtype="float64")
    stitched = stitched[~stitched.index.duplicated(keep="first")]
    return {"windows": rows, "returns": stitched}
