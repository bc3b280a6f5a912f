"""Training and inference tokenize a prompt the same way (one function), BOS included once."""

from __future__ import annotations

import pytest
from tests.tiny import make_tiny_model_dir


@pytest.mark.parametrize("arch", ["llama", "gpt_neox"])
def test_the_scorer_sees_what_the_training_collator_sees(tmp_path, arch):
    from transformers import AutoTokenizer

    from fintune.prompts.templates import encode_for_training, render_messages
    from fintune.prompts.tokenize import encode_prompt, encode_text
    from fintune.train.collate import PaddingCollator

    tok = AutoTokenizer.from_pretrained(make_tiny_model_dir(tmp_path, arch))
    msgs = [{"role": "system", "content": "You are a financial analyst."},
            {"role": "user", "content": "Shares fell 5.2 percent on Monday."},
            {"role": "assistant", "content": "negative"}]
    prompt, completion = render_messages(msgs, "chatml", tok)
    enc = encode_for_training(tok, prompt, completion, 256)
    batch = PaddingCollator(tok.pad_token_id)([{"input_ids": enc["input_ids"], "labels": enc["labels"]}])
    seen = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
    n_prompt = sum(1 for x in enc["labels"] if x == -100)
    assert seen[:n_prompt] == encode_prompt(tok, prompt)
    assert seen[n_prompt:] == encode_text(tok, completion)
