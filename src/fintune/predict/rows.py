"""Prepared rows -> prompts and candidate answers; model outputs -> :class:`~fintune.records.Prediction`.

Score mode scores exactly the answer text training taught (``label_prompts``); generate mode renders the prompt up
to the assistant header (``generation_prompt``) and parses strictly (``parse_generated``): an output that does not
parse becomes the ``invalid`` label, never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fintune.errors import FintuneError
from fintune.labels import FORECAST_BINS
from fintune.prompts import parse
from fintune.prompts.parse import bin_midpoint, bin_to_text, parse_forecast, split_thinking
from fintune.prompts.tasks import answer_text
from fintune.prompts.templates import TEMPLATE_DATE, render_messages
from fintune.records import INVALID, Prediction
from fintune.run import SCORABLE_FORMATS


def softmax_rows(logits: Any, temperature: float = 1.0) -> Any:
    """Row-wise softmax of ``logits / temperature`` (numpy, numerically stable)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- prompts for a prepared row




def _without_answer(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    return [dict(m) for m in messages if m.get("role") != "assistant"] if messages else []


def label_prompts(row: dict[str, Any], labels: Sequence[str], fmt: str, template: str,
                  tokenizer: Any = None, date_string: str | None = None) -> tuple[str, list[str]]:
    """The prompt of a prepared row and, for each label, the exact answer text + end-of-turn it would be trained on.

    Uses the prompts helper (``answer_text``, ``render_messages``) so score mode scores exactly what training
    teaches. Raises if the template renders a different prompt for different labels (it must not).
    ``date_string``: the run's pinned template date (``data.template_date``; default the templates' own).
    """

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

    probs = softmax_rows(logprobs, temperature)
    bins = bool(labels) and all(lab in FORECAST_BINS for lab in labels)
    if bins:

        mids = [bin_midpoint(lab) for lab in labels]
    preds = []
    for row, lp, pr in zip(rows, logprobs, probs, strict=True):
        best = int(pr.argmax())
        extra: dict[str, Any] = {"temperature": temperature, **({"model": model_name} if model_name else {})}
        move = p_up = None
        if bins:  # forecaster bins: the argmax bin's midpoint, plus the probability-weighted move and p(up)
            move = mids[best]
            extra["expected_move_mean"] = float(sum(p * m for p, m in zip(pr, mids, strict=True)))
            p_up = float(sum(p for p, lab in zip(pr, labels, strict=True) if lab.startswith("U")))
        preds.append(Prediction(
            id=str(row["id"]), label=labels[best], probabilities={lab: float(p) for lab, p in zip(labels, pr, strict=True)},
            confidence=float(pr[best]), ticker=row.get("ticker"), date=row.get("date"), expected_move=move,
            gold=row.get("label") or None, extra=extra, asof=signal_asof(row), p_up=p_up,
            label_logprobs={lab: float(v) for lab, v in zip(labels, lp, strict=True)},
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
        if parsed and parsed.get("confidence_level"):  # stated as LOW/MEDIUM/HIGH; ``confidence`` holds its number
            extra["confidence_level"] = parsed["confidence_level"]
        sections = {k: v for k, v in parsed.items() if k not in _NOT_SECTIONS and isinstance(v, str)} \
            if parsed else None
        if model_name:
            extra["model"] = model_name
        label = str(parsed["label"]) if parsed else INVALID
        preds.append(Prediction(
            id=str(row["id"]), label=label, confidence=conf, ticker=row.get("ticker"), date=row.get("date"),
            expected_move=float(move) if isinstance(move, (int, float)) and math.isfinite(move) else None,
            raw_output=text, gold=row.get("label") or None, extra=extra, asof=signal_asof(row), sections=sections,
        ))
    return preds
