"""Strict parsers: accept/reject tables, forecaster bins cross-checked against FinGPT's own evaluation code."""

from __future__ import annotations

import re

import pytest

from fintune.errors import FintuneError
from fintune.labels import FORECAST_BINS, HEADLINE_ANSWERS, SENTIMENT
from fintune.prompts.parse import (
    bin_midpoint,
    bin_to_text,
    move_to_bin,
    parse_entities,
    parse_forecast,
    parse_label,
    parse_structured,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("positive", "positive"),
        ("Positive.", "positive"),
        ("  NEGATIVE  \n", "negative"),
        ("neutral!", "neutral"),
        ('"positive"', "positive"),
        ("**negative**", "negative"),
        ("\n\nneutral\nBecause revenue was flat.", "neutral"),
        ("The sentiment is positive", None),
        ("positive because sales rose", None),
        ("not positive", None),
        ("bullish", None),
        ("SENTIMENT: positive", None),
        ("", None),
        ("   \n  ", None),
        ("positive/negative", None),
    ],
)
def test_parse_label(text, expected):
    assert parse_label(text, SENTIMENT) == expected


def test_parse_label_yes_no():
    assert parse_label("Yes.", HEADLINE_ANSWERS) == "yes"
    assert parse_label("No", HEADLINE_ANSWERS) == "no"
    assert parse_label("Maybe", HEADLINE_ANSWERS) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("SENTIMENT: positive", {"sentiment": "positive", "confidence": None, "analysis": None}),
        (
            "sentiment: Negative.\nconfidence: 0.9\nanalysis: Margins shrank.",
            {"sentiment": "negative", "confidence": 0.9, "analysis": "Margins shrank."},
        ),
        (
            "SENTIMENT: neutral\nCONFIDENCE: 85%",
            {"sentiment": "neutral", "confidence": 0.85, "analysis": None},
        ),
        (
            "SENTIMENT: neutral\n\nANALYSIS: first line\nsecond line\nCONFIDENCE: 1",
            {"sentiment": "neutral", "confidence": 1.0, "analysis": "first line\nsecond line"},
        ),
        ("  SENTIMENT :  positive  \n", {"sentiment": "positive", "confidence": None, "analysis": None}),
    ],
)
def test_parse_structured_accepts(text, expected):
    assert parse_structured(text, SENTIMENT) == {**expected, "confidence_level": None, "expected_move": None}


SEED_VOCAB = ("bearish", "neutral", "bullish")


def test_parse_structured_accepts_the_seed_answer():
    """The Llama-3.2 sentiment seed's own answer: upper-case label of a declared vocabulary, a confidence level and
    an expected move in the analysis."""
    text = "SENTIMENT: BULLISH\nCONFIDENCE: HIGH\nANALYSIS: Stock likely to rise 3-5% in next session"
    assert parse_structured(text, SEED_VOCAB) == {
        "sentiment": "bullish", "confidence": 1.0, "confidence_level": "HIGH",
        "analysis": "Stock likely to rise 3-5% in next session", "expected_move": 4.0}


@pytest.mark.parametrize(("level", "number"), [("LOW", 1 / 3), ("medium", 2 / 3), ("High.", 1.0)])
def test_confidence_levels_map_to_documented_numbers(level, number):
    parsed = parse_structured(f"SENTIMENT: BEARISH\nCONFIDENCE: {level}", SEED_VOCAB)
    assert parsed["confidence"] == pytest.approx(number)
    assert parsed["confidence_level"] == level.rstrip(".").upper()


@pytest.mark.parametrize("conf", ["very high", "HIGHEST", "high-ish", "3", "H"])
def test_confidence_that_is_neither_level_nor_number_is_invalid(conf):
    assert parse_structured(f"SENTIMENT: BEARISH\nCONFIDENCE: {conf}", SEED_VOCAB) is None


@pytest.mark.parametrize(("analysis", "move"), [
    ("Stock likely to rise 3-5% in next session", 4.0),
    ("Shares could fall by 2% tomorrow.", -2.0),
    ("Expect the stock to drop 1 to 2 %.", -1.5),
    ("Up 1.5% is likely.", 1.5),
    ("Mixed: may rise 2% or fall 3%.", None),  # two different moves: no guess
    ("Guidance was cut.", None),
    ("Sales gained 10% last year.", None),  # a past fact, not a forecast verb
])
def test_expected_move_from_the_analysis(analysis, move):
    parsed = parse_structured(f"SENTIMENT: NEUTRAL\nANALYSIS: {analysis}", SEED_VOCAB)
    assert parsed["expected_move"] == move


@pytest.mark.parametrize(
    "text",
    [
        "",
        "positive",
        "SENTIMENT: positive\nSENTIMENT: negative",  # two SENTIMENT lines, different labels
        "SENTIMENT: positive\nSENTIMENT: positive",  # repeated key, even if equal
        "SENTIMENT: bullish",  # label not in set
        "SENTIMENT: positive\nCONFIDENCE: 1.5",
        "SENTIMENT: positive\nCONFIDENCE: 85",  # >1 without a percent sign is ambiguous
        "SENTIMENT: positive\nCONFIDENCE: very high",
        "SENTIMENT: positive\nCONFIDENCE: -0.2",
        "Sure! Here is my answer.\nSENTIMENT: positive",  # free text before the keys
        "SENTIMENT: positive\nI think so.",  # free text not under ANALYSIS
        "CONFIDENCE: 0.9\nANALYSIS: no sentiment line",
        "SENTIMENT:",
    ],
)
def test_parse_structured_rejects(text):
    assert parse_structured(text, SENTIMENT) is None


# ------------------------------------------------------------------ forecaster


def _fingpt_parse_answer(answer: str):
    """FinGPT-Forecaster's parse_answer (fingpt/FinGPT_Forecaster/utils.py), copied verbatim as the reference."""
    match_res = re.match(
        r"^\s*\[[Pp]ositive [Dd]evelopments\]:\s*(.*)\s*\[[Pp]otential [Cc]oncerns\]:\s*(.*)\s*"
        r"\[[Pp]rediction (&|and) [Aa]nalysis\]:\s*(.*)\s*$",
        answer,
        flags=re.DOTALL,
    )
    if not match_res:
        return None
    pna = match_res.group(4)
    match_res = re.match(r"^Prediction:\s*(.*)\s*Analysis:\s*(.*)\s*$", pna, flags=re.DOTALL)
    if not match_res:
        return None
    pred, anal = match_res.group(1), match_res.group(2)
    if re.search(r"up|increase", pred.lower()):
        pred_bin = 1
    elif re.search(r"down|decrease|decline", pred.lower()):
        pred_bin = -1
    else:
        pred_bin = 0
    match_res = re.search(r"(\d)-(\d)%", pred)
    if not match_res:
        match_res = re.search(r"(?:more than )?(\d)+?%", pred)
    pred_margin = pred_bin * (int(match_res.group(1)) + 0.5) if match_res else 0.0
    return {"prediction": pred_margin, "prediction_binary": pred_bin, "analysis": anal}


def _answer(prediction: str) -> str:
    return (
        "[Positive Developments]:\n1. Record iPhone sales.\n2. Services growth.\n\n"
        "[Potential Concerns]:\n1. China demand.\n\n"
        f"[Prediction & Analysis]:\nPrediction: {prediction}\nAnalysis: Momentum should persist.\nMore text."
    )


@pytest.mark.parametrize("bin_label", FORECAST_BINS)
def test_forecast_bins_match_fingpt(bin_label):
    text = _answer(bin_to_text(bin_label))
    ours, ref = parse_forecast(text), _fingpt_parse_answer(text)
    assert ours["bin"] == bin_label
    assert ours["expected_move"] == pytest.approx(ref["prediction"]) == bin_midpoint(bin_label)
    assert ours["direction"] == ("up" if ref["prediction_binary"] == 1 else "down")
    assert ours["positive_developments"] == "1. Record iPhone sales.\n2. Services growth."
    assert ours["potential_concerns"] == "1. China demand."
    assert ours["analysis"] == "Momentum should persist.\nMore text."


def test_forecast_examples_from_the_issue():
    assert bin_to_text("U3") == "up by 2-3%" and bin_midpoint("U3") == 2.5
    assert bin_to_text("D5+") == "down by more than 5%" and bin_midpoint("D5+") == -5.5
    assert parse_forecast("Prediction: Up by 2-3%.")["expected_move"] == 2.5  # sections are optional


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[Positive Developments]:\n1. good\n[Prediction & Analysis]:\nAnalysis: no prediction line",
        "Prediction: up",  # no bin
        "Prediction: up by 2.5%",  # not a bin phrase
        "Prediction: sideways by 0-1%",
        "Prediction: up by 1-2%\nPrediction: down by 1-2%",  # two predictions
        "The stock will go up by 2-3%.",
    ],
)
def test_parse_forecast_rejects(text):
    assert parse_forecast(text) is None


@pytest.mark.parametrize(
    "ret, expected",
    [
        (0.0, "U1"),
        (0.004, "U1"),
        (0.01, "U1"),
        (0.0101, "U2"),
        (0.03, "U3"),
        (0.1 + 0.2 - 0.27, "U3"),
        (0.05, "U5"),
        (0.0501, "U5+"),
        (0.2, "U5+"),
        (-0.001, "D1"),
        (-0.025, "D3"),
        (-0.07, "D5+"),
    ],
)
def test_move_to_bin(ret, expected):
    assert move_to_bin(ret) == expected


def test_move_to_bin_agrees_with_fingpt_bin_mapping():
    import math

    def fingpt_bin_mapping(ret):  # fingpt/FinGPT_Forecaster/data.py
        up_down = "U" if ret >= 0 else "D"
        integer = math.ceil(abs(100 * ret))
        return up_down + (str(integer) if integer <= 5 else "5+")

    for ret in [0.0005 * k for k in range(-150, 151) if k != 0]:
        if abs(round(ret * 100, 9) - round(ret * 100)) < 1e-9:
            continue  # float noise at exact bin edges: we round first (test_move_to_bin pins those)
        assert move_to_bin(ret) == fingpt_bin_mapping(ret), ret


def test_bad_bins_raise():
    with pytest.raises(FintuneError, match="unknown forecast bin"):
        bin_to_text("U6")
    with pytest.raises(FintuneError, match="finite"):
        move_to_bin(float("nan"))


# ------------------------------------------------------------------ NER

TYPES = ("PER", "ORG", "LOC", "MISC")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("None", []),
        ("none.", []),
        ("Apple Inc, ORG\nTim Cook, per", [("Apple Inc", "ORG"), ("Tim Cook", "PER")]),
        ("Smith, Barney & Co, ORG", [("Smith, Barney & Co", "ORG")]),
        ("", None),
        ("Apple Inc (ORG)", None),
        ("Apple Inc, COMPANY", None),
        ("Apple Inc, ORG\nand more", None),
        (", ORG", None),
    ],
)
def test_parse_entities(text, expected):
    assert parse_entities(text, TYPES) == expected


def test_bin_to_text_agrees_with_fingpt_map_bin_label():
    def fingpt_map_bin_label(bin_lb):  # fingpt/FinGPT_Forecaster/prompt.py
        lb = bin_lb.replace("U", "up by ")
        lb = lb.replace("D", "down by ")
        lb = lb.replace("1", "0-1%")
        lb = lb.replace("2", "1-2%")
        lb = lb.replace("3", "2-3%")
        lb = lb.replace("4", "3-4%")
        if lb.endswith("+"):
            lb = lb.replace("5+", "more than 5%")
        else:
            lb = lb.replace("5", "4-5%")
        return lb

    for bin_label in FORECAST_BINS:
        assert bin_to_text(bin_label) == fingpt_map_bin_label(bin_label)


def test_forecast_same_line_variants_match_fingpt():
    text = (
        "[Positive Developments]: 1. Buybacks.\n[Potential Concerns]: 1. Debt.\n"
        "[Prediction & Analysis]: Prediction: down by 3-4%. Analysis: Leverage weighs."
    )
    ours, ref = parse_forecast(text), _fingpt_parse_answer(text)
    assert ours["bin"] == "D4" and ours["expected_move"] == ref["prediction"] == -3.5
    assert ours["positive_developments"] == "1. Buybacks." and ours["analysis"] == "Leverage weighs."
