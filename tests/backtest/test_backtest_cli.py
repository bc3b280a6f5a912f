"""``fintune backtest`` end to end on real StockNet prices, with predictions made from the tickers' tweets."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pandas as pd
import pytest

from fintune.backtest.strategies import StrategyConfig
from fintune.backtest.walkforward import run_walk_forward, walk_forward_windows
from fintune.cli import main
from fintune.errors import FintuneError
from fintune.prices import load_prices, price_panel
from fintune.records import Prediction, write_jsonl

TICKERS = ("AAPL", "PTR", "XOM")
BULL = {"buy", "bullish", "long", "calls", "up", "breakout"}
BEAR = {"sell", "bearish", "short", "puts", "down", "downgrade"}


def tweet_predictions(shared_data: Path) -> list[Prediction]:
    """A deterministic keyword rule over each tweet (a stand-in for a model), one Prediction per tweet."""
    out = []
    with gzip.open(shared_data / "stocknet" / "tweets_preprocessed.jsonl.gz", "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if not line.startswith('{"symbol": "') or line[12:16].rstrip('"') not in TICKERS:
                continue
            row = json.loads(line)
            if row["symbol"] not in TICKERS:
                continue
            words = set(row["text"])
            net = len(words & BULL) - len(words & BEAR)
            label = "positive" if net > 0 else "negative" if net < 0 else "neutral"
            p_pos = 0.6 if net > 0 else 0.2 if net < 0 else 0.3
            p_neg = 0.6 if net < 0 else 0.2 if net > 0 else 0.3
            out.append(Prediction(id=f"tw{i}", label=label, ticker=row["symbol"], date=row["date"],
                                  probabilities={"positive": p_pos, "negative": p_neg, "neutral": 1 - p_pos - p_neg}))
    return out


@pytest.fixture(scope="module")
def preds_file(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    preds = tweet_predictions(shared_data)
    preds.append(Prediction(id="bad-output", label="invalid", ticker="AAPL", date="2015-03-02"))
    path = tmp_path_factory.mktemp("bt") / "predictions.jsonl"
    write_jsonl(path, preds)
    return path


def test_cli_end_to_end_on_stocknet(shared_data: Path, preds_file: Path, tmp_path: Path, capsys):
    out = tmp_path / "bt"
    rc = main(["backtest", "--predictions", str(preds_file), "--prices", str(shared_data / "stocknet" / "price_raw"),
               "--out", str(out), "--strategy", "long_short", "--threshold", "0.1", "--holding-days", "2",
               "--commission-bps", "5", "--slippage-bps", "5", "--benchmark", "AAPL", "--walk-forward", "126:63:5",
               "--bootstrap-samples", "200", "--random-sims", "40"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    files = {p.name for p in out.iterdir()}
    assert {"metrics.json", "equity.csv", "positions.csv", "trades.csv", "walk_forward.csv", "equity.png",
            "drawdown.png", "monthly_returns.png", "exposure.png", "report.html", "manifest.json"} <= files
    m = json.loads((out / "metrics.json").read_text())
    assert m["tickers"] == list(TICKERS)
    assert m["signals"]["invalid"] == 1 and m["signals"]["used"] > 1000
    assert m["data_issues"]["missing_bars_dropped"] == 1  # PTR 2016-06-29
    assert m["period"]["start"] >= "2014-01-02" and m["period"]["end"] <= "2016-01-31"
    s = m["strategy"]
    assert s["n_trades"] > 50 and s["sharpe_ci95"][0] < s["sharpe"] < s["sharpe_ci95"][1]
    assert set(m["benchmarks"]) == {"buy_and_hold_universe", "buy_and_hold_AAPL"}
    equity = pd.read_csv(out / "equity.csv", index_col="date")
    assert equity["strategy"].iloc[-1] == pytest.approx(1 + s["total_return"], rel=1e-8)
    # the AAPL benchmark is AAPL's own adjusted close over the same bars
    px = load_prices(shared_data / "stocknet" / "price_raw", ["AAPL"]).set_index("date")["adj_close"]
    assert equity["buy_and_hold_AAPL"].iloc[-1] == pytest.approx(
        px[equity.index[-1]] / px[equity.index[0]], rel=1e-8)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "<img src=\"http" not in html and "Walk-forward" in html
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "backtest" and str(preds_file) in manifest["data_sha256"]
    assert manifest["recipe"]["holding_days"] == 2
    assert m["walk_forward"]["windows"] >= 2 and m["walk_forward"]["purge_bars"] == 5
    # every report carries the deflated Sharpe with its trial count, the random baseline and the cutoff check
    st = m["statistics"]
    assert st["n_trials"] == 1 and st["rank"] == 1 and st["dsr"] == pytest.approx(st["psr"])
    assert st["sharpe_annual"] == pytest.approx(s["sharpe"]) and 0 <= st["psr"] <= 1
    assert m["random_baseline"]["n_sims"] == 40 and 0 <= m["random_baseline"]["model_sharpe_percentile"] <= 100
    assert m["model_cutoff"]["status"] == "unknown" and m["costs"]["capacity_usd"] is not None
    assert {"random_p05", "random_p50", "random_p95"} <= set(equity.columns)
    assert "Is it luck?" in html and "best of 1 trials" in html and "model cutoff: unknown" in html
    assert "best of 1 trials" in printed.out and "DSR" in printed.out and "random signals" in printed.out
    ledger = tmp_path / "backtest_trials.jsonl"
    assert len(ledger.read_text().splitlines()) == 1
    # a second variant in the same project: the ledger counts two trials and the DSR deflates against both
    rc = main(["backtest", "--predictions", str(preds_file), "--prices", str(shared_data / "stocknet" / "price_raw"),
               "--out", str(tmp_path / "bt2"), "--strategy", "long_only", "--threshold", "0.3",
               "--bootstrap-samples", "0", "--random-sims", "0", "--model-cutoff", "2023-12-31"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    m2 = json.loads((tmp_path / "bt2" / "metrics.json").read_text())
    assert m2["statistics"]["n_trials"] == 2 and "best of 2 trials" in printed.out
    assert m2["statistics"]["sr0_annual"] > 0 and m2["statistics"]["dsr"] < m2["statistics"]["psr"]
    assert m2["model_cutoff"]["status"] == "warning" and "model cutoff: warning" in printed.out
    assert len(ledger.read_text().splitlines()) == 2


def test_cli_bad_input_is_one_line(shared_data: Path, tmp_path: Path, capsys):
    bad = tmp_path / "p.jsonl"
    write_jsonl(bad, [Prediction(id="x1", label="positive", ticker="AAPL")])
    rc = main(["backtest", "--predictions", str(bad), "--prices", str(shared_data / "stocknet" / "price_raw"),
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == ("fintune backtest: error: prediction 'x1': missing field 'date' -- a backtest needs "
                               "each prediction's ticker and date (copy them from the Example)")
    assert not (tmp_path / "o").exists()


def test_walk_forward_windows_and_look_ahead_check(shared_data: Path):
    panel = price_panel(load_prices(shared_data / "stocknet" / "price_raw", ["AAPL"]))
    windows = walk_forward_windows(panel["adj_close"].index, 252, 126)
    assert windows[0].train_start == "2012-09-04" and windows[0].test_start > windows[0].train_end
    assert all(a.test_end < b.test_start for a, b in itertools.pairwise(windows))
    leaky = Prediction(id="w1", label="positive", ticker="AAPL", date=windows[1].train_end, extra={"window": 1})
    with pytest.raises(FintuneError, match="inside window 1's training range"):
        run_walk_forward([leaky], panel, StrategyConfig(), windows)
    ok = [Prediction(id=f"w{i}", label="positive", ticker="AAPL", date=w.test_start, extra={"window": w.index})
          for i, w in enumerate(windows)]
    result = run_walk_forward(ok, panel, StrategyConfig(), windows)
    assert len(result["windows"]) == len(windows) and all(r["n_trades"] == 1 for r in result["windows"])
    assert result["returns"].index.is_monotonic_increasing
