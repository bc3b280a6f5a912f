"""Engine: hand-computed returns, the look-ahead guard, holding, sizing, aggregation, missing bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fintune.backtest.engine import buy_and_hold, parameter_sweep, run_backtest
from fintune.backtest.strategies import StrategyConfig, predictions_to_scores
from fintune.errors import FintuneError
from fintune.prices import load_prices, price_panel
from fintune.records import Prediction


def write_csv(root: Path, ticker: str, rows: list[tuple]) -> None:
    """rows: (date, open, close[, adj_close]); a None open writes Yahoo's all-null row."""
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for row in rows:
        d, o, c = row[:3]
        if o is None:
            lines.append(f"{d},null,null,null,null,null,null")
            continue
        adj = row[3] if len(row) > 3 else c
        lines.append(f"{d},{o},{max(o, c)},{min(o, c)},{c},{adj},1000")
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{ticker}.csv").write_text("\n".join(lines) + "\n")


def backtest(root: Path, preds: list[Prediction], **cfg_kw):
    cfg = StrategyConfig(**cfg_kw)
    panel = price_panel(load_prices(root))
    scores, counts = predictions_to_scores(preds, panel["adj_close"].index, cfg, list(panel["adj_close"].columns),
                                           panel["available"])
    return run_backtest(scores, panel, cfg), counts


def pred(i: int, date: str, label: str = "positive", ticker: str = "AAA", **kw) -> Prediction:
    return Prediction(id=f"p{i}", label=label, ticker=ticker, date=date, **kw)


DAYS = ["2015-01-05", "2015-01-06", "2015-01-07", "2015-01-08", "2015-01-09"]  # Mon..Fri


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    write_csv(tmp_path, "AAA", [(DAYS[0], 10, 10), (DAYS[1], 11, 11.5), (DAYS[2], 12, 12.6),
                                (DAYS[3], 11.97, 13.23), (DAYS[4], 13, 13)])
    return tmp_path


def test_next_open_golden_returns_with_costs(golden: Path):
    res, _ = backtest(golden, [pred(0, DAYS[1])], commission_bps=7, slippage_bps=3)
    # signal Tue -> buy Wed open 12, Wed close 12.6 (+5%), sell Thu open 11.97 (-5% overnight); 10 bps each fill
    assert list(res.returns.index.strftime("%Y-%m-%d")) == DAYS[1:4]
    np.testing.assert_allclose(res.returns.to_numpy(), [0.0, 1.05 * 0.999 - 1, 0.95 * 0.999 - 1], atol=1e-14)
    np.testing.assert_allclose(res.turnover.to_numpy(), [0, 1, 1])
    assert len(res.trades) == 1
    t = res.trades.iloc[0]
    assert (t.entry_date, t.exit_date, t.bars, t.direction) == (pd.Timestamp(DAYS[2]), pd.Timestamp(DAYS[3]), 1, "long")
    assert t.gross_return == pytest.approx(1.05 * 0.95 - 1, abs=1e-14)
    assert t.net_return == pytest.approx(1.05 * 0.95 * 0.999**2 - 1, abs=1e-14)


def test_next_close_golden_returns(golden: Path):
    res, _ = backtest(golden, [pred(0, DAYS[1])], fill="next_close", commission_bps=10)
    # bought at Wed close 12.6, sold at Thu close 13.23: +5% on Thu, 10 bps at each fill
    np.testing.assert_allclose(res.returns.to_numpy(), [0.0, 0.999 - 1, 1.05 * 0.999 - 1], atol=1e-14)
    assert res.trades.iloc[0].gross_return == pytest.approx(0.05, abs=1e-14)


@pytest.fixture
def jump(tmp_path: Path) -> Path:
    """Flat at 100 until Thu 2015-01-08, which opens at 100 and closes at 110; flat at 110 after."""
    days = pd.bdate_range("2015-01-05", "2015-01-16").strftime("%Y-%m-%d")
    rows = [(d, 100.0, 100.0) if d < "2015-01-08" else (d, 100.0, 110.0) if d == "2015-01-08" else (d, 110.0, 110.0)
            for d in days]
    write_csv(tmp_path, "AAA", rows)
    return tmp_path


@pytest.mark.parametrize("fill", ["next_open", "next_close"])
def test_signal_that_pays_only_with_look_ahead_earns_nothing(jump: Path, fill: str):
    # dated the jump day itself (and an after-close item from the day before): both know the jump only by hindsight
    res, counts = backtest(jump, [pred(0, "2015-01-08"), pred(1, "2015-01-07T16:30:00")], fill=fill)
    assert res.trades.shape[0] == 1 and res.trades.iloc[0].entry_date >= pd.Timestamp("2015-01-09")
    assert res.returns.abs().max() == 0.0
    assert counts["rolled_forward"] == 1


def test_a_signal_known_before_the_jump_does_earn_it(jump: Path):
    # control: the engine does trade; a pre-close item of the day before buys Thursday's open and earns +10%
    res, _ = backtest(jump, [pred(0, "2015-01-07T15:59:00")])
    assert res.returns.sum() == pytest.approx(0.10, abs=1e-12)
    # timestamps with an offset are converted to exchange time: 20:59 UTC = 15:59 New York (winter)
    res, _ = backtest(jump, [pred(0, "2015-01-07T20:59:00+00:00")])
    assert res.returns.sum() == pytest.approx(0.10, abs=1e-12)
    res, _ = backtest(jump, [pred(0, "2015-01-07T21:00:00+00:00")])
    assert res.returns.sum() == 0.0


def test_weekend_items_roll_to_monday(tmp_path: Path):
    days = pd.bdate_range("2015-01-05", "2015-01-16").strftime("%Y-%m-%d")
    write_csv(tmp_path, "AAA", [(d, 100.0 + i, 100.0 + i) for i, d in enumerate(days)])
    res, counts = backtest(tmp_path, [pred(0, "2015-01-10"), pred(1, "2015-01-11", label="negative")])
    # Saturday and Sunday -> signal day Monday 12th (mean score 0 -> flat under threshold 0) -> no position
    assert counts["rolled_forward"] == 2 and counts["signal_cells"] == 1 and counts["aggregated_items"] == 2
    assert res.weights.abs().to_numpy().sum() == 0
    res, _ = backtest(tmp_path, [pred(0, "2015-01-10")])
    assert res.trades.iloc[0].entry_date == pd.Timestamp("2015-01-13")  # the bar after Monday


def test_holding_period_and_newer_signal_replaces(tmp_path: Path):
    days = pd.bdate_range("2015-01-05", "2015-01-30").strftime("%Y-%m-%d")
    write_csv(tmp_path, "AAA", [(d, 100.0, 100.0) for d in days])
    res, _ = backtest(tmp_path, [pred(0, days[0])], holding_days=3)
    assert res.weights["AAA"].tolist() == [0, 1, 1, 1, 0]
    res, _ = backtest(tmp_path, [pred(0, days[0]), pred(1, days[2], label="neutral")], holding_days=3)
    assert res.weights["AAA"].tolist()[:5] == [0, 1, 1, 0, 0]  # the flat signal closes it early
    res, _ = backtest(tmp_path, [pred(0, days[0]), pred(1, days[2])], holding_days=3)
    assert res.weights["AAA"].tolist() == [0, 1, 1, 1, 1, 1, 0] and len(res.trades) == 1


def test_long_short_confidence_sizing_threshold_and_active_weights(tmp_path: Path):
    days = pd.bdate_range("2015-01-05", "2015-01-09").strftime("%Y-%m-%d")
    for t in ("AAA", "BBB", "CCC"):
        write_csv(tmp_path, t, [(d, 100.0, 100.0) for d in days])
    preds = [pred(0, days[0], probabilities={"positive": 0.7, "negative": 0.1, "neutral": 0.2}),
             pred(1, days[0], ticker="BBB", probabilities={"positive": 0.1, "negative": 0.5, "neutral": 0.4}),
             pred(2, days[0], ticker="CCC", probabilities={"positive": 0.3, "negative": 0.2, "neutral": 0.5})]
    res, _ = backtest(tmp_path, preds, mode="long_short", sizing="confidence", threshold=0.2)
    # scores 0.6, -0.4, 0.1 (under threshold -> flat); two open positions share the book
    assert res.weights.iloc[1].to_dict() == pytest.approx({"AAA": 0.3, "BBB": -0.2, "CCC": 0.0})
    res, _ = backtest(tmp_path, preds, mode="long_only", weighting="universe")
    assert res.weights.iloc[1].to_dict() == pytest.approx({"AAA": 1 / 3, "BBB": 0.0, "CCC": 1 / 3})


def test_short_position_earns_the_fall(tmp_path: Path):
    write_csv(tmp_path, "AAA", [(DAYS[0], 100, 100), (DAYS[1], 100, 100), (DAYS[2], 100, 90), (DAYS[3], 90, 90)])
    res, _ = backtest(tmp_path, [pred(0, DAYS[1], label="negative", confidence=0.9)], mode="long_short")
    assert res.returns.sum() == pytest.approx(0.10)
    assert res.trades.iloc[0].direction == "short"


def test_aggregate_mean_versus_count(tmp_path: Path):
    write_csv(tmp_path, "AAA", [(d, 100.0, 100.0) for d in DAYS])
    items = [pred(0, DAYS[0], probabilities={"positive": 0.9, "negative": 0.1}),
             pred(1, DAYS[0], label="negative", probabilities={"positive": 0.45, "negative": 0.55}),
             pred(2, DAYS[0], label="negative", probabilities={"positive": 0.45, "negative": 0.55})]
    panel = price_panel(load_prices(tmp_path))
    cal = panel["adj_close"].index
    mean, _ = predictions_to_scores(items, cal, StrategyConfig(aggregate="mean"), ["AAA"])
    count, _ = predictions_to_scores(items, cal, StrategyConfig(aggregate="count"), ["AAA"])
    assert mean.loc[DAYS[0], "AAA"] == pytest.approx((0.8 - 0.1 - 0.1) / 3)
    assert count.loc[DAYS[0], "AAA"] == pytest.approx(-1 / 3)


def test_invalid_is_no_signal_and_bad_records_raise(golden: Path):
    _res, counts = backtest(golden, [pred(0, DAYS[1]), pred(1, DAYS[1], label="invalid")])
    assert counts["invalid"] == 1 and counts["used"] == 1
    with pytest.raises(FintuneError, match="prediction 'p7': missing field 'ticker'"):
        backtest(golden, [Prediction(id="p7", label="positive", date=DAYS[1])])
    with pytest.raises(FintuneError, match="prediction 'p8': missing field 'date'"):
        backtest(golden, [Prediction(id="p8", label="positive", ticker="AAA")])
    with pytest.raises(FintuneError, match="no prices for ticker 'ZZZ'"):
        backtest(golden, [pred(9, DAYS[1], ticker="zzz")])
    with pytest.raises(FintuneError, match="'date' 'yesterday' is not a date"):
        backtest(golden, [pred(10, "yesterday")])


def test_predictions_outside_the_price_range_are_counted(golden: Path):
    res, counts = backtest(golden, [pred(0, "2014-12-01"), pred(1, DAYS[1]), pred(2, "2015-02-01")])
    assert counts["outside_price_range"] == 2 and counts["used"] == 1
    assert len(res.trades) == 1


def test_missing_bar_is_not_traded_through_and_move_is_booked_once(tmp_path: Path):
    write_csv(tmp_path, "AAA", [(DAYS[0], 100, 100), (DAYS[1], 100, 100), (DAYS[2], None, None),
                                (DAYS[3], 104, 110), (DAYS[4], 110, 110)])
    write_csv(tmp_path, "BBB", [(d, 50.0, 50.0) for d in DAYS])
    prices = load_prices(tmp_path)
    assert len(prices.attrs["issues"]["missing_bars_dropped"]) == 1
    res, _ = backtest(tmp_path, [pred(0, DAYS[1]), pred(1, DAYS[4], ticker="BBB")])
    # signal Tue; Wed has no AAA bar -> bought at Thu open 104, closes 110; nothing invented for Wed
    assert res.weights.loc[DAYS[2], "AAA"] == 0 and res.weights.loc[DAYS[3], "AAA"] == 1
    assert res.returns.loc[DAYS[3]] == pytest.approx(110 / 104 - 1)
    assert res.returns.loc[DAYS[2]] == 0


def test_adjusted_open_removes_a_split_from_next_open_fills(tmp_path: Path):
    # a 2:1 split on Wed: raw prices halve, adjusted close continues smoothly (history scaled by 0.5)
    write_csv(tmp_path, "AAA", [(DAYS[0], 100, 100, 50), (DAYS[1], 100, 100, 50), (DAYS[2], 51, 51, 51),
                                (DAYS[3], 51, 51, 51)])
    res, _ = backtest(tmp_path, [pred(0, DAYS[0])], holding_days=2)
    # bought Tue open (adj 50), held over the split: +2% real, not -49%
    assert res.equity.iloc[-1] == pytest.approx(1.02)


def test_buy_and_hold_and_sweep(golden: Path):
    panel = price_panel(load_prices(golden))
    bh = buy_and_hold(panel, panel["adj_close"].index)
    assert (1 + bh).prod() == pytest.approx(13 / 10)
    scores = pd.DataFrame({"AAA": [np.nan, 1.0, np.nan, np.nan, np.nan]}, index=panel["adj_close"].index)
    table = parameter_sweep(scores, panel, [StrategyConfig(holding_days=h) for h in (1, 2)])
    assert list(table.columns[:1]) == ["holding_days"] and len(table) == 2
    assert table.total_return.iloc[0] == pytest.approx(1.05 * 0.95 - 1)


def test_bad_strategy_settings_raise():
    with pytest.raises(FintuneError, match="invalid holding_days"):
        StrategyConfig(holding_days=0)
    with pytest.raises(FintuneError, match="invalid mode"):
        StrategyConfig(mode="yolo")


def test_matches_backtesting_py_on_real_tickers(shared_data: Path):
    """Cross-check against backtesting.py (AGPL: benchmark-only, so skipped when it is not installed)."""
    pytest.importorskip("backtesting")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "backtest_speed", Path(__file__).resolve().parents[2] / "benchmarks" / "backtest_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    prices = load_prices(shared_data / "stocknet" / "price_raw", ["AAPL", "PTR"])  # PTR has a missing bar
    panel = price_panel(prices)
    scores = bench.make_scores(panel, density=0.3, seed=5)
    scores.loc["2016-06-24":"2016-07-05", "PTR"] = np.nan
    scores.loc["2016-06-28", "PTR"] = 0.9  # its fill and holding straddle PTR's missing 2016-06-29 bar
    cal = panel["adj_close"].index
    res = run_backtest(scores, panel, StrategyConfig(threshold=0.2, holding_days=3), start=cal[0], end=cal[-1])
    sleeve = (1 + res.sleeve_returns).cumprod()
    for t in ("AAPL", "PTR"):
        ref = bench.backtesting_py_equity(prices[prices.ticker == t], scores[t], 0.2, 3)
        np.testing.assert_allclose(sleeve[t].reindex(ref.index).to_numpy(), ref.to_numpy(), rtol=0, atol=1e-9)


def test_forecaster_prediction_trades_from_its_asof_close(tmp_path: Path):
    # a weekly forecast for the week of Mon 12th, its prompt's information ending at the close of Fri 9th
    days = pd.bdate_range("2015-01-05", "2015-01-23").strftime("%Y-%m-%d")
    write_csv(tmp_path, "AAA", [(d, 100.0 + i, 100.0 + i) for i, d in enumerate(days)])
    weekly = pred(0, "2015-01-12", label="U2", extra={"asof": "2015-01-09"})
    res, _ = backtest(tmp_path, [weekly], holding_days=5)
    assert res.trades.iloc[0].entry_date == pd.Timestamp("2015-01-12")  # the predicted week's first open
    assert res.weights["AAA"].loc["2015-01-12":"2015-01-16"].tolist() == [1, 1, 1, 1, 1]
    assert res.weights["AAA"].loc["2015-01-19":].abs().sum() == 0
    res, _ = backtest(tmp_path, [pred(0, "2015-01-12", label="U2")], holding_days=5)
    assert res.trades.iloc[0].entry_date == pd.Timestamp("2015-01-13")  # without asof: known at Monday's close
    with pytest.raises(FintuneError, match="asof"):
        backtest(tmp_path, [pred(0, "2015-01-12", label="U2", extra={"asof": "2015-01-13"})])


def test_demean_makes_a_one_sided_model_long_short(tmp_path: Path):
    days = pd.bdate_range("2015-01-05", "2015-01-09").strftime("%Y-%m-%d")
    for t in ("AAA", "BBB", "CCC"):
        write_csv(tmp_path, t, [(d, 100.0, 100.0) for d in days])
    # every score is bullish (0.6, 0.2, 0.4): plain long_short is long all three; demeaned: +0.2, -0.2, 0
    preds = [pred(i, days[0], label="U1", ticker=t, probabilities={"U1": 0.5 + s / 2, "D1": 0.5 - s / 2})
             for i, (t, s) in enumerate([("AAA", 0.6), ("BBB", 0.2), ("CCC", 0.4)])]
    res, _ = backtest(tmp_path, preds, mode="long_short")
    assert res.weights.iloc[1].to_dict() == pytest.approx({"AAA": 1 / 3, "BBB": 1 / 3, "CCC": 1 / 3})
    res, _ = backtest(tmp_path, preds, mode="long_short", demean=True)
    assert res.weights.iloc[1].to_dict() == pytest.approx({"AAA": 0.5, "BBB": -0.5, "CCC": 0.0})
    # a ticker without a signal that day does not enter the mean
    res, _ = backtest(tmp_path, preds[:2], mode="long_short", demean=True)
    assert res.weights.iloc[1].to_dict() == pytest.approx({"AAA": 0.5, "BBB": -0.5, "CCC": 0.0})
