"""R1-distill ``<think>...</think>`` blocks: stripped before strict parsing, their length reported."""

from __future__ import annotations

import pytest

from fintune.predict import parse_generated, predictions_from_generations
from fintune.prompts.parse import split_thinking

ANSWER = "[Prediction & Analysis]:\nPrediction: Up by 2-3%\nAnalysis: Demand is strong."


@pytest.mark.parametrize("text, answer, thinking", [
    ("<think>\nRevenue rose, so up.\n</think>\n\n" + ANSWER, ANSWER, "Revenue rose, so up."),
    ("Revenue rose.\n</think>\n\n" + ANSWER, ANSWER, "Revenue rose."),  # the prompt already opened <think>
    ("  <think></think>" + ANSWER, ANSWER, ""),
    ("<think>\nstill reasoning when tokens ran out", "", "still reasoning when tokens ran out"),
    (ANSWER, ANSWER, None),
    ("Prediction: <think> is not a block here", "Prediction: <think> is not a block here", None),
])
def test_split_thinking(text: str, answer: str, thinking: str | None) -> None:
    assert split_thinking(text) == (answer, thinking)


def test_parsers_see_the_answer_after_thinking_and_predictions_count_it() -> None:
    text = "<think>\nup or down? up.\n</think>\n\n" + ANSWER
    parsed = parse_generated(text, "forecaster", None)
    assert parsed is not None and parsed["bin"] == "U3" and parsed["analysis"] == "Demand is strong."
    assert parse_generated("<think>\nunfinished", "forecaster", None) is None  # no answer: invalid
    assert parse_generated("<think>x</think>positive", "label", ["negative", "neutral", "positive"]) == {
        "label": "positive"}
    rows = [{"id": "a", "label": "U3"}, {"id": "b", "label": "U3"}, {"id": "c", "label": "U3"}]
    texts = [text, ANSWER, "<think>\nunfinished"]
    by_chars = predictions_from_generations(rows, texts, "forecaster", None)
    assert by_chars[0].extra["thinking"] == {"chars": len("up or down? up.")}
    assert "thinking" not in by_chars[1].extra
    assert by_chars[2].label == "invalid" and by_chars[2].extra["thinking"] == {"chars": len("unfinished")}
    by_tokens = predictions_from_generations(rows, texts, "forecaster", None, count_tokens=lambda t: len(t.split()))
    assert by_tokens[0].extra["thinking"] == {"tokens": 4} and by_tokens[0].raw_output == text


def test_thinking_summary_means_over_all_outputs() -> None:
    from fintune.evaluate.forecast import thinking_summary

    rows = [{"id": str(i), "label": "U3"} for i in range(4)]
    texts = ["<think>a b c</think>" + ANSWER, "<think>d</think>" + ANSWER, ANSWER, ANSWER]
    preds = predictions_from_generations(rows, texts, "forecaster", None, count_tokens=lambda t: len(t.split()))
    assert thinking_summary(preds) == {"outputs": 4, "with_thinking": 2, "unit": "tokens", "total": 4,
                                       "mean_per_output": 1.0}
    assert thinking_summary(preds[2:])["unit"] == "tokens" and thinking_summary([], "chars")["mean_per_output"] is None
