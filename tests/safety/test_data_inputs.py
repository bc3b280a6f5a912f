"""Class 2: data never guesses -- text is a string, encodings are detected or declared, never mis-decoded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fintune.data.phrasebank import load_phrasebank
from fintune.data.tabular import ColumnMap, csv_rows, jsonl_rows, rows_to_examples
from fintune.errors import FintuneError
from fintune.recipe import SourceConfig

LABELS = ("negative", "neutral", "positive")


def _examples(file: Path, **cols):
    rows = jsonl_rows(file) if file.suffix == ".jsonl" else csv_rows(file)
    return rows_to_examples(rows, ColumnMap(**cols), LABELS, "jsonl", file.stem, str(file))


def _jsonl(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("bad", [12345, 3.5, {"nested": "dict"}, ["a", "list"], True])
def test_non_string_text_is_an_error_naming_file_line_field(tmp_path: Path, bad) -> None:
    path = _jsonl(tmp_path, [{"text": "profit rose", "label": "positive"}, {"text": bad, "label": "neutral"}])
    with pytest.raises(FintuneError, match=r"rows\.jsonl:2 column 'text': text must be a string"):
        _examples(path)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("ticker", 1234, "ticker must be a string"),
    ("ticker", ["AAPL"], "ticker must be a string"),
    ("date", 20230105, "date must be a string"),
    ("date", 1.7e9, "date must be a string"),
    ("date", {"y": 2023}, "date must be a string"),
])
def test_number_where_a_ticker_or_date_string_is_expected(tmp_path: Path, field: str, value, message: str) -> None:
    path = _jsonl(tmp_path, [{"text": "profit rose", "label": "positive", "ticker": "AAPL", "date": "2023-01-05",
                              field: value}])
    with pytest.raises(FintuneError, match=rf"rows\.jsonl:1 column '{field}': {message}"):
        _examples(path, ticker="ticker", date="date")


def _phrasebank(tmp_path: Path, text: str, encoding: str) -> Path:
    path = tmp_path / f"Sentences_{encoding}_50Agree.txt"
    path.write_bytes(text.encode(encoding))
    return path


def test_phrasebank_latin1_release_and_utf8_copy_read_the_same(tmp_path: Path) -> None:
    text = "Sales of Hyvinkää plant rose 5 % .@positive\nThe café in Zürich closed .@negative\n"
    latin = load_phrasebank(_phrasebank(tmp_path, text, "latin-1"))
    utf8 = load_phrasebank(_phrasebank(tmp_path, text, "utf-8"))
    assert [e.text for e in latin] == [e.text for e in utf8] == ["Sales of Hyvinkää plant rose 5 % .",
                                                                  "The café in Zürich closed ."]
    assert all("Ã" not in e.text for e in utf8)  # no mojibake
    bom = tmp_path / "Sentences_bom_50Agree.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load_phrasebank(bom)[0].text.startswith("Sales of Hyvinkää")


def test_declared_encoding_is_used_strictly(tmp_path: Path) -> None:
    utf8 = _phrasebank(tmp_path, "Zürich rose .@positive\n", "utf-8")
    assert load_phrasebank(utf8, encoding="utf-8")[0].text == "Zürich rose ."
    latin = _phrasebank(tmp_path, "Zürich rose .@positive\n", "latin-1")
    with pytest.raises(FintuneError, match=r"Sentences_latin-1_50Agree\.txt:1: not valid utf-8 text \(byte 1"):
        load_phrasebank(latin, encoding="utf-8")
    with pytest.raises(FintuneError, match="unknown encoding 'klingon'"):
        load_phrasebank(latin, encoding="klingon")


def test_csv_with_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes(b"text,label\nprofit rose,positive\nsales \xff\xfe fell,negative\n")
    with pytest.raises(FintuneError, match=r"rows\.csv:3: not valid utf-8 text"):
        _examples(path)
    cfg = SourceConfig(name="csv", path=str(path), options={"encoding": "latin-1"})
    from fintune.data.tabular import load_tabular_source

    assert load_tabular_source(cfg, "sentiment", LABELS)[1].text == "sales ÿþ fell"


@pytest.mark.parametrize("bad", [7, None, {"t": 1}, ["x"], "   "])
def test_fiqa_and_semeval_text_fields_must_be_strings(tmp_path: Path, bad) -> None:
    from fintune.data.fiqa import load_fiqa
    from fintune.data.semeval import load_semeval

    semeval = tmp_path / "SemEval2017Task5Headlines.json"
    semeval.write_text(json.dumps([{"id": 1, "company": "A", "title": "fine headline", "sentiment": 0.4},
                                   {"id": 2, "company": "B", "title": bad, "sentiment": 0.4}]))
    with pytest.raises(FintuneError, match=r"item 1: (missing )?field 'title'"):
        load_semeval(semeval, LABELS)
    fiqa = tmp_path / "fiqa.jsonl"
    fiqa.write_text(json.dumps({"id": "1", "sentence": bad, "sentiment_score": 0.3, "format": "post"}) + "\n")
    with pytest.raises(FintuneError, match=r"fiqa\.jsonl:1: (missing )?field 'sentence'"):
        load_fiqa(fiqa, LABELS)
