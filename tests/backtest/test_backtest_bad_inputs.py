"""Bad input to ``fintune backtest``, class by class, with real files: never a guess, never a traceback, never a
non-finite number in an output. Each case runs the CLI and expects exit 2 with one line naming file/row/field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fintune.cli import main
from fintune.records import Prediction, write_jsonl

DAYS = pd.bdate_range("2015-01-05", periods=40).strftime("%Y-%m-%d")
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def price_rows(seed: int = 0, n: int = len(DAYS)) -> list[str]:
    rng = np.random.default_rng(seed)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return [f"{d},{c:.4f},{c * 1.01:.4f},{c * 0.99:.4f},{c:.4f},{c:.4f},100000" for d, c in zip(DAYS[:n], close,
                                                                                              strict=True)]


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    root = tmp_path / "px"
    root.mkdir()
    for i, t in enumerate(("AAA", "BBB")):
        (root / f"{t}.csv").write_text(HEADER + "\n".join(price_rows(i)) + "\n")
    return root


def good_preds(n: int = 20) -> list[Prediction]:
    return [Prediction(id=f"g{i}", label="positive" if i % 3 else "negative", ticker="AAA" if i % 2 else "BBB",
                       date=DAYS[i], probabilities={"positive": 0.7, "negative": 0.2, "neutral": 0.1}
                       if i % 3 else {"positive": 0.1, "negative": 0.8, "neutral": 0.1}) for i in range(n)]


def run(tmp_path: Path, preds: list[Prediction] | Path, prices: Path, *extra: str) -> tuple[int, str, Path]:
    path = preds if isinstance(preds, Path) else tmp_path / "preds.jsonl"
    if not isinstance(preds, Path):
        write_jsonl(path, preds)
    out = tmp_path / "out"
    rc = main(["backtest", "--predictions", str(path), "--prices", str(prices), "--out", str(out),
               "--random-sims", "5", "--bootstrap-samples", "20", *extra])
    return rc, out.name, out


def one_line_error(capsys: pytest.CaptureFixture, rc: int) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "Traceback" not in err and err.startswith("fintune backtest: error:"), err
    return err


@pytest.mark.parametrize("label", ["pos", "Positive.", "banana", "bullish?", "U1 ", "yes"])
def test_unknown_label_is_an_error_never_neutral(tmp_path: Path, prices: Path, capsys, label: str):
    preds = [*good_preds(), Prediction(id="odd", label=label, ticker="AAA", date=DAYS[21])]
    rc, _, out = run(tmp_path, preds, prices)
    err = one_line_error(capsys, rc)
    assert "preds.jsonl: prediction 'odd': field 'label'" in err and repr(label) in err and "--max-invalid-rate" in err
    assert not out.exists()


@pytest.mark.parametrize("probs, what", [
    ({"Positive ": 0.7, "negative": 0.3}, "unknown key 'Positive '"),
    ({"pos": 0.7, "negative": 0.3}, "unknown key 'pos'"),
    ({"positive": 1.5, "negative": -0.5}, "'probabilities.positive' is 1.5, not in [0, 1]"),
    ({"positive": 0.5, "negative": -0.1, "neutral": 0.6}, "'probabilities.negative' is -0.1"),
    ({"positive": 0.5, "negative": 0.2}, "sums to 0.7, not 1"),
    ({"positive": 0.9, "negative": 0.4}, "sums to 1.3, not 1"),
])
def test_bad_probabilities_are_rejected(tmp_path: Path, prices: Path, capsys, probs: dict, what: str):
    preds = [*good_preds(), Prediction(id="odd", label="positive", ticker="AAA", date=DAYS[21], probabilities=probs)]
    err = one_line_error(capsys, run(tmp_path, preds, prices)[0])
    assert "prediction 'odd'" in err and what in err


def test_max_invalid_rate_counts_and_reports_below_the_threshold(tmp_path: Path, prices: Path, capsys):
    preds = [*good_preds(), Prediction(id="odd", label="banana", ticker="AAA", date=DAYS[21]),
             Prediction(id="odd2", label="positive", ticker="AAA", date=DAYS[22],
                        probabilities={"positive": 0.2, "negative": 0.2})]
    rc, _, out = run(tmp_path, preds, prices, "--max-invalid-rate", "0.1")
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["signals"]["unknown_label"] == 1 and m["signals"]["bad_probabilities"] == 1
    assert m["signals"]["used"] == 20  # neither became a neutral signal
    with pytest.raises(SystemExit) as exc:  # argparse: usage line + one error line, exit 2
        main(["backtest", "--predictions", str(tmp_path / "preds.jsonl"), "--prices", str(prices), "--out",
              str(tmp_path / "o2"), "--max-invalid-rate", "1.5"])
    assert exc.value.code == 2 and "expected a number in [0, 1], got '1.5'" in capsys.readouterr().err


@pytest.mark.parametrize("row, field", [
    ("{d},inf,21,19,20,20,100", "'open' is inf"),
    ("{d},20,21,19,inf,20,100", "'close' is inf"),
    ("{d},20,21,19,20,Infinity,100", "'adj_close' is inf"),
    ("{d},20,21,-inf,20,20,100", "'low' is -inf"),
    ("{d},20,21,19,0,20,100", "'close' is 0.0 (not positive)"),
    ("{d},20,21,19,20,-3,100", "'adj_close' is -3.0 (not positive)"),
    ("{d},20,21,19,20,20,inf", "'volume' is inf"),
    ("{d},20,21,19,20,20,-5", "'volume' is -5.0"),
])
def test_non_finite_or_non_positive_prices_are_errors(tmp_path: Path, prices: Path, capsys, row: str, field: str):
    rows = price_rows(0)
    rows[10] = row.format(d=DAYS[10])
    (prices / "AAA.csv").write_text(HEADER + "\n".join(rows) + "\n")
    err = one_line_error(capsys, run(tmp_path, good_preds(), prices)[0])
    assert f"AAA.csv row 12: field {field}" in err


@pytest.mark.parametrize("content, what", [
    (b"", "empty file"),
    (HEADER.encode(), "no price rows"),
    (b"\xff\xfe\x00garbage\x80\n", "not UTF-8"),
])
def test_empty_or_unreadable_csv_prices(tmp_path: Path, prices: Path, capsys, content: bytes, what: str):
    (prices / "AAA.csv").write_bytes(content)
    err = one_line_error(capsys, run(tmp_path, good_preds(), prices)[0])
    assert "AAA.csv" in err and what in err


@pytest.mark.parametrize("content, what", [
    (b"", "empty file"),
    (b"date,ticker,open\n2015-01-05,AAA,1\n", "not a readable parquet file"),
    (b"PAR1\x00\x01garbage", "not a readable parquet file"),
    (bytes(range(256)) * 4, "not a readable parquet file"),
])
def test_empty_or_non_parquet_long_file(tmp_path: Path, capsys, content: bytes, what: str):
    f = tmp_path / "prices.parquet"
    f.write_bytes(content)
    err = one_line_error(capsys, run(tmp_path, good_preds(), f)[0])
    assert "prices.parquet" in err and what in err


def long_frame() -> pd.DataFrame:
    rows = []
    for t in ("AAA", "BBB"):
        for r in price_rows(0):
            d, o, h, lo, c, a, v = r.split(",")
            rows.append({"date": d, "ticker": t, "open": float(o), "high": float(h), "low": float(lo),
                         "close": float(c), "adj_close": float(a), "volume": float(v)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("column, value, row, what", [
    ("ticker", 1234, 0, "field 'ticker' is 1234 (int), not a ticker string"),
    ("ticker", 12.5, 0, "field 'ticker' is 12.5 (float), not a ticker string"),
    ("ticker", None, 3, "not a ticker string"),
    ("date", 20150105, 0, "field 'date' is 20150105 (int), not a date string"),
    ("date", 1.5, 0, "field 'date' is 1.5 (float), not a date string"),
])
def test_number_where_ticker_or_date_string_expected(tmp_path: Path, capsys, column: str, value, row: int,
                                                     what: str):
    df = long_frame()
    if value is None:
        df.loc[row, column] = None  # a null cell in a string column
    else:
        df[column] = value  # a numeric column (parquet keeps the type)
    f = tmp_path / "prices.parquet"
    df.to_parquet(f)
    err = one_line_error(capsys, run(tmp_path, good_preds(), f)[0])
    assert "prices.parquet" in err and what in err and f"row {row}" in err


def strict_load(path: Path) -> dict:
    def refuse(c: str) -> None:
        raise AssertionError(f"non-strict JSON constant {c} in {path}")
    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.parametrize("case", ["flat_signal", "one_signal", "all_short", "neutral_only", "long_only_sqrt"])
def test_metrics_json_is_strict_json(tmp_path: Path, prices: Path, capsys, case: str):
    preds = {
        "flat_signal": [Prediction(id=f"n{i}", label="neutral", ticker="AAA", date=DAYS[i]) for i in range(5)]
        + [Prediction(id="p", label="positive", ticker="AAA", date=DAYS[30])],
        "one_signal": [Prediction(id="p", label="positive", ticker="AAA", date=DAYS[38])],
        "all_short": [Prediction(id=f"s{i}", label="negative", ticker="BBB", date=DAYS[i]) for i in range(30)],
        "neutral_only": [Prediction(id=f"n{i}", label="neutral", ticker="AAA", date=DAYS[i]) for i in range(30)],
        "long_only_sqrt": good_preds(30),
    }[case]
    extra = ("--strategy", "long_short") if case == "all_short" else ()
    extra += ("--slippage-model", "sqrt") if case == "long_only_sqrt" else ()
    rc, _, out = run(tmp_path, preds, prices, *extra)
    assert rc == 0, capsys.readouterr().err
    m = strict_load(out / "metrics.json")
    for key in ("psr", "dsr", "n_trials"):
        assert key in m["statistics"]
    assert m["model_cutoff"]["status"] in ("ok", "warning", "unknown")
    strict_load(out / "manifest.json")
    for line in (tmp_path / "backtest_trials.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(c))


@pytest.mark.parametrize("suffix, row", [(".parquet", 45), (".csv", 47)])
def test_long_file_errors_name_the_file_row(tmp_path: Path, capsys, suffix: str, row: int):
    df = long_frame()
    df.loc[45, "close"] = np.inf  # a BBB row: reported as the file's row, not the row within BBB
    f = tmp_path / f"prices{suffix}"
    df.to_parquet(f) if suffix == ".parquet" else df.to_csv(f, index=False)
    err = one_line_error(capsys, run(tmp_path, good_preds(), f)[0])
    assert f"prices{suffix} [BBB] row {row}: field 'close' is inf" in err
