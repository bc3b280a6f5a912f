"""Score mode against a naive reference, batching invariance, generate mode and strict invalid handling."""

from __future__ import annotations

import numpy as np
import pytest
from tests.tiny import make_tiny_model_dir

PROMPTS = [
    "<|im_start|>user\nRevenue rose 12% to EUR 3.4 mn.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nShares fell.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nThe company said the quarterly dividend will be paid on Monday as expected by "
    "analysts.<|im_end|>\n<|im_start|>assistant\n",
]
LABEL_TEXTS = ["negative<|im_end|>\n", "neutral<|im_end|>\n", "positive outlook strong<|im_end|>\n"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = make_tiny_model_dir(tmp_path_factory.mktemp("m"), "llama", seed=1)
    return AutoModelForCausalLM.from_pretrained(d), AutoTokenizer.from_pretrained(d)


def naive_logprob(model, tok, prompt: str, cont: str) -> float:
    import torch

    p = tok(prompt, add_special_tokens=False)["input_ids"]
    c = tok(cont, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + c])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    return float(sum(logp[len(p) - 1 + k, t] for k, t in enumerate(c)))


def test_score_matches_naive_full_forward(tiny):
    from fintune.predict import InferenceStats, score_continuations

    model, tok = tiny
    conts = [LABEL_TEXTS] * len(PROMPTS)
    stats = InferenceStats()
    got = score_continuations(model, tok, PROMPTS, conts, batch_size=3, stats=stats, progress=False)
    want = np.array([[naive_logprob(model, tok, p, c) for c in LABEL_TEXTS] for p in PROMPTS])
    assert got.shape == (3, 3)
    # multi-token continuations of different lengths, prompts of different lengths, one batch
    assert len({len(tok(c, add_special_tokens=False)["input_ids"]) for c in LABEL_TEXTS}) > 1
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert stats.examples == 3 and stats.summary()["examples_per_s"] > 0


def test_shared_prompt_prefix_is_computed_once_and_changes_nothing(tiny):
    from fintune.predict import _shared_prefix_len, score_continuations

    model, tok = tiny
    system = "<|im_start|>system\nYou are a financial analyst. Classify the sentiment of the news.<|im_end|>\n"
    prompts = [system + p for p in PROMPTS]
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    assert _shared_prefix_len(ids) >= 8  # the prefix path is really taken
    conts = [LABEL_TEXTS] * len(prompts)
    got = score_continuations(model, tok, prompts, conts, batch_size=3, progress=False)
    want = np.array([[naive_logprob(model, tok, p, c) for c in LABEL_TEXTS] for p in prompts])
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert _shared_prefix_len([[1, 2, 3], [1, 2, 3]]) == 0  # needs >= 8 tokens and leaves each row one token


def test_score_batching_invariant_and_single_token_labels(tiny):
    from fintune.predict import score_continuations

    model, tok = tiny
    single = [[tok.decode([5]), tok.decode([9])]] * len(PROMPTS)
    a = score_continuations(model, tok, PROMPTS, single, batch_size=1, progress=False)
    b = score_continuations(model, tok, PROMPTS, single, batch_size=2, progress=False)
    np.testing.assert_allclose(a, b, atol=1e-5)
    want = [[naive_logprob(model, tok, p, c) for c in single[0]] for p in PROMPTS]
    np.testing.assert_allclose(a, want, atol=1e-4)


def test_generate_left_padding_matches_one_at_a_time(tiny):
    from fintune.predict import InferenceStats, generate_texts

    model, tok = tiny
    stats = InferenceStats()
    batched = generate_texts(model, tok, PROMPTS, max_new_tokens=6, batch_size=3, stats=stats, progress=False)
    single = [generate_texts(model, tok, [p], max_new_tokens=6, batch_size=1, progress=False)[0] for p in PROMPTS]
    assert batched == single
    assert stats.generated_tokens > 0


def test_generated_output_that_does_not_parse_is_invalid_and_kept():
    from fintune.predict import predictions_from_generations
    from fintune.records import INVALID

    rows = [{"id": "a", "label": "positive"}, {"id": "b", "label": "negative"}]

    def parser(text, fmt, labels):
        return {"label": "positive", "confidence": 0.8} if text.startswith("SENTIMENT: positive") else None

    preds = predictions_from_generations(rows, ["SENTIMENT: positive", "I think it goes up"], "structured",
                                         ["negative", "neutral", "positive"], parser=parser)
    assert [p.label for p in preds] == ["positive", INVALID]
    assert preds[0].confidence == pytest.approx(0.8)
    assert preds[1].raw_output == "I think it goes up" and preds[1].gold == "negative"


def test_predictions_from_scores_probabilities_and_temperature():
    from fintune.predict import predictions_from_scores

    rows = [{"id": "x", "label": "neutral"}]
    lp = np.log([[0.2, 0.5, 0.3]])
    p1 = predictions_from_scores(rows, ["negative", "neutral", "positive"], lp)[0]
    assert p1.label == "neutral" and p1.confidence == pytest.approx(0.5)
    assert sum(p1.probabilities.values()) == pytest.approx(1.0)
    p2 = predictions_from_scores(rows, ["negative", "neutral", "positive"], lp, temperature=2.0)[0]
    assert p2.label == "neutral" and p2.confidence < p1.confidence


def _forecast_row(answer: str) -> dict:
    return {"id": "fc-AAA-2015-01-12", "ticker": "AAA", "date": "2015-01-12", "label": "U2",
            "messages": [{"role": "user", "content": "From 2015-01-02 to 2015-01-09, AAA rose ... next week?"},
                         {"role": "assistant", "content": answer}],
            "extra": {"answer": answer, "items_latest_date": "2015-01-09", "next_week_return": 1.3}}


def test_forecaster_score_mode_ranks_label_only_answers_without_the_gold_answer():
    from fintune.errors import FintuneError
    from fintune.labels import FORECAST_BINS
    from fintune.predict import label_prompts, predictions_from_scores

    gold = "[Prediction & Analysis]:\nPrediction: Up by 1-2%"
    row = _forecast_row(gold)
    prompt, conts = label_prompts(row, FORECAST_BINS, "forecaster", "chatml")
    assert prompt.endswith("<|im_start|>assistant\n") and "Up by 1-2%" not in prompt
    # every bin is written the way the builder writes its label-only target: the gold one gets no extra help
    assert conts[FORECAST_BINS.index("U2")] == gold + "<|im_end|>\n"
    assert conts[FORECAST_BINS.index("D5+")] == "[Prediction & Analysis]:\nPrediction: Down by more than 5%<|im_end|>\n"
    assert label_prompts(_forecast_row(gold.replace("Up by 1-2%", "Down by 0-1%")), FORECAST_BINS, "forecaster",
                         "chatml") == (prompt, conts)
    with pytest.raises(FintuneError, match="generate"):  # teacher sections: the label alone is not the answer
        label_prompts(_forecast_row("[Positive Developments]:\n1. sales\n\n" + gold + "\nAnalysis: ok"),
                      FORECAST_BINS, "forecaster", "chatml")

    lp = np.log([[0.05] * 6 + [0.1, 0.4, 0.1, 0.05, 0.0499, 0.0001]])
    p = predictions_from_scores([row], FORECAST_BINS, lp)[0]
    assert p.label == "U2" and p.expected_move == 1.5  # the argmax bin's midpoint, as in generate mode
    assert p.p_up == pytest.approx(0.7) and p.asof == "2015-01-09"
    mids = [-5.5, -4.5, -3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    assert p.extra["expected_move_mean"] == pytest.approx(float(np.dot(np.exp(lp[0]), mids)))
    plain = predictions_from_scores([{"id": "x"}], ["negative", "neutral", "positive"], np.log([[0.2, 0.5, 0.3]]))[0]
    assert plain.expected_move is None and plain.p_up is None and plain.asof is None
