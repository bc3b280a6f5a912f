"""Class 9: no non-finite number in an output -- JSON files and JSONL rows are strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fintune.artifacts import atomic_write_json, strict_json
from fintune.records import Prediction, read_predictions, write_jsonl


def _strict_load(path: Path):
    def refuse(name: str):
        raise AssertionError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_json_files_never_hold_nan_or_infinity(tmp_path: Path, value: float, capsys) -> None:
    path = atomic_write_json(tmp_path / "metrics.json", {"strategy": {"sharpe": value, "n": 3}, "xs": [1.0, value]})
    data = _strict_load(path)
    assert data == {"strategy": {"sharpe": None, "n": 3}, "xs": [1.0, None]}
    err = capsys.readouterr().err
    assert "metrics.json: 'strategy.sharpe'" in err and "'xs[1]'" in err


def test_jsonl_rows_are_strict_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [Prediction(id="1", label="positive", probabilities={"positive": 1.0}, confidence=math.nan,
                                  expected_move=math.inf)])
    row = _strict_load(path)
    assert row["confidence"] is None and row["expected_move"] is None
    assert read_predictions(path)[0].confidence is None


def test_non_finite_inputs_are_errors_naming_the_field(tmp_path: Path) -> None:
    from fintune.errors import FintuneError

    path = tmp_path / "p.jsonl"
    for token in ("NaN", "Infinity", "-Infinity"):
        path.write_text('{"id": "1", "label": "positive", "probabilities": {"positive": ' + token + "}}\n")
        with pytest.raises(FintuneError, match=r"p\.jsonl:1: field 'probabilities\.positive' is"):
            read_predictions(path)


def test_strict_json_keeps_finite_values_untouched() -> None:
    obj = {"a": 1, "b": [0.5, {"c": "x", "d": None}], "e": True}
    assert strict_json(obj, "w") == obj
