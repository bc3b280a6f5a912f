"""Golden renderings for the reference systems: a Llama-3.2 prompt is the same bytes on any day (pinned template
date), and a FinGPT-Forecaster row keeps its own system prompt and user text byte for byte in other templates."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from prompt_tokenizers import make_tokenizer
from tests.reference.reference_models import official_template
from tests.reference.reference_rows import fingpt_rows, seed_rows

from fintune.data.fingpt import import_fingpt_rows, split_llama2_prompt
from fintune.data.forecaster import SYSTEM_PROMPT
from fintune.prompts.tasks import build_messages
from fintune.prompts.templates import TEMPLATE_DATE, render_messages
from fintune.records import Example

SEED_LABELS = ("BEARISH", "NEUTRAL", "BULLISH")
GOLDEN_PROMPT = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
    "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nInstruction: What is the "
    "sentiment of this news? Please choose an answer from {BEARISH/NEUTRAL/BULLISH}. Reply with the line "
    '"SENTIMENT: <answer>", optionally followed by the lines "CONFIDENCE: <a number from 0 to 1>" and '
    '"ANALYSIS: <one or two sentences>".\nInput: Apple reports record Q4 earnings, beating expectations by 15%'
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
GOLDEN_COMPLETION = ("SENTIMENT: BULLISH\nCONFIDENCE: HIGH\nANALYSIS: Stock likely to rise 3-5% in next session"
                     "<|eot_id|>")


def llama32_tokenizer():
    """A tiny tokenizer carrying Llama 3.2's dated chat template."""
    tok = make_tokenizer("llama3", with_template=False)
    tok.chat_template = official_template("llama3.2")
    return tok


def _on_day(monkeypatch: pytest.MonkeyPatch, day: datetime) -> None:
    import transformers.utils.chat_template_utils as ctu

    class _Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return day

    monkeypatch.setattr(ctu, "datetime", _Clock)


def _seed_messages() -> list[dict[str, str]]:
    from fintune.data.tabular import instruction_rows

    (_, row), = list(instruction_rows([("seed:1", seed_rows()[0])], SEED_LABELS, True))
    example = Example(id="seed-1", text=row["text"], label="BULLISH",
                      extra={"confidence": row["confidence"], "analysis": row["analysis"]})
    return build_messages(example, "structured", SEED_LABELS)


@pytest.mark.parametrize("day", [datetime(2025, 1, 2, 9, 30), datetime(2031, 12, 24, 23, 59)])
def test_llama32_prompt_is_the_same_bytes_on_any_day(monkeypatch: pytest.MonkeyPatch, day: datetime) -> None:
    tok = llama32_tokenizer()
    messages = _seed_messages()
    _on_day(monkeypatch, day)
    # the template really is dated: left alone it writes the fake "today"
    raw = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    assert f"Today Date: {day.strftime('%d %b %Y')}" in raw
    prompt, completion = render_messages(messages, "auto", tok)
    assert (prompt, completion) == (GOLDEN_PROMPT, GOLDEN_COMPLETION)
    assert render_messages(messages, "llama3") == (GOLDEN_PROMPT, GOLDEN_COMPLETION)  # built-in agrees
    pinned, _ = render_messages(messages, "auto", tok, date_string="01 Jan 2025")
    assert pinned == GOLDEN_PROMPT.replace(TEMPLATE_DATE, "01 Jan 2025")


def test_prepared_data_records_the_pinned_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from fintune.data.prepare import prepare_data, read_prepared
    from fintune.recipe import load_recipe

    seed = tmp_path / "seed.jsonl"
    seed.write_text("".join(json.dumps(r) + "\n" for r in seed_rows()), encoding="utf-8")
    recipe = load_recipe("llama-3.2-3b/sentiment_qlora", [
        f"data.sources=[{{name: alpaca, path: {seed}}}]", "data.split.method=random", "data.split.test_size=0.25",
        "data.split.val_size=0"])
    prompts = []
    for k, day in enumerate((datetime(2025, 3, 1), datetime(2030, 7, 4))):
        _on_day(monkeypatch, day)
        out = prepare_data(recipe, tmp_path / f"data{k}", tokenizer=llama32_tokenizer())
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["template_date"] == TEMPLATE_DATE
        assert manifest["canonical_labels"] == {"BEARISH": "negative", "NEUTRAL": "neutral", "BULLISH": "positive"}
        prompts.append({r["id"]: r["prompt"] + r["completion"] for s in read_prepared(out).values() for r in s})
    assert prompts[0] == prompts[1] and GOLDEN_PROMPT + GOLDEN_COMPLETION in prompts[0].values()


def test_a_pinned_date_reaches_evaluation_prompts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A recipe's own ``template_date`` is what eval renders too: its prompts equal the prepared (trained) ones."""
    import json

    from fintune.data.prepare import prepare_data
    from fintune.evaluate import load_eval_data
    from fintune.predict import generation_prompt, label_prompts

    seed = tmp_path / "seed.jsonl"
    seed.write_text("".join(json.dumps(r) + "\n" for r in seed_rows()), encoding="utf-8")
    from fintune.recipe import load_recipe

    recipe = load_recipe("llama-3.2-3b/sentiment_qlora", [
        f"data.sources=[{{name: alpaca, path: {seed}}}]", "data.split.method=random", "data.split.test_size=0.5",
        "data.split.val_size=0", "data.template_date=01 Jan 2025"])
    tok = llama32_tokenizer()
    _on_day(monkeypatch, datetime(2029, 2, 3))
    data = load_eval_data(prepare_data(recipe, tmp_path / "data", tokenizer=tok))
    assert data.template_date == "01 Jan 2025"
    for row in data.splits["test"]:
        assert "Today Date: 01 Jan 2025" in row["prompt"]
        assert generation_prompt(row, data.template, tok, data.template_date) == row["prompt"]
        prompt, _ = label_prompts(row, data.labels, data.fmt, data.template, tok, data.template_date)
        assert prompt == row["prompt"]


# ------------------------------------------------------------------ FinGPT system prompt across templates


def test_fingpt_rows_keep_their_system_prompt_and_user_text_in_every_template(family_tokenizers) -> None:
    rows = fingpt_rows(weeks=2)
    examples = import_fingpt_rows(rows)
    for row, ex in zip(rows, examples, strict=True):
        system, user = split_llama2_prompt(row["prompt"], "row")
        assert system == SYSTEM_PROMPT and row["prompt"] == f"[INST]<<SYS>>\n{system}\n<</SYS>>\n\n{user}[/INST]"
        messages = build_messages(ex, "forecaster", None)  # no recipe system prompt: the row's own is kept
        assert messages[0] == {"role": "system", "content": system}
        assert messages[1] == {"role": "user", "content": user}
        assert messages[2]["content"] == row["answer"]
        qwen, _ = render_messages(messages, "auto", family_tokenizers["chatml"])  # Qwen2.5's official template
        assert qwen == (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
                        "<|im_start|>assistant\n")
        assert render_messages(messages, "chatml")[0] == qwen
        assert "You are Qwen" not in qwen
        llama3, _ = render_messages(messages, "auto", family_tokenizers["llama3"])
        # Llama 3 trims each content (the official template does): the texts are trimmed already but the system
        # prompt's final newline
        assert f"Today Date: 26 Jul 2024\n\n{system.strip()}<|eot_id|>" in llama3
        assert f"<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>" in llama3
        deepseek, _ = render_messages(messages, "deepseek-r1-distill")
        assert deepseek.startswith(f"<｜begin▁of▁sentence｜>{system}<｜User｜>{user}<｜Assistant｜>")
    # a recipe's own system prompt still wins when it sets one
    assert build_messages(examples[0], "forecaster", None, "Be brief.")[0]["content"] == "Be brief."
