"""Class 5: every numeric flag is validated (argparse types from fintune.cliargs), with a one-line error."""

from __future__ import annotations

import argparse

import pytest
from safety_helpers import one_line_error

from fintune.cliargs import non_negative_int, port, positive_int, probability


@pytest.mark.parametrize(("argv", "flag"), [
    (["eval", "--data", "d", "--out", "o", "--limit", "0"], "--limit"),
    (["eval", "--data", "d", "--out", "o", "--bootstrap-samples", "-5"], "--bootstrap-samples"),
    (["eval", "--data", "d", "--out", "o", "--batch-size", "0"], "--batch-size"),
    (["compare", "a", "--out", "o", "--bootstrap-samples", "-1"], "--bootstrap-samples"),
    (["report", "a", "--out", "o", "--bootstrap-samples", "x"], "--bootstrap-samples"),
    (["analyze", "hi", "--batch-size", "-3"], "--batch-size"),
    (["serve", "--port", "70000"], "--port"),
    (["serve", "--max-batch", "0"], "--max-batch"),
    (["serve", "--wait-ms", "nan"], "--wait-ms"),
    (["serve", "--max-queue", "0"], "--max-queue"),
    (["synth", "--out", "o", "--hard-fraction", "1.5"], "--hard-fraction"),
    (["synth", "--out", "o", "--n", "0"], "--n"),
    (["synth", "--out", "o", "--news-impact", "inf"], "--news-impact"),
    (["sweep", "r", "--space", "s", "--out", "o", "--trials", "0"], "--trials"),
    (["augment", "--input", "i", "--out", "o", "--near-dup-threshold", "2"], "--near-dup-threshold"),
    (["augment", "--input", "i", "--out", "o", "--rpm", "-1"], "--rpm"),
    (["collect", "--tickers", "A", "--start", "2020-01-01", "--end", "2020-01-02", "--out", "o",
      "--requests-per-minute", "-1"], "--requests-per-minute"),
    (["demo", "--max-steps", "0"], "--max-steps"),
    (["plan", "r", "--trained-fraction", "0"], "--trained-fraction"),
])
def test_bad_numbers_are_refused_before_any_work(cli, argv: list[str], flag: str) -> None:
    line = one_line_error(cli(*argv))
    assert f"argument {flag}" in line and "see `fintune" in line


@pytest.mark.parametrize(("parse", "good", "bad"), [
    (positive_int, ["1", "64"], ["0", "-1", "1.5", "x", ""]),
    (non_negative_int, ["0", "7"], ["-1", "nan"]),
    (probability, ["0", "0.5", "1"], ["-0.1", "1.01", "nan", "inf"]),
    (port, ["0", "8000", "65535"], ["-1", "65536"]),
])
def test_argument_types(parse, good: list[str], bad: list[str]) -> None:
    for text in good:
        parse(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_eval_api_rejects_limit_zero(tmp_path) -> None:
    from fintune.errors import FintuneError
    from fintune.evaluate import run_eval

    with pytest.raises(FintuneError, match="--limit 0: must be >= 1"):
        run_eval(None, tmp_path, tmp_path / "o", baseline="majority", limit=0)
    with pytest.raises(FintuneError, match="--bootstrap-samples -5"):
        run_eval(None, tmp_path, tmp_path / "o", baseline="majority", bootstrap_samples=-5)


@pytest.mark.parametrize(("flag", "value"), [("--holding-days", "0"), ("--threshold", "-0.5"), ("--commission-bps", "-1"),
                                             ("--max-volume-share", "0"), ("--book-size", "nan")])
def test_backtest_numbers(cli, flag: str, value: str) -> None:
    line = one_line_error(cli("backtest", "--predictions", "p", "--prices", "q", "--out", "o", flag, value))
    assert f"argument {flag}" in line
