"""One tokenization for training and inference: rendered prompt text and answer text -> token ids.

Prompt and answer are tokenized separately without special tokens (the chat template already wrote them) and
concatenated, so no BPE merge crosses the answer boundary; the tokenizer's own leading special tokens (a BOS) are
prepended once when the rendered prompt does not start with the BOS text. ``encode_for_training`` (the label-masked
training row) and the predictor's scoring and generation both go through :func:`encode_prompt` /
:func:`encode_text`, so a model is asked exactly what it was trained on.
"""

from __future__ import annotations

from typing import Any

from fintune.errors import FintuneError


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens added (answers, continuations)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def leading_special_ids(tokenizer: Any) -> list[int]:
    """The ids ``tokenizer(text)`` puts in front of any text by itself (a BOS for Llama-style tokenizers)."""
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    if len(with_special) > len(plain) and with_special[-len(plain):] == plain:
        return list(with_special[: len(with_special) - len(plain)])
    return []


def encode_prompt(tokenizer: Any, prompt: str, lead: list[int] | None = None) -> list[int]:
    """Prompt token ids: no special tokens added, except the tokenizer's own leading ones (a BOS) when the
    rendered prompt does not start with the BOS text already. ``lead`` caches :func:`leading_special_ids`."""
    ids = encode_text(tokenizer, prompt)
    bos = getattr(tokenizer, "bos_token", None)
    if not (bos and prompt.startswith(bos)):
        lead = leading_special_ids(tokenizer) if lead is None else lead
        if lead and ids[: len(lead)] != lead:
            ids = lead + ids
    return ids


IGNORE_INDEX = -100
MIN_PROMPT_TOKENS = 16
"""Truncation never cuts the prompt below this many tokens (or its full length when shorter)."""


def encode_for_training(
    tokenizer: Any, prompt: str, completion: str, max_seq_length: int, where: str = ""
) -> dict[str, list[int]]:
    """Tokenize ``prompt`` and ``completion`` separately and mask the prompt: ``labels`` = -100 on prompt tokens.

    * The two parts are tokenized apart and concatenated so no BPE merge crosses the answer boundary.
    * BOS appears once: a prompt that already starts with the BOS text (every built-in template but chatml and
      none) gets nothing added; otherwise the tokenizer's own leading special tokens (if any) are prepended.
    * Truncation keeps the whole completion (answer + end-of-turn) and shortens the prompt in the MIDDLE: the
      first half of the remaining budget keeps its start (BOS, system prompt, instruction) and the rest keeps
      its end (the end of the input and the assistant header the answer must follow).
    * A completion that does not fit with at least ``MIN_PROMPT_TOKENS`` prompt tokens raises
      :class:`FintuneError` naming ``where`` (never a silently all -100 or cut-off answer).
    """
    label = where or "example"
    prompt_ids = encode_prompt(tokenizer, prompt)
    completion_ids = encode_text(tokenizer, completion)
    if not completion_ids:
        raise FintuneError(
            f"{label}: the answer is empty, nothing to train on", "give the example a label/answer or drop it"
        )
    room = max_seq_length - len(completion_ids)
    need = min(len(prompt_ids), MIN_PROMPT_TOKENS)
    if room < need:
        raise FintuneError(
            f"{label}: the answer is {len(completion_ids)} tokens and leaves {max(room, 0)} of "
            f"max_seq_length={max_seq_length} for the prompt (needs {need}); no complete answer would survive",
            "raise max_seq_length or shorten the answer",
        )
    if len(prompt_ids) > room:
        head = room // 2
        prompt_ids = prompt_ids[:head] + prompt_ids[len(prompt_ids) - (room - head) :]
    input_ids = prompt_ids + completion_ids
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
    }
