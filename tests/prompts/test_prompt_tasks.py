"""Task formats: messages per format, answer texts, and that every answer parses back to its label."""

from __future__ import annotations

import pytest

from fintune.errors import FintuneError
from fintune.labels import FORECAST_BINS, SENTIMENT
from fintune.prompts.parse import parse_entities, parse_forecast, parse_label, parse_structured
from fintune.prompts.tasks import NER_TYPES, answer_text, build_messages
from fintune.prompts.templates import render_messages
from fintune.records import Example

NEWS = Example(
    id="fpb-1", text="Operating profit rose to EUR 13.1 mn.", label="positive", source="phrasebank"
)


def test_label_format_fingpt_style():
    messages = build_messages(NEWS, "label", SENTIMENT)
    assert messages == [
        {
            "role": "user",
            "content": "Instruction: What is the sentiment of this news? Please choose an answer from "
            "{negative/neutral/positive}.\nInput: Operating profit rose to EUR 13.1 mn.",
        },
        {"role": "assistant", "content": "positive"},
    ]
    assert build_messages(NEWS, "label", SENTIMENT, with_answer=False) == messages[:1]
    with_system = build_messages(
        NEWS, "label", ["bearish", "bullish"], system_prompt="Be brief.", with_answer=False
    )
    assert with_system[0] == {"role": "system", "content": "Be brief."}
    assert "{bearish/bullish}" in with_system[1]["content"]


def test_unlabelled_example_has_no_answer():
    ex = Example(id="u1", text="Shares were flat.")
    assert [m["role"] for m in build_messages(ex, "structured", SENTIMENT)] == ["user"]


def test_structured_answer_never_invents_fields():
    assert build_messages(NEWS, "structured", SENTIMENT)[-1]["content"] == "SENTIMENT: positive"
    teacher = Example(
        id="s1",
        text="Profit doubled.",
        label="positive",
        extra={"confidence": 0.9, "analysis": "Profit doubled year on year."},
    )
    answer = build_messages(teacher, "structured", SENTIMENT)[-1]["content"]
    assert answer == "SENTIMENT: positive\nCONFIDENCE: 0.90\nANALYSIS: Profit doubled year on year."
    assert parse_structured(answer, SENTIMENT) == {
        "sentiment": "positive",
        "confidence": 0.9,
        "analysis": "Profit doubled year on year.",
        "confidence_level": None,
        "expected_move": None,
    }
    assert "SENTIMENT: <answer>" in build_messages(teacher, "structured", SENTIMENT)[0]["content"]


@pytest.mark.parametrize("label", SENTIMENT)
def test_answers_parse_back(label):
    assert parse_label(answer_text(label, "label"), SENTIMENT) == label
    assert parse_structured(answer_text(label, "structured", {}), SENTIMENT)["sentiment"] == label


@pytest.mark.parametrize("bin_label", FORECAST_BINS)
def test_forecaster_minimal_answer_parses_back(bin_label):
    assert parse_forecast(answer_text(bin_label, "forecaster", {}))["bin"] == bin_label


FORECAST_ANSWER = (
    "[Positive Developments]:\n1. Strong quarter.\n\n[Potential Concerns]:\n1. Valuation.\n\n"
    "[Prediction & Analysis]:\nPrediction: up by 2-3%\nAnalysis: Earnings momentum."
)


def test_forecaster_uses_upstream_prompt_and_target_answer():
    ex = Example(
        id="f1",
        text="[Company Introduction]:\nApple ...\nPredict next week.",
        label="U3",
        ticker="AAPL",
        extra={"answer": FORECAST_ANSWER},
    )
    messages = build_messages(ex, "forecaster", FORECAST_BINS, system_prompt="You are a seasoned analyst.")
    assert messages[1] == {"role": "user", "content": ex.text}
    assert messages[2] == {"role": "assistant", "content": FORECAST_ANSWER}
    bad = Example(id="f2", text="...", label="D1", extra={"answer": FORECAST_ANSWER})
    with pytest.raises(
        FintuneError, match="example 'f2': extra\\['answer'\\] predicts U3 but the label is 'D1'"
    ):
        build_messages(bad, "forecaster", FORECAST_BINS)


def test_headlines_needs_question():
    ex = Example(
        id="g1",
        text="Gold prices rise on weak dollar",
        label="yes",
        extra={"question": "Does the news headline talk about price going up?"},
    )
    messages = build_messages(ex, "headlines", None)
    assert messages[0]["content"] == (
        "Instruction: Does the news headline talk about price going up? Please choose "
        "an answer from {no/yes}.\nInput: Gold prices rise on weak dollar"
    )
    assert messages[1]["content"] == "yes"
    with pytest.raises(FintuneError, match=r"example 'g2': extra\['question'\]"):
        build_messages(Example(id="g2", text="Gold flat", label="no"), "headlines", None)


def test_ner_format_round_trip():
    ex = Example(
        id="n1",
        text="Tim Cook runs Apple in Cupertino.",
        extra={"entities": [["Tim Cook", "PER"], {"text": "Apple", "type": "ORG"}, ("Cupertino", "LOC")]},
    )
    messages = build_messages(ex, "ner", None)
    assert "PER, ORG, LOC, MISC" in messages[0]["content"]
    assert messages[1]["content"] == "Tim Cook, PER\nApple, ORG\nCupertino, LOC"
    assert parse_entities(messages[1]["content"], NER_TYPES) == [
        ("Tim Cook", "PER"),
        ("Apple", "ORG"),
        ("Cupertino", "LOC"),
    ]
    empty = Example(id="n2", text="Nothing here.", extra={"entities": []})
    assert build_messages(empty, "ner", None)[1]["content"] == "None"
    with pytest.raises(FintuneError, match=r"entities'\]\[0\]"):
        build_messages(Example(id="n3", text="x", extra={"entities": [["Apple"]]}), "ner", None)


def test_bad_inputs_name_the_example():
    with pytest.raises(FintuneError, match="example 'fpb-1': unknown format 'xml'"):
        build_messages(NEWS, "xml", SENTIMENT)
    with pytest.raises(FintuneError, match="example 'e': field 'text' is empty"):
        build_messages(Example(id="e", text="  "), "label", SENTIMENT)
    with pytest.raises(FintuneError, match="label 'bullish' is not in the label set"):
        build_messages(Example(id="b", text="x", label="bullish"), "label", SENTIMENT)
    with pytest.raises(FintuneError, match="confidence"):
        build_messages(
            Example(id="c", text="x", label="positive", extra={"confidence": 7}), "structured", SENTIMENT
        )


def test_text_format_is_raw_text():
    ex = Example(id="t1", text="10-K excerpt: revenue grew.", label=None)
    assert build_messages(ex, "text", None) == [{"role": "user", "content": ex.text}]


@pytest.mark.parametrize("template", ["llama2", "llama3", "deepseek-r1-distill", "chatml"])
def test_task_messages_render_with_every_template(template):
    prompt, completion = render_messages(build_messages(NEWS, "label", SENTIMENT), template)
    assert NEWS.text in prompt and "positive" in completion and NEWS.text not in completion


@pytest.mark.shared
def test_label_format_reproduces_fingpt_prompts(shared_data):
    """Every FinLoRA/FinGPT FPB test prompt is our user turn + FinGPT's trailing "\\nAnswer: ", and every target
    parses back to itself."""
    import json

    path = shared_data / "finlora_instruction_test_sets" / "fpb_test.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) == 1212  # PROVENANCE.md count
    for i, row in enumerate(rows):
        text = row["context"].split("\nInput: ", 1)[1].removesuffix("\nAnswer: ")
        messages = build_messages(Example(id=f"fpb-{i}", text=text, label=row["target"]), "label", SENTIMENT)
        assert messages[0]["content"] + "\nAnswer: " == row["context"], i
        assert parse_label(messages[1]["content"], SENTIMENT) == row["target"]


def test_forecaster_answer_text_per_label_for_scoring():
    extra = {"answer": FORECAST_ANSWER}
    assert answer_text("U3", "forecaster", extra) == FORECAST_ANSWER
    # another label never borrows the gold answer's developments/analysis
    assert answer_text("D2", "forecaster", extra) == "[Prediction & Analysis]:\nPrediction: down by 1-2%"
