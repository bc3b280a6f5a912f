"""GGUF round trip: a LoRA run -> ``fintune export`` -> transformers' GGUF reader (and llama.cpp when installed)
gives the same label log-probabilities as fintune's own scoring of the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fintune.export import export_run
from fintune.predict.predictor import Predictor

TEXTS = ["Revenue rose 12% to EUR 3.4 mn in the first quarter.", "Shares fell 5.2 percent on Monday.",
         "The company said the plan is unchanged.", "Operating profit increased to record high.",
         "The bank cut its outlook and shares declined.", "Analysts downgrade the stock after weak results."]


def rows() -> list[dict]:
    """Prepared-style rows (system + user messages) as `fintune data` writes them."""
    return [{"id": str(i), "messages": [{"role": "system", "content": "You are a financial analyst."},
                                        {"role": "user", "content": f"Classify the sentiment: {t}"}]}
            for i, t in enumerate(TEXTS)]


def gguf_predictor(result, run: Path, spec) -> Predictor:
    """A Predictor on the model transformers reads back from the exported GGUF (run tokenizer: same ids)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(result.out), gguf_file=result.gguf.name, dtype=torch.float32)
    model.eval()
    return Predictor(spec, model, AutoTokenizer.from_pretrained(str(run)))


@pytest.fixture(scope="module")
def reference(tiny_run, tiny_model):
    """fintune's own scores of the run (adapter merged) and of its base (to prove the adapter matters)."""
    ours = Predictor.load(str(tiny_run))
    base = Predictor.load(str(tiny_model), spec=ours.spec)
    return ours, np.asarray(ours.score_rows(rows())), np.asarray(base.score_rows(rows()))


@pytest.mark.parametrize("quant,tol", [("f32", 1e-4), ("f16", 0.01), ("bf16", 0.05), ("q8_0", 0.05), ("q4_0", 0.4)])
def test_gguf_round_trip_matches_fintune_scoring(tiny_run, reference, tmp_path, quant, tol):
    ours, want, base = reference
    result = export_run(tiny_run, tmp_path / "out", "gguf", quant)
    got = np.asarray(gguf_predictor(result, tiny_run, ours.spec).score_rows(rows()))
    delta = float(np.abs(got - want).max())
    agree = float((got.argmax(1) == want.argmax(1)).mean())
    print(f"\n{quant}: label agreement {agree:.2f}, max |delta log p| {delta:.2e}")
    effect = float(np.abs(base - want).max())
    assert effect > 0.3  # the adapter moves the scores by this much: a skipped merge fails
    assert delta < tol < effect
    if quant == "f32":
        assert agree == 1.0


def test_gguf_carries_tokenizer_template_and_task(tiny_run, tmp_path):
    import gguf
    from transformers import AutoTokenizer

    result = export_run(tiny_run, tmp_path / "out", "gguf", "f16")
    fields = gguf.GGUFReader(result.gguf).fields
    ours = AutoTokenizer.from_pretrained(str(tiny_run))
    assert fields["tokenizer.chat_template"].contents() == ours.chat_template
    assert fields["fintune.labels"].contents() == ["negative", "neutral", "positive"]
    assert fields["tokenizer.ggml.eos_token_id"].contents() == ours.eos_token_id
    back = AutoTokenizer.from_pretrained(str(result.out), gguf_file=result.gguf.name)
    for row in rows():
        text = ours.apply_chat_template(row["messages"], tokenize=False, add_generation_prompt=True)
        assert back(text, add_special_tokens=False).input_ids == ours(text, add_special_tokens=False).input_ids


@pytest.mark.parametrize("quant,tol", [("f32", 1e-2), ("q8_0", 0.1)])
def test_llama_cpp_gives_fintunes_labels(tiny_run, reference, tmp_path, quant, tol):
    """The exported file in llama.cpp (llama-cpp-python): same labels and log-probs as fintune's scoring."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from fintune.predict.rows import label_prompts
    from fintune.prompts.tokenize import encode_prompt, encode_text, leading_special_ids

    ours, want, _ = reference
    result = export_run(tiny_run, tmp_path / "out", "gguf", quant)
    llm = llama_cpp.Llama(model_path=str(result.gguf), n_ctx=256, logits_all=True, verbose=False, n_threads=1)
    tok = ours.tokenizer
    got = []
    for row in rows():
        prompt, conts = label_prompts(row, ours.labels, ours.spec.format, ours.spec.template, tok,
                                      ours.spec.template_date)
        p_ids = encode_prompt(tok, prompt, leading_special_ids(tok))  # the ids fintune's scoring feeds
        assert llm.tokenize(prompt.encode(), add_bos=False, special=True) == p_ids  # the exported tokenizer
        scores = []
        for cont in conts:
            c_ids = encode_text(tok, cont)
            llm.reset()
            llm.eval(p_ids + c_ids)
            logits = np.asarray(llm.scores[: len(p_ids) + len(c_ids)], dtype=np.float64)
            logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
            scores.append(sum(logp[len(p_ids) - 1 + j, t] for j, t in enumerate(c_ids)))
        got.append(scores)
    got = np.asarray(got)
    delta = float(np.abs(got - want).max())
    print(f"\nllama.cpp {quant}: label agreement {float((got.argmax(1) == want.argmax(1)).mean()):.2f}, "
          f"max |delta log p| {delta:.2e}")
    assert (got.argmax(1) == want.argmax(1)).all()
    assert delta < tol
