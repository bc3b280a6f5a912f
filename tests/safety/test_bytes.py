"""Class 3: byte- and type-level faults are one-line errors naming file, line/row and field, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safety_helpers import one_line_error

from fintune.analyze import read_input_rows
from fintune.data.tabular import csv_rows
from fintune.errors import FintuneError
from fintune.records import iter_jsonl, read_examples, read_predictions


def test_invalid_utf8_in_jsonl_names_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "bad \xc3\x28 byte"}\n')
    with pytest.raises(FintuneError, match=r"in\.jsonl:2: not valid UTF-8 \(byte 26 of the line"):
        list(iter_jsonl(path))
    with pytest.raises(FintuneError, match=r"in\.jsonl:2: not valid UTF-8"):
        list(read_input_rows(path))


def test_invalid_utf8_in_analyze_csv(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,text\n1,fine\n2,caf\xe9 closed\n")
    with pytest.raises(FintuneError, match=r"in\.csv:3: not valid UTF-8"):
        list(read_input_rows(path))


def test_csv_field_over_128kb_is_read_and_a_huge_one_reported(tmp_path: Path) -> None:
    long_text = "revenue rose " * 20_000  # ~260 KB, over Python's default csv field limit
    path = tmp_path / "long.csv"
    path.write_text(f'text,label\n"{long_text}",positive\n')
    rows = list(csv_rows(path))
    assert len(rows[0][1]["text"]) == len(long_text)
    items = list(read_input_rows(path.with_name("long.csv")))
    assert items[0].text == long_text
    huge = tmp_path / "huge.csv"
    huge.write_text('text,label\n"' + "x" * (17 * 1024 * 1024) + '",positive\n')
    with pytest.raises(FintuneError, match=r"huge\.csv:\d+: unreadable CSV .*field larger than field limit"):
        list(csv_rows(huge))


@pytest.mark.parametrize("escaped", ['"\\ud800"', '"a\\udfffb"', '"emoji \\ud83d"'])
def test_lone_surrogate_in_a_text_names_the_field(tmp_path: Path, escaped: str) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "x1", "text": ' + escaped + '}\n')
    with pytest.raises(FintuneError, match=r"s\.jsonl:1: field 'text' holds a lone surrogate"):
        read_examples(path)


def test_nested_surrogate_and_non_finite_numbers(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "1", "label": "positive", "extra": {"note": "\\udc80"}}\n')
    with pytest.raises(FintuneError, match=r"field 'extra\.note' holds a lone surrogate"):
        read_predictions(path)
    path.write_text('{"id": "1", "label": "positive", "confidence": NaN}\n')
    with pytest.raises(FintuneError, match=r"p\.jsonl:1: field 'confidence' is nan"):
        read_predictions(path)


@pytest.mark.parametrize(("row", "field"), [
    ({"id": "1", "label": "positive", "ticker": 123}, "ticker"),
    ({"id": "1", "label": "positive", "date": 20230105}, "date"),
    ({"id": "1", "label": 1}, "label"),
    ({"id": "1", "label": "positive", "gold": 2}, "gold"),
])
def test_number_where_a_string_field_is_expected_in_predictions(tmp_path: Path, row: dict, field: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(FintuneError, match=rf"p\.jsonl:1: field '{field}' must be a string"):
        read_predictions(path)


def test_analyze_input_fields_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    for row, field in (({"text": 5}, "text"), ({"text": "ok", "ticker": 7}, "ticker"),
                       ({"text": "ok", "date": 20230101}, "date")):
        path.write_text(json.dumps(row) + "\n")
        with pytest.raises(FintuneError, match=rf"in\.jsonl:1: field '{field}' must be a string"):
            list(read_input_rows(path))


def test_paths_of_the_wrong_kind_are_one_line_errors(tmp_path: Path, cli) -> None:
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(FintuneError, match="is a directory"):
        list(iter_jsonl(tmp_path / "d.jsonl"))
    line = one_line_error(cli("analyze", "--file", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "o.jsonl"),
                              "--model", str(tmp_path / "no-model")))
    assert "is a directory" in line
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "profit rose"}\n')
    line = one_line_error(cli("analyze", "--file", str(src), "--out", str(tmp_path), "--model", "x"))
    assert "is a directory" in line
    line = one_line_error(cli("analyze", "--file", str(src), "--out", str(src), "--model", "x"))
    assert "is the input file" in line
