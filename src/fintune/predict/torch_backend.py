"""The torch backend: batched label scoring by log-probability, and greedy generation.

Score mode needs no parsing, so nothing can be invalid: for every example the prompt is run once (its KV cache is
kept), then every label's answer continuation is scored in one batched forward that reuses the cache. The
log-probability of the whole continuation (answer + end-of-turn tokens) is summed, so multi-token labels are
handled exactly. Generate mode left-pads, decodes greedily and hands the text to a strict parser; the caller turns
``None`` into the ``invalid`` label.

Token convention (the same as training, ``fintune.prompts.tokenize``): prompt and continuation are tokenized
separately without special tokens (the chat template already wrote them) and concatenated.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from fintune.errors import FintuneError
from fintune.predict.stats import InferenceStats
from fintune.prompts.tokenize import encode_prompt, encode_text, leading_special_ids


def _progress(total: int, desc: str, enabled: bool) -> Any:

    return tqdm(total=total, desc=desc, unit="ex", disable=not enabled, leave=False)


def _pad_id(tokenizer: Any) -> int:
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if tid is not None:
            return int(tid)
    return 0


def _accepts(model: Any, name: str) -> bool:
    # a PEFT wrapper's forward takes **kwargs and passes them on: ask the wrapped model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return name in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


MIN_SHARED_PREFIX = 8
"""Shorter common prompt prefixes are not worth a separate forward."""


def _shared_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix every sequence shares, leaving each at least one token of its own."""
    if len(seqs) < 2:
        return 0
    first, n = seqs[0], min(len(x) for x in seqs) - 1
    k = 0
    while k < n and all(x[k] == first[k] for x in seqs):
        k += 1
    return k if k >= MIN_SHARED_PREFIX else 0


@dataclass
class PrefixCache:
    """The KV cache of a prompt prefix every prompt shares (the system prompt and instruction), kept for the
    life of a :class:`~fintune.predict.Predictor`, so it is computed once per process instead of once per batch.

    Valid only while the model's weights do not change: a training-time scorer passes none.
    """

    ids: tuple[int, ...] = ()
    kv: Any = None
    hits: int = 0
    misses: int = 0


def _prefix_kv(model: Any, prefix: Sequence[int], device: Any, keep_arg: bool) -> Any:
    n = len(prefix)
    pre = model(input_ids=torch.tensor([list(prefix)], device=device),
                attention_mask=torch.ones((1, n), dtype=torch.long, device=device),
                position_ids=torch.arange(n, device=device)[None], use_cache=True,
                **({"logits_to_keep": 1} if keep_arg else {}))
    return pre.past_key_values


def _batch_prefix(model: Any, p_ids: list[list[int]], device: Any, keep_arg: bool,
                  cache: PrefixCache | None) -> tuple[int, Any]:
    """``(n_prefix, kv for batch 1)``: the cached prefix when every prompt starts with it, else this batch's."""
    if cache is not None and cache.ids and all(len(p) > len(cache.ids) and tuple(p[:len(cache.ids)]) == cache.ids
                                               for p in p_ids):
        cache.hits += 1
        return len(cache.ids), copy.deepcopy(cache.kv)
    n_pre = _shared_prefix_len(p_ids)
    if not n_pre:
        return 0, None
    kv = _prefix_kv(model, p_ids[0][:n_pre], device, keep_arg)
    if cache is not None:
        cache.misses += 1
        cache.ids, cache.kv = tuple(p_ids[0][:n_pre]), copy.deepcopy(kv)
    return n_pre, kv


def score_continuations(model: Any, tokenizer: Any, prompts: Sequence[str],
                        continuations: Sequence[Sequence[str]], batch_size: int = 8,
                        stats: InferenceStats | None = None, progress: bool = True,
                        desc: str = "score", prefix_cache: PrefixCache | None = None,
                        sort_by_length: bool = True) -> Any:
    """Sum of token log-probabilities of each continuation given its prompt.

    Args:
        prompts: one rendered prompt per example (ends with the assistant header).
        continuations: per example, the candidate answers (same count for every example), each including the
            end-of-turn text, e.g. ``[["positive<|im_end|>\\n", "negative<|im_end|>\\n", ...], ...]``.
        batch_size: examples per forward (each expands to ``batch_size * n_labels`` continuation rows).
        prefix_cache: keeps the shared prompt prefix's KV across calls (weights must not change meanwhile).
        sort_by_length: batch prompts of similar length together (less padding); results keep input order.

    Returns:
        float64 numpy array ``[n_examples, n_continuations]`` of log-probabilities.

    The shared prompt prefix is run once (batch 1) and its cache repeated; each prompt's own suffix is run once
    and only its last position's logits are kept; its cache is repeated for the continuations, so scoring three
    labels costs little more than one.
    """
    if len(prompts) != len(continuations):
        raise FintuneError(f"score: {len(prompts)} prompts but {len(continuations)} continuation lists")
    if not prompts:
        return np.zeros((0, 0))
    n_labels = len(continuations[0])
    if n_labels == 0 or any(len(c) != n_labels for c in continuations):
        raise FintuneError("score: every example needs the same, non-zero number of candidate answers")
    device = next(model.parameters()).device
    pad = _pad_id(tokenizer)
    lead = leading_special_ids(tokenizer)
    keep_arg = _accepts(model, "logits_to_keep")
    all_p = [encode_prompt(tokenizer, p, lead) for p in prompts]
    cont_ids: dict[str, list[int]] = {}
    all_c = [[cont_ids.setdefault(c, encode_text(tokenizer, c)) for c in conts] for conts in continuations]
    for k, (p, cs) in enumerate(zip(all_p, all_c, strict=True)):
        if not p:
            raise FintuneError(f"score: example {k} has an empty prompt")
        if any(not c for c in cs):
            raise FintuneError(f"score: example {k} has an empty candidate answer")
    order = sorted(range(len(all_p)), key=lambda k: -len(all_p[k])) if sort_by_length else list(range(len(all_p)))
    out = np.zeros((len(prompts), n_labels), dtype=np.float64)
    model.eval()
    bar = _progress(len(prompts), desc, progress)
    for start in range(0, len(order), batch_size):
        t0, c0 = time.perf_counter(), time.process_time()
        idx = order[start:start + batch_size]
        p_ids = [all_p[k] for k in idx]
        c_ids = [all_c[k] for k in idx]
        bsz = len(p_ids)
        with torch.inference_mode():
            # The instruction / system prompt is usually identical across prompts: its cache is computed once and
            # repeated, then only the per-example suffixes (always >= 1 token each) are run.
            n_pre, pre_kv = _batch_prefix(model, p_ids, device, keep_arg, prefix_cache)
            scores = _score_batch(model, p_ids, c_ids, n_pre, pre_kv, pad, device, keep_arg)
        out[idx] = scores
        if stats is not None:
            stats.prompt_tokens += sum(len(p) for p in p_ids)
            stats.generated_tokens += sum(len(c) for cs in c_ids for c in cs)
            stats.add_batch(time.perf_counter() - t0, bsz, time.process_time() - c0)
        bar.update(bsz)
    bar.close()
    return out


def _score_batch(model: Any, p_ids: list[list[int]], c_ids: list[list[list[int]]], n_pre: int, pre_kv: Any,
                 pad: int, device: Any, keep_arg: bool) -> Any:
    """``[bsz, n_labels]`` float64 log-probabilities of one batch (inside ``inference_mode``)."""
    bsz, n_labels = len(p_ids), len(c_ids[0])
    lens = torch.tensor([len(p) - n_pre for p in p_ids])
    width = int(lens.max())
    ids = torch.full((bsz, width), pad, dtype=torch.long)
    mask = torch.zeros((bsz, width), dtype=torch.long)
    for i, p in enumerate(p_ids):  # right padding: real tokens keep positions n_pre..n-1
        ids[i, :len(p) - n_pre] = torch.tensor(p[n_pre:])
        mask[i, :len(p) - n_pre] = 1
    last = lens - 1
    kwargs: dict[str, Any] = {}
    uniq = torch.unique(last)
    if keep_arg:
        kwargs["logits_to_keep"] = uniq.to(device)  # only the last prompt position of each row is needed
    if n_pre:
        pre_kv.batch_repeat_interleave(bsz)
        kwargs["past_key_values"] = pre_kv
        mask = torch.cat([torch.ones((bsz, n_pre), dtype=torch.long), mask], dim=1)
    res = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                position_ids=(n_pre + torch.arange(width)).expand(bsz, -1).to(device), use_cache=True, **kwargs)
    logits = res.logits.float()
    col = torch.searchsorted(uniq, last) if keep_arg else last
    first = torch.log_softmax(logits[torch.arange(bsz), col.to(logits.device)], dim=-1).double().cpu()  # [B, V]
    firsts = torch.tensor([[c[0] for c in cs] for cs in c_ids])
    scores = first.gather(1, firsts)
    rest_len = max(len(c) for cs in c_ids for c in cs) - 1
    if rest_len > 0:
        cache = res.past_key_values
        cache.batch_repeat_interleave(n_labels)  # row i*L + j = example i, label j
        rows = bsz * n_labels
        c_in = torch.full((rows, rest_len), pad, dtype=torch.long)
        c_mask = torch.zeros((rows, rest_len), dtype=torch.long)
        targets = torch.full((rows, rest_len), -1, dtype=torch.long)
        for i in range(bsz):
            for j in range(n_labels):
                c = c_ids[i][j]
                r = i * n_labels + j
                if len(c) > 1:
                    c_in[r, :len(c) - 1] = torch.tensor(c[:-1])
                    c_mask[r, :len(c) - 1] = 1
                    targets[r, :len(c) - 1] = torch.tensor(c[1:])
        full_mask = torch.cat([mask.repeat_interleave(n_labels, dim=0), c_mask], dim=1)
        pos = (n_pre + lens).repeat_interleave(n_labels)[:, None] + torch.arange(rest_len)[None, :]
        res2 = model(input_ids=c_in.to(device), attention_mask=full_mask.to(device),
                     position_ids=pos.to(device), past_key_values=cache, use_cache=True)
        logp = torch.log_softmax(res2.logits.float(), dim=-1)
        valid = targets >= 0
        gathered = logp.gather(-1, targets.clamp(min=0).to(logp.device)[..., None])[..., 0].cpu()
        scores += (gathered.double() * valid).sum(dim=1).view(bsz, n_labels)
    return scores.numpy()


def _stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-turn ids: the generation config's (Llama 3 lists several) plus the tokenizer's eos."""
    ids: list[int] = []
    cfg = getattr(model, "generation_config", None)
    for value in (getattr(cfg, "eos_token_id", None), tokenizer.eos_token_id):
        for tid in value if isinstance(value, (list, tuple)) else [value]:
            if tid is not None and int(tid) not in ids:
                ids.append(int(tid))
    return ids


def generate_texts(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 64,
                   batch_size: int = 8, stats: InferenceStats | None = None, progress: bool = True,
                   desc: str = "generate") -> list[str]:
    """Greedy generation for each prompt (left-padded batches); returns the decoded new text only."""

    device = next(model.parameters()).device
    pad = _pad_id(tokenizer)
    lead = leading_special_ids(tokenizer)
    eos_ids = _stop_ids(model, tokenizer)
    outs: list[str] = []
    model.eval()
    bar = _progress(len(prompts), desc, progress)
    for start in range(0, len(prompts), batch_size):
        t0, c0 = time.perf_counter(), time.process_time()
        p_ids = [encode_prompt(tokenizer, p, lead) for p in prompts[start:start + batch_size]]
        bsz, width = len(p_ids), max(len(p) for p in p_ids)
        ids = torch.full((bsz, width), pad, dtype=torch.long)
        mask = torch.zeros((bsz, width), dtype=torch.long)
        for i, p in enumerate(p_ids):  # left padding so every row's next token follows its last prompt token
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        with torch.inference_mode():
            gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos_ids or None)
        new = gen[:, width:].cpu()
        for row in new:
            toks = row.tolist()
            stop = next((k for k, t in enumerate(toks) if t in eos_ids), None)
            if stop is not None:  # count only up to the end of turn, not the padding after it
                toks = toks[:stop + 1]
            if stats is not None:
                stats.generated_tokens += len(toks)
            outs.append(tokenizer.decode(toks, skip_special_tokens=True))
        if stats is not None:
            stats.prompt_tokens += sum(len(p) for p in p_ids)
            stats.add_batch(time.perf_counter() - t0, bsz, time.process_time() - c0)
        bar.update(bsz)
    bar.close()
    return outs
