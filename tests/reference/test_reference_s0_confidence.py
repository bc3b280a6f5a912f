"""S0's CONFIDENCE round trip: a level (or number) the model writes becomes ``Prediction.confidence`` (the
documented number), survives the predictions file, and sizes the backtest's positions."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tests.reference.reference_chain import jsonl, run_verb

from fintune.labels import CONFIDENCE_LEVELS
from fintune.predict import predictions_from_generations
from fintune.records import read_predictions, write_jsonl

LABELS = ("BEARISH", "NEUTRAL", "BULLISH")
OUTPUTS = {
    "AAA": "SENTIMENT: BULLISH\nCONFIDENCE: HIGH\nANALYSIS: Stock likely to rise 3-5% in next session",
    "BBB": "SENTIMENT: BULLISH\nCONFIDENCE: LOW\nANALYSIS: Could drift up 1%",
    "CCC": "SENTIMENT: BEARISH\nCONFIDENCE: 0.5\nANALYSIS: Shares may fall 2-4% on the news",
    "DDD": "SENTIMENT: BULLISH\nCONFIDENCE: very sure",  # neither a level nor a number: invalid, no position
}


def _prices(directory: Path) -> Path:
    directory.mkdir()
    days = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]
    for ticker in OUTPUTS:
        with (directory / f"{ticker}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"])
            for k, day in enumerate(days):
                price = 100.0 + k
                w.writerow([day, price, price + 1, price - 1, price + 0.5, price + 0.5, 1000])
    return directory


def test_confidence_levels_round_trip_into_position_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"id": t, "ticker": t, "date": "2024-01-02", "label": "BULLISH"} for t in OUTPUTS]
    preds = predictions_from_generations(rows, list(OUTPUTS.values()), "structured", LABELS)
    write_jsonl(tmp_path / "predictions.jsonl", preds)
    back = {p.id: p for p in read_predictions(tmp_path / "predictions.jsonl")}
    assert back["AAA"].confidence == CONFIDENCE_LEVELS["HIGH"] == 1.0
    assert back["AAA"].extra["confidence_level"] == "HIGH" and back["AAA"].expected_move == 4.0
    assert back["BBB"].confidence == pytest.approx(1 / 3) and back["BBB"].expected_move == 1.0
    assert back["CCC"].confidence == 0.5 and "confidence_level" not in back["CCC"].extra
    assert back["CCC"].expected_move == -3.0
    assert back["DDD"].label == "invalid" and back["DDD"].confidence is None

    out = tmp_path / "bt"
    run_verb(capsys, "backtest", "--predictions", str(tmp_path / "predictions.jsonl"), "--prices",
             str(_prices(tmp_path / "prices")), "--out", str(out), "--strategy", "long_short", "--sizing",
             "confidence", "--weighting", "universe", "--bootstrap-samples", "0")
    with (out / "positions.csv").open() as fh:
        held = next(r for r in csv.DictReader(fh) if any(float(r[t]) for t in OUTPUTS))
    # universe weighting: each ticker a 1/4 sleeve, scaled by the stated confidence; invalid holds nothing
    assert float(held["AAA"]) == pytest.approx(0.25)
    assert float(held["BBB"]) == pytest.approx(0.25 / 3)
    assert float(held["CCC"]) == pytest.approx(-0.125)
    assert float(held["DDD"]) == 0.0
    assert jsonl(tmp_path / "predictions.jsonl")[0]["extra"]["confidence_level"] == "HIGH"
