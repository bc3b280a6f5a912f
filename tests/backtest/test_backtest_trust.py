"""Trials ledger, random-signal baselines, purged CV, universe file, model cutoff, impact and capacity."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fintune.backtest.baselines import random_signal_baseline, shuffle_signals
from fintune.backtest.costs import ImpactModel, impact_report
from fintune.backtest.cutoff import cutoff_check, resolve_cutoff
from fintune.backtest.engine import _aligned, _window, prepare_panel, run_backtest
from fintune.backtest.ledger import append_trial, best_of, new_trial, read_trials, unique_trials
from fintune.backtest.metrics import sharpe_ratio
from fintune.backtest.purged import (
    assert_no_leak,
    cpcv_splits,
    cpcv_splits_skfolio,
    purged_train_mask,
    walk_forward_purged_splits,
)
from fintune.backtest.strategies import StrategyConfig
from fintune.backtest.universe import apply_universe, membership_mask, read_universe
from fintune.backtest.walkforward import _check_prediction_windows, walk_forward_windows
from fintune.errors import FintuneError
from fintune.prices import load_prices, price_panel
from fintune.records import Prediction


def synth_prices(root: Path, n_tickers: int = 8, n_bars: int = 160, seed: int = 0) -> Path:
    """Random-walk daily bars with volume, one CSV per ticker (the StockNet layout)."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2015-01-05", periods=n_bars).strftime("%Y-%m-%d")
    root.mkdir(parents=True, exist_ok=True)
    for j in range(n_tickers):
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.015, n_bars)))
        opn = close * np.exp(rng.normal(0, 0.005, n_bars))
        vol = rng.integers(50_000, 200_000, n_bars)
        rows = [f"{d},{o:.4f},{max(o, c):.4f},{min(o, c):.4f},{c:.4f},{c:.4f},{v}"
                for d, o, c, v in zip(days, opn, close, vol, strict=True)]
        (root / f"T{j}.csv").write_text("Date,Open,High,Low,Close,Adj Close,Volume\n" + "\n".join(rows) + "\n")
    return root


# ---------------------------------------------------------------- trials ledger

def trial(tmp_path: Path, sharpe: float, threshold: float):
    return new_trial(tmp_path / f"o{threshold}", "p.jsonl", "abc", "px", ["AAA"], {"threshold": threshold},
                     sharpe / math.sqrt(252), sharpe, 100)


def test_ledger_appends_dedupes_and_ranks(tmp_path: Path):
    ledger = tmp_path / "runs" / "backtest_trials.jsonl"
    for sr, th in ((0.5, 0.1), (1.5, 0.2), (-0.2, 0.3), (0.9, 0.1)):  # the last re-runs threshold 0.1
        append_trial(ledger, trial(tmp_path, sr, th))
    lines = ledger.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x)["settings"] for x in lines)  # append-only: nothing rewritten
    uniq = unique_trials(read_trials(ledger))
    assert len(uniq) == 3 and uniq[0].sharpe_annual == 0.9  # the re-run replaced its earlier result
    summary = best_of(read_trials(ledger), uniq[0].trial_id)
    assert summary == {"n_trials": 3, "rank": 2, "best_sharpe_annual": 1.5}
    # non-finite Sharpes are stored as null, never NaN: every line is strict JSON
    append_trial(ledger, trial(tmp_path, float("nan"), 0.4))
    last = ledger.read_text().splitlines()[-1]
    assert json.loads(last, parse_constant=lambda c: pytest.fail(c))["sharpe_annual"] is None


@pytest.mark.parametrize("line, match", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"trial_id": "x"}', "not a trial record"),
    ('{"sharpe_annual": NaN}', "invalid JSON"),
    ('{"sharpe_annual": Infinity}', "invalid JSON"),
])
def test_ledger_corrupt_line_is_one_line_error(tmp_path: Path, line: str, match: str):
    ledger = tmp_path / "backtest_trials.jsonl"
    append_trial(ledger, trial(tmp_path, 1.0, 0.1))
    with open(ledger, "a") as fh:
        fh.write(line + "\n")
    with pytest.raises(FintuneError, match=rf"backtest_trials.jsonl:2: {match}"):
        read_trials(ledger)


# ---------------------------------------------------------------- random baselines

def test_shuffle_keeps_each_days_signals_among_available_tickers():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(50, 6))
    s[rng.random(s.shape) < 0.4] = np.nan
    avail = rng.random(s.shape) < 0.8
    s[~avail & (rng.random(s.shape) < 0.5)] = 7.0  # values on unavailable cells stay where they are
    out = shuffle_signals(s, avail, np.random.default_rng(1))
    for b in range(50):
        np.testing.assert_array_equal(np.sort(out[b, avail[b]]), np.sort(s[b, avail[b]]))
        np.testing.assert_array_equal(out[b, ~avail[b]], s[b, ~avail[b]])
    assert not np.array_equal(np.nan_to_num(out), np.nan_to_num(s))


def test_random_baseline_ranks_foresight_high_and_noise_mid(tmp_path: Path):
    panel = price_panel(load_prices(synth_prices(tmp_path / "px")))
    prep = prepare_panel(panel)
    cfg = StrategyConfig(mode="long_short", fill="next_close")
    # perfect foresight: a signal on day s is bought at the close of s+1 and earns the move to the close of s+2
    nxt = panel["adj_close"].pct_change().shift(-2)
    for scores, lo, hi in ((np.sign(nxt), 99.0, 100.0),
                           (pd.DataFrame(np.random.default_rng(5).choice([-1.0, 1.0], nxt.shape),
                                         index=nxt.index, columns=nxt.columns), 5.0, 95.0)):
        res = run_backtest(scores, prep, cfg)
        s = _aligned(scores, prep)
        rb = random_signal_baseline(s, prep, cfg, _window(s, prep, cfg, None, None), sharpe_ratio(res.returns),
                                    n_sims=60, seed=3)
        assert lo <= rb.percentile <= hi
        again = random_signal_baseline(s, prep, cfg, _window(s, prep, cfg, None, None), sharpe_ratio(res.returns),
                                       n_sims=60, seed=3)
        np.testing.assert_array_equal(rb.sharpes, again.sharpes)  # seeded
        assert (rb.band["p05"] <= rb.band["p95"]).all() and len(rb.band) == len(res.returns)
        assert rb.turnover_daily_mean == pytest.approx(float(res.turnover.mean()), rel=0.2)


# ---------------------------------------------------------------- purged walk-forward and CPCV

def test_planted_leak_across_purge_boundary_is_caught():
    # 100 daily samples, each labelled by the move over its next 5 bars: [t, t+5]
    t0 = np.arange(100)
    t1 = t0 + 5
    test = [(60, 79)]
    naive_train = np.flatnonzero(t0 < 60)  # "train on everything before the test window": leaks 55..59
    with pytest.raises(FintuneError, match=r"sample 55: training label interval \[55, 60\] crosses .* \(5 such"):
        assert_no_leak(t0, t1, naive_train, test)
    keep = purged_train_mask(t0, t1, test, embargo=3)
    assert not keep[55:80].any() and not keep[80:83].any() and keep[:55].all() and keep[83:].all()
    assert_no_leak(t0, t1, np.flatnonzero(keep), test, embargo=3)  # the purged set passes
    (train, test_idx), = walk_forward_purged_splits(t0, t1, [(0, 59, 60, 79)])
    assert train.max() == 54 and test_idx.tolist() == list(range(60, 80))


def test_walk_forward_purge_gap_and_prediction_check(tmp_path: Path):
    cal = pd.bdate_range("2015-01-05", periods=60)
    windows = walk_forward_windows(cal, 20, 10, purge_bars=5)
    w = windows[0]
    assert (w.train_end, w.test_start) == (str(cal[19].date()), str(cal[25].date()))  # 5 bars between
    ok = Prediction(id="ok", label="positive", ticker="A", date=str(cal[25].date()),
                    extra={"window": 0, "train_end": w.train_end})
    _check_prediction_windows([ok], windows, cal)
    in_gap = Prediction(id="gap", label="positive", ticker="A", date=str(cal[22].date()), extra={"window": 0})
    with pytest.raises(FintuneError, match="prediction 'gap'.*purge gap"):
        _check_prediction_windows([in_gap], windows, cal)
    late_model = Prediction(id="late", label="positive", ticker="A", date=str(cal[25].date()),
                            extra={"train_end": str(cal[22].date())})  # trained on labels that reach the test day
    with pytest.raises(FintuneError, match="prediction 'late'.*crosses into the test period"):
        _check_prediction_windows([late_model], windows, cal)


@pytest.mark.parametrize("n_obs, folds, test_folds, purge, embargo", [
    (100, 6, 2, 2, 1), (257, 5, 2, 3, 4), (60, 4, 3, 0, 0), (400, 8, 2, 5, 5), (90, 3, 2, 4, 0)])
def test_cpcv_matches_skfolio(n_obs, folds, test_folds, purge, embargo):
    pytest.importorskip("skfolio")
    mine = cpcv_splits(n_obs, folds, test_folds, purge, embargo)
    ref = cpcv_splits_skfolio(n_obs, folds, test_folds, purge, embargo)
    key = sorted((tuple(a), tuple(b)) for a, b in mine)
    assert key == sorted((tuple(a), tuple(b)) for a, b in ref) and len(mine) == math.comb(folds, test_folds)


def test_cpcv_purges_around_every_test_block():
    for train, test in cpcv_splits(120, 6, 2, purged_size=3, embargo_size=2):
        t = set(test.tolist())
        assert not t & set(train.tolist())
        for i in train:  # no training bar within 3 before or 5 after a test bar
            assert not any(j in t for j in range(i + 1, i + 4)) and not any(j in t for j in range(i - 5, i))
    with pytest.raises(FintuneError, match="smaller than a fold"):
        cpcv_splits(30, 6, 2, purged_size=3, embargo_size=2)


# ---------------------------------------------------------------- universe, cutoff, impact

def test_universe_file_masks_signals(tmp_path: Path):
    f = tmp_path / "u.csv"
    f.write_text("ticker,from,to\nAAA,2015-01-05,2015-01-07\nbbb,2015-01-08,\nAAA,2015-01-09,2015-01-09\n")
    cal = pd.bdate_range("2015-01-05", periods=5)
    mask = membership_mask(read_universe(f), cal, ["AAA", "BBB", "CCC"])
    assert mask["AAA"].tolist() == [True, True, True, False, True]
    assert mask["BBB"].tolist() == [False, False, False, True, True] and not mask["CCC"].any()
    scores, dropped = apply_universe(pd.DataFrame(1.0, index=cal, columns=["AAA", "BBB", "CCC"]), mask)
    assert dropped == 1 + 3 + 5 and scores.notna().to_numpy().sum() == 6
    for body, match in (("ticker,from\nA,2015-01-01\n", "header"), ("ticker,from,to\nA,yesterday,\n", "row 2: field 'from'"),
                        ("ticker,from,to\nA,2015-02-01,2015-01-01\n", "row 2: 'to'"), ("ticker,from,to\n,2015-01-01,\n", "row 2: field 'ticker'")):
        f.write_text(body)
        with pytest.raises(FintuneError, match=match):
            read_universe(f)


def test_model_cutoff_from_flag_manifest_chain_and_known_models(tmp_path: Path):
    run, ev = tmp_path / "run", tmp_path / "eval"
    run.mkdir()
    ev.mkdir()
    (run / "manifest.json").write_text(json.dumps({"stage": "train", "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
                                                   "recipe": {"model_name_or_path": "x"}}))
    (ev / "manifest.json").write_text(json.dumps({"stage": "eval", "parent_run": str(run), "model": str(run)}))
    found = resolve_cutoff(ev / "predictions.jsonl")
    assert found["cutoff"] == "2023-12-31" and "SmolLM2" in found["model"]
    check = cutoff_check(found, "2015-07-01", "2016-01-04")
    assert check["status"] == "warning" and "may have read" in check["message"]
    (run / "manifest.json").write_text(json.dumps({"stage": "train", "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
                                                   "recipe": {"model_cutoff": "2014-06-30"}}))
    assert cutoff_check(resolve_cutoff(ev / "predictions.jsonl"), "2015-07-01", "2016-01-04")["status"] == "ok"
    assert resolve_cutoff(ev / "p.jsonl", "2016-03-01")["source"] == "--model-cutoff"
    assert cutoff_check(resolve_cutoff(tmp_path / "p.jsonl"), "2015-01-01", "2015-02-01")["status"] == "unknown"
    with pytest.raises(FintuneError, match="--model-cutoff: model cutoff 'soon' is not a date"):
        resolve_cutoff(ev / "p.jsonl", "soon")


def test_square_root_impact_and_capacity(tmp_path: Path):
    panel = price_panel(load_prices(synth_prices(tmp_path / "px", n_tickers=4, n_bars=80)))
    idx, cols = panel["adj_close"].index[30:40], list(panel["adj_close"].columns)
    w = pd.DataFrame(0.0, index=idx, columns=cols)
    w.iloc[2:6, 0] = 0.5  # one round trip in T0: buy 0.5 on bar 2, sell on bar 6
    rets = pd.Series(0.001, index=idx)
    net1, s1 = impact_report(rets, w, panel, ImpactModel(book_size=1e6))
    _net4, s4 = impact_report(rets, w, panel, ImpactModel(book_size=4e6))
    # cost per fill = k * sigma * sqrt(B * 0.5 / ADV) * 0.5, from the 20 bars before the fill
    dv = (panel["dollar_volume"]["T0"]).rolling(20).mean().shift(1)
    sig = panel["adj_close"]["T0"].pct_change().rolling(20).std().shift(1)
    fill = idx[2]
    expect = sig[fill] * math.sqrt(1e6 * 0.5 / dv[fill]) * 0.5
    assert (1 + rets[fill]) * (1 - expect) - 1 == pytest.approx(net1[fill], rel=1e-12)
    assert s4["impact_cost_bps_per_bar"] == pytest.approx(2 * s1["impact_cost_bps_per_bar"])  # sqrt(4) = 2
    # capacity: the book where mean impact cost equals the mean edge
    cap = s1["capacity_usd"]
    _, at_cap = impact_report(rets, w, panel, ImpactModel(book_size=cap))
    assert at_cap["impact_cost_bps_per_bar"] == pytest.approx(10.0, rel=1e-9)  # edge = 0.001 = 10 bps
    assert s1["trades"] == 2 and s1["unpriced_trades"] == 0
    assert s1["capacity_volume_cap_usd"] == pytest.approx(
        0.1 * min(dv[idx[2]], dv[idx[6]]) / 0.5, rel=1e-12)
    _, neg = impact_report(-rets, w, panel, ImpactModel())
    assert neg["capacity_usd"] == 0.0
    with pytest.raises(FintuneError, match="invalid max_volume_share"):
        ImpactModel(max_volume_share=0)


def test_cli_universe_file_and_sqrt_impact(tmp_path: Path, capsys):
    from fintune.cli import main
    from fintune.records import write_jsonl

    prices = synth_prices(tmp_path / "px", n_tickers=3, n_bars=80)
    days = pd.bdate_range("2015-01-05", periods=80).strftime("%Y-%m-%d")
    preds = [Prediction(id=f"p{i}-{t}", label="positive", ticker=f"T{t}", date=days[i])
             for i in range(25, 75) for t in range(3)]
    write_jsonl(tmp_path / "p.jsonl", preds)
    (tmp_path / "u.csv").write_text(f"ticker,from,to\nT0,2015-01-01,{days[49]}\nT1,2015-01-01,\nT2,2015-01-01,\n")
    common = ["backtest", "--predictions", str(tmp_path / "p.jsonl"), "--prices", str(prices),
              "--random-sims", "10", "--bootstrap-samples", "0"]
    assert main([*common, "--out", str(tmp_path / "all")]) == 0
    assert main([*common, "--out", str(tmp_path / "pit"), "--universe", str(tmp_path / "u.csv"),
                 "--slippage-model", "sqrt", "--book-size", "5e6"]) == 0
    capsys.readouterr()
    m_all = json.loads((tmp_path / "all" / "metrics.json").read_text())
    m_pit = json.loads((tmp_path / "pit" / "metrics.json").read_text())
    assert m_pit["signals"]["signals_outside_universe"] == 25  # T0's signals after it left the universe
    pos = pd.read_csv(tmp_path / "pit" / "positions.csv", index_col="date")
    assert (pos.loc[days[52]:, "T0"] == 0).all() and (pos.loc[days[30]:days[49], "T0"] > 0).all()
    c = m_pit["costs"]
    assert c["applied_to_returns"] and c["book_size"] == 5e6 and c["impact_cost_bps_per_bar"] > 0
    assert m_pit["strategy"]["total_return"] == pytest.approx(c["total_return_after_impact"], rel=1e-12)
    assert not m_all["costs"]["applied_to_returns"]
    assert json.loads((tmp_path / "backtest_trials.jsonl").read_text().splitlines()[-1])["settings"]
    assert m_pit["statistics"]["n_trials"] == 2
