"""Instruction rows (``instruction, input, output``; the Llama-3.2 sentiment seed's shape) as sentiment Examples,
and declared label vocabularies with their canonical mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.reference.reference_rows import SEED_INSTRUCTION, seed_rows

from fintune.cli import main
from fintune.data.registry import load_source
from fintune.errors import FintuneError
from fintune.labels import SENTIMENT, canonical_map, labels_for_task, normalize_label
from fintune.recipe import SourceConfig, load_recipe
from fintune.records import Example

SEED = labels_for_task("sentiment", ["BEARISH", "NEUTRAL", "BULLISH"])


def _seed_file(tmp_path: Path, rows: list[dict] | None = None, name: str = "seed.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in (rows or seed_rows())), encoding="utf-8")
    return path


@pytest.mark.parametrize("source", ["jsonl", "alpaca"])
def test_seed_rows_load_with_the_sentiment_line_as_label(tmp_path: Path, source: str) -> None:
    examples = load_source(SourceConfig(name=source, path=str(_seed_file(tmp_path))), "sentiment", SEED)
    assert [e.label for e in examples] == ["BULLISH", "BEARISH", "NEUTRAL", "BULLISH"]
    first = examples[0]
    assert first.text == "Apple reports record Q4 earnings, beating expectations by 15%"
    assert first.extra["confidence"] == "HIGH" and first.extra["instruction"] == SEED_INSTRUCTION
    assert first.extra["analysis"] == "Stock likely to rise 3-5% in next session"
    assert examples[3].extra["confidence"] == 0.8


def test_seed_answer_is_trained_back_byte_for_byte(tmp_path: Path) -> None:
    from fintune.prompts.tasks import build_messages

    examples = load_source(SourceConfig(name="alpaca", path=str(_seed_file(tmp_path))), "sentiment", SEED)
    for example, row in zip(examples, seed_rows(), strict=True):
        assert build_messages(example, "structured", SEED)[-1]["content"] == row["output"].replace(
            "CONFIDENCE: 0.8", "CONFIDENCE: 0.80")


def test_csv_instruction_rows_and_label_word_answers(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "fingpt.csv"
    pd.DataFrame([{"instruction": "What is the sentiment of this news?", "input": "Profit rose.",
                   "output": "positive"},
                  {"instruction": "What is the sentiment of this news?", "input": "", "output": "negative"}]
                 ).to_csv(path, index=False)
    examples = load_source(SourceConfig(name="alpaca", path=str(path)), "sentiment", None)
    assert [(e.text, e.label) for e in examples] == [("Profit rose.", "positive"),
                                                     ("What is the sentiment of this news?", "negative")]


def test_bad_answers_are_one_line_errors_naming_line_and_field(tmp_path: Path) -> None:
    rows = seed_rows()
    rows[2] = {**rows[2], "output": "SENTIMENT: SIDEWAYS\nCONFIDENCE: HIGH"}
    path = _seed_file(tmp_path, rows)
    with pytest.raises(FintuneError, match=rf"{path}:3 field 'output': no 'SENTIMENT: <label>' line"):
        load_source(SourceConfig(name="jsonl", path=str(path)), "sentiment", SEED)
    rows[2] = {**seed_rows()[2], "output": "SENTIMENT: NEUTRAL\nCONFIDENCE: very high"}
    with pytest.raises(FintuneError, match=r":3 field 'output'"):
        load_source(SourceConfig(name="alpaca", path=str(_seed_file(tmp_path, rows))), "sentiment", SEED)
    with pytest.raises(FintuneError, match=r":1: missing field\(s\) \['output'\]"):
        load_source(SourceConfig(name="alpaca", path=str(_seed_file(tmp_path, [{"instruction": "x", "input": "y"}]))),
                    "sentiment", SEED)


def test_fintune_data_on_seed_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = _seed_file(tmp_path, seed_rows() * 1)
    base = ["--set", f"data.sources=[{{name: jsonl, path: {seed}}}]", "--set", "data.template=llama3",
            "--set", "data.split.method=random", "--set", "data.split.test_size=0.25", "--set", "data.split.val_size=0"]
    # the default label set cannot hold BULLISH: a one-line error that says to declare the vocabulary
    assert main(["data", "llama-3.2-3b/sentiment_qlora", "--out", str(tmp_path / "a"), *base,
                 "--set", "data.labels=null", "--set", "data.canonical_labels=null"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{seed}:1 field 'output'" in err and "data.labels" in err
    assert main(["data", "llama-3.2-3b/sentiment_qlora", "--out", str(tmp_path / "b"), *base]) == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["labels"] == ["BEARISH", "NEUTRAL", "BULLISH"] and manifest["loaded"] == 4


# ------------------------------------------------------------------ vocabularies


def test_canonical_mapping_loads_canonical_sources_into_a_declared_vocabulary() -> None:
    assert normalize_label("positive", SEED, "f:1") == "BULLISH"
    assert normalize_label("Bearish", SEED, "f:2") == "BEARISH"
    custom = labels_for_task("sentiment", ["sell", "hold", "buy"], {"sell": "negative", "hold": "neutral",
                                                                  "buy": "positive"})
    assert normalize_label("negative", custom, "f:3") == "sell" and canonical_map("sentiment", custom)["buy"] == "positive"
    with pytest.raises(FintuneError, match="unknown label 'negative'"):  # no mapping declared: never a guess
        normalize_label("negative", ("sell", "hold", "buy"), "f:4")
    with pytest.raises(FintuneError, match="unknown label 'bullish'"):  # the default set stays strict
        normalize_label("bullish", SENTIMENT, "f:5")


@pytest.mark.parametrize(("labels", "mapping", "message"), [
    (["up", "down"], {"up": "positive", "down": "positive"}, "several labels mean"),
    (["up", "down"], {"up": "bullish"}, "maps to 'bullish'"),
    (["up", "down"], {"sideways": "neutral"}, "not in data.labels"),
])
def test_bad_canonical_mappings_are_errors(labels, mapping, message) -> None:
    with pytest.raises(FintuneError, match=message):
        labels_for_task("sentiment", labels, mapping)


def test_synth_loads_into_the_seed_vocabulary() -> None:
    examples = load_source(SourceConfig(name="synth", options={"n": 30, "seed": 1}), "sentiment", SEED)
    assert {e.label for e in examples} == {"BEARISH", "NEUTRAL", "BULLISH"}
    assert all(isinstance(e, Example) and e.extra.get("confidence") is not None for e in examples)


def test_template_date_is_validated() -> None:
    with pytest.raises(FintuneError, match="data.template_date"):
        load_recipe("llama-3.2-3b/sentiment_qlora", ["data.template_date=2024-07-26"])
    assert load_recipe("llama-3.2-3b/sentiment_qlora").data.template_date == "26 Jul 2024"
