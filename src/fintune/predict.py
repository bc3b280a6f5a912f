"""Batched inference: score labels by log-probability, or generate and parse strictly.

Score mode needs no parsing, so nothing can be invalid: for every example the prompt is run once (its KV cache is
kept), then every label's answer continuation is scored in one batched forward that reuses the cache. The
log-probability of the whole continuation (answer + end-of-turn tokens) is summed, so multi-token labels are
handled exactly. Generate mode left-pads, decodes greedily and hands the text to a strict parser; the caller turns
``None`` into the ``invalid`` label.

Token convention (the same as training): prompt and continuation are tokenized separately without special tokens
(the chat template already wrote them) and concatenated.
"""

from __future__ import annotations

import inspect
import math
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fintune.errors import FintuneError


@dataclass
class InferenceStats:
    """Speed and cost of one inference pass."""

    examples: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    batch_latencies: list[float] = field(default_factory=list)
    example_latencies: list[float] = field(default_factory=list)

    def add_batch(self, seconds: float, batch_size: int, cpu_seconds: float = 0.0) -> None:
        """Record one batch's wall time (each example in it is charged the batch's time) and process CPU time."""
        self.seconds += seconds
        self.cpu_seconds += cpu_seconds
        self.examples += batch_size
        self.batch_latencies.append(seconds)
        self.example_latencies.extend([seconds] * batch_size)

    def summary(self) -> dict[str, Any]:
        """examples/s, tokens/s, latency p50/p95 (per example, in ms) and peak memory."""
        import numpy as np

        lat = np.asarray(self.example_latencies) * 1000.0
        tokens = self.prompt_tokens + self.generated_tokens
        return {
            "examples": self.examples,
            "seconds": round(self.seconds, 4),
            # CPU time of the whole process (all threads): a fairer cost than wall time on a shared machine
            "cpu_seconds": round(self.cpu_seconds, 4),
            "examples_per_s": self.examples / self.seconds if self.seconds else None,
            "tokens_per_s": tokens / self.seconds if self.seconds else None,
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
            "latency_ms_p95": float(np.percentile(lat, 95)) if lat.size else None,
            **peak_memory(),
        }


def peak_memory() -> dict[str, float | None]:
    """Peak GPU memory allocated (MiB) when CUDA is in use, and the process's peak resident memory (MiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mib = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # macOS reports bytes, Linux KiB
    gpu = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gpu = torch.cuda.max_memory_allocated() / 2**20
    return {"peak_gpu_mib": gpu, "peak_rss_mib": round(rss_mib, 1)}


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", disable=not enabled, leave=False)


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def leading_special_ids(tokenizer: Any) -> list[int]:
    """The ids ``tokenizer(text)`` puts in front of any text by itself (a BOS for Llama-style tokenizers)."""
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    if len(with_special) > len(plain) and with_special[-len(plain):] == plain:
        return list(with_special[: len(with_special) - len(plain)])
    return []


def encode_prompt(tokenizer: Any, prompt: str, lead: list[int] | None = None) -> list[int]:
    """Prompt token ids exactly as training builds them (``prompts.templates.encode_for_training``): no special
    tokens added, except the tokenizer's own leading ones (a BOS) when the rendered prompt does not start with
    the BOS text already."""
    ids = _encode(tokenizer, prompt)
    bos = getattr(tokenizer, "bos_token", None)
    if not (bos and prompt.startswith(bos)):
        lead = leading_special_ids(tokenizer) if lead is None else lead
        if lead and ids[: len(lead)] != lead:
            ids = lead + ids
    return ids


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


def score_continuations(model: Any, tokenizer: Any, prompts: Sequence[str],
                        continuations: Sequence[Sequence[str]], batch_size: int = 8,
                        stats: InferenceStats | None = None, progress: bool = True,
                        desc: str = "score") -> Any:
    """Sum of token log-probabilities of each continuation given its prompt.

    Args:
        prompts: one rendered prompt per example (ends with the assistant header).
        continuations: per example, the candidate answers (same count for every example), each including the
            end-of-turn text, e.g. ``[["positive<|im_end|>\\n", "negative<|im_end|>\\n", ...], ...]``.
        batch_size: examples per forward (each expands to ``batch_size * n_labels`` continuation rows).

    Returns:
        float64 numpy array ``[n_examples, n_continuations]`` of log-probabilities.

    The prompt is run once per example; its cache is repeated for the continuations, so scoring three labels costs
    little more than one.
    """
    import numpy as np
    import torch

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
    out = np.zeros((len(prompts), n_labels), dtype=np.float64)
    model.eval()
    bar = _progress(len(prompts), desc, progress)
    for start in range(0, len(prompts), batch_size):
        t0, c0 = time.perf_counter(), time.process_time()
        p_ids = [encode_prompt(tokenizer, p, lead) for p in prompts[start:start + batch_size]]
        c_ids = [[_encode(tokenizer, c) for c in conts] for conts in continuations[start:start + batch_size]]
        for k, (p, cs) in enumerate(zip(p_ids, c_ids, strict=True)):
            if not p:
                raise FintuneError(f"score: example {start + k} has an empty prompt")
            if any(not c for c in cs):
                raise FintuneError(f"score: example {start + k} has an empty candidate answer")
        bsz = len(p_ids)
        # The instruction / system prompt is usually identical across a batch: run that shared prefix once
        # (batch 1) and repeat its cache, then only the per-example suffixes (always >= 1 token each).
        n_pre = _shared_prefix_len(p_ids)
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
        with torch.inference_mode():
            if n_pre:
                pre = model(input_ids=torch.tensor([p_ids[0][:n_pre]], device=device),
                            attention_mask=torch.ones((1, n_pre), dtype=torch.long, device=device),
                            position_ids=torch.arange(n_pre, device=device)[None], use_cache=True,
                            **({"logits_to_keep": 1} if keep_arg else {}))
                kwargs["past_key_values"] = pre.past_key_values
                kwargs["past_key_values"].batch_repeat_interleave(bsz)
                mask = torch.cat([torch.ones((bsz, n_pre), dtype=torch.long), mask], dim=1)
            res = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                        position_ids=(n_pre + torch.arange(width)).expand(bsz, -1).to(device), use_cache=True,
                        **kwargs)
            logits = res.logits.float()
            col = torch.searchsorted(uniq, last) if keep_arg else last
            first = torch.log_softmax(logits[torch.arange(bsz), col.to(logits.device)], dim=-1)  # [B, V]
            scores = torch.zeros((bsz, n_labels), dtype=torch.float64)
            for i in range(bsz):
                for j in range(n_labels):
                    scores[i, j] = first[i, c_ids[i][j][0]].double().cpu()
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
                extra = (gathered.double() * valid).sum(dim=1).view(bsz, n_labels)
                scores += extra
        out[start:start + bsz] = scores.numpy()
        if stats is not None:
            stats.prompt_tokens += int(lens.sum()) + n_pre * bsz
            stats.generated_tokens += sum(len(c) for cs in c_ids for c in cs)
            stats.add_batch(time.perf_counter() - t0, bsz, time.process_time() - c0)
        bar.update(bsz)
    bar.close()
    return out


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
    import torch

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


def softmax_rows(logits: Any, temperature: float = 1.0) -> Any:
    """Row-wise softmax of ``logits / temperature`` (numpy, numerically stable)."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- prompts for a prepared row


SCORABLE_FORMATS = ("label", "structured", "headlines")
"""Formats with a closed answer set, which score mode can rank by log-probability."""


def _without_answer(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    return [dict(m) for m in messages if m.get("role") != "assistant"] if messages else []


def label_prompts(row: dict[str, Any], labels: Sequence[str], fmt: str, template: str,
                  tokenizer: Any = None, date_string: str | None = None) -> tuple[str, list[str]]:
    """The prompt of a prepared row and, for each label, the exact answer text + end-of-turn it would be trained on.

    Uses the prompts helper (``answer_text``, ``render_messages``) so score mode scores exactly what training
    teaches. Raises if the template renders a different prompt for different labels (it must not).
    ``date_string``: the run's pinned template date (``data.template_date``; default the templates' own).
    """
    from fintune.prompts.tasks import answer_text
    from fintune.prompts.templates import TEMPLATE_DATE, render_messages

    where = f"example '{row.get('id')}'"
    if fmt not in SCORABLE_FORMATS and fmt != "forecaster":
        raise FintuneError(f"score mode cannot score the '{fmt}' format (its answers are free text)",
                           "use --mode generate")
    base = _without_answer(row.get("messages") or [])
    if not base:
        raise FintuneError(f"{where}: no 'messages' column", "prepare the data with `fintune data` first")
    extra = row.get("extra") or {}
    # A structured answer trained with CONFIDENCE/ANALYSIS lines continues after the SENTIMENT line: score only
    # "SENTIMENT: <label>\n" then, and never the gold example's own analysis (that would leak the answer).
    continues = fmt == "structured" and (extra.get("confidence") is not None or extra.get("analysis") is not None)
    prompt: str | None = None
    conts = []
    for label in labels:
        if fmt == "forecaster":
            answer = forecast_label_answer(row, label)
        else:
            answer = answer_text(label, fmt, {} if fmt == "structured" else extra)
        p, c = render_messages([*base, {"role": "assistant", "content": answer}], template, tokenizer,
                               date_string or TEMPLATE_DATE)
        if prompt is None:
            prompt = p
        elif p != prompt:
            raise FintuneError(f"{where}: template '{template}' renders a label-dependent prompt",
                               "score mode needs the prompt to end before the answer")
        conts.append(answer + "\n" if continues else c)
    return str(prompt), conts


def forecast_label_answer(row: dict[str, Any], label: str) -> str:
    """The label-only forecaster answer score mode ranks: ``[Prediction & Analysis]:\nPrediction: Up by 2-3%``.

    It is the builder's label-only target (``fintune.data.forecaster.answer_for_label``) for every bin, so the
    gold bin gets no help from the row's own answer. Rows trained with written sections (a teacher's positive
    developments / concerns / analysis before or after the prediction) cannot be ranked on the label alone.
    """
    from fintune.prompts.parse import bin_to_text, parse_forecast

    gold = (row.get("extra") or {}).get("answer")
    parsed = parse_forecast(gold) if isinstance(gold, str) else None
    if parsed and any(parsed.get(k) for k in ("positive_developments", "potential_concerns", "analysis")):
        raise FintuneError(f"example '{row.get('id')}': its forecaster answer has written sections, so score mode "
                           "cannot rank the label alone", "use --mode generate")
    return f"[Prediction & Analysis]:\nPrediction: {bin_to_text(label).capitalize()}"


def signal_asof(row: dict[str, Any]) -> str | None:
    """When a prediction's information ends: a forecaster row's latest prompt item (``items_latest_date``, the
    close before the predicted week), so a backtest trades it at the predicted week's first open; else None."""
    value = (row.get("extra") or {}).get("items_latest_date")
    return str(value) if value else None


def generation_prompt(row: dict[str, Any], template: str, tokenizer: Any = None,
                      date_string: str | None = None) -> str:
    """The prompt up to and including the assistant header, for generate mode (``date_string``: as in
    :func:`label_prompts`)."""
    from fintune.prompts.templates import TEMPLATE_DATE, render_messages

    base = _without_answer(row.get("messages") or [])
    if not base:
        raise FintuneError(f"example '{row.get('id')}': no 'messages' column",
                           "prepare the data with `fintune data` first")
    prompt, _ = render_messages([*base, {"role": "assistant", "content": ""}], template, tokenizer,
                                date_string or TEMPLATE_DATE)
    return prompt


def parse_generated(text: str, fmt: str, labels: Sequence[str] | None) -> dict[str, Any] | None:
    """Strictly parse one generated output; ``None`` means invalid.

    Returns a dict with at least ``label`` (and ``confidence``/``expected_move``/sections when the format has
    them).
    """
    from fintune.prompts import parse

    text, _ = parse.split_thinking(text)  # a reasoning model's <think>...</think> is not part of the answer
    if fmt == "forecaster":
        parsed = parse.parse_forecast(text)
        if not parsed:
            return None
        out = dict(parsed)
        out.setdefault("label", parsed.get("prediction") or parsed.get("bin"))
        return out if out.get("label") else None
    if fmt == "structured":
        parsed = parse.parse_structured(text, list(labels or []))
        if not parsed:
            return None
        out = dict(parsed)
        out.setdefault("label", parsed.get("sentiment"))
        return out if out.get("label") else None
    label = parse.parse_label(text, list(labels or []))
    return {"label": label} if label else None


def predictions_from_scores(rows: Sequence[dict[str, Any]], labels: Sequence[str], logprobs: Any,
                            temperature: float = 1.0, model_name: str = "") -> list[Any]:
    """Score-mode Predictions: softmax over the labels' sequence log-probs (divided by ``temperature``)."""
    from fintune.labels import FORECAST_BINS
    from fintune.records import Prediction

    probs = softmax_rows(logprobs, temperature)
    bins = bool(labels) and all(lab in FORECAST_BINS for lab in labels)
    if bins:
        from fintune.prompts.parse import bin_midpoint

        mids = [bin_midpoint(lab) for lab in labels]
    preds = []
    for row, lp, pr in zip(rows, logprobs, probs, strict=True):
        best = int(pr.argmax())
        extra: dict[str, Any] = {"label_logprobs": {lab: float(v) for lab, v in zip(labels, lp, strict=True)},
                                 "temperature": temperature, **({"model": model_name} if model_name else {})}
        move = None
        if bins:  # forecaster bins: the argmax bin's midpoint, plus the probability-weighted move and p(up)
            move = mids[best]
            extra["expected_move_mean"] = float(sum(p * m for p, m in zip(pr, mids, strict=True)))
            extra["p_up"] = float(sum(p for p, lab in zip(pr, labels, strict=True) if lab.startswith("U")))
        asof = signal_asof(row)
        if asof:
            extra["asof"] = asof
        preds.append(Prediction(
            id=str(row["id"]), label=labels[best], probabilities={lab: float(p) for lab, p in zip(labels, pr, strict=True)},
            confidence=float(pr[best]), ticker=row.get("ticker"), date=row.get("date"), expected_move=move,
            gold=row.get("label") or None, extra=extra,
        ))
    return preds


_NOT_SECTIONS = ("label", "confidence", "expected_move", "direction", "bin", "sentiment", "confidence_level")


def predictions_from_generations(rows: Sequence[dict[str, Any]], texts: Sequence[str], fmt: str,
                                 labels: Sequence[str] | None, model_name: str = "",
                                 parser: Callable[[str, str, Sequence[str] | None], dict | None] | None = None,
                                 count_tokens: Callable[[str], int] | None = None) -> list[Any]:
    """Generate-mode Predictions: parsed outputs, or label ``invalid`` with the raw text kept.

    An output that opens with a ``<think>...</think>`` block (R1-distill) records its length in
    ``extra["thinking"]``: ``{"tokens": n}`` with ``count_tokens`` (the model's tokenizer), else ``{"chars": n}``.
    """
    from fintune.prompts.parse import split_thinking
    from fintune.records import INVALID, Prediction

    parser = parser or parse_generated
    preds = []
    for row, text in zip(rows, texts, strict=True):
        parsed = parser(text, fmt, labels)
        conf = parsed.get("confidence") if parsed else None  # the parser already maps "85%" to 0.85
        conf = float(conf) if isinstance(conf, (int, float)) and math.isfinite(conf) else None
        move = parsed.get("expected_move") if parsed else None
        extra: dict[str, Any] = {"parsed": parsed is not None}
        _, thinking = split_thinking(text)
        if thinking is not None:
            extra["thinking"] = {"tokens": count_tokens(thinking)} if count_tokens else {"chars": len(thinking)}
        if parsed:
            extra["sections"] = {k: v for k, v in parsed.items()
                                 if k not in _NOT_SECTIONS and isinstance(v, str)}
            if parsed.get("confidence_level"):  # stated as LOW/MEDIUM/HIGH; ``confidence`` holds its number
                extra["confidence_level"] = parsed["confidence_level"]
        if model_name:
            extra["model"] = model_name
        asof = signal_asof(row)
        if asof:
            extra["asof"] = asof
        label = str(parsed["label"]) if parsed else INVALID
        preds.append(Prediction(
            id=str(row["id"]), label=label, confidence=conf, ticker=row.get("ticker"), date=row.get("date"),
            expected_move=float(move) if isinstance(move, (int, float)) and math.isfinite(move) else None,
            raw_output=text, gold=row.get("label") or None, extra=extra,
        ))
    return preds
