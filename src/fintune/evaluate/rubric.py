"""Generation quality rubric for structured analyses and forecaster answers: measurable, deterministic checks.

Per answer: format compliance (the strict parser accepts it), entity grounding (share of company names / tickers in
the answer that occur in the input), numeric grounding (share of numbers in the answer that occur in the input or
are derivable from the label, e.g. a forecast bin's bounds), length in words and repetition (share of repeated
word 3-grams). :func:`rubric_report` averages them; a metric with nothing to check (no entity named) is ``None``
for that answer and left out of the mean, with the count of answers it applied to.

An optional judge model (OpenAI-compatible ``/chat/completions``) scores coherence and depth 1-5 with a fixed
rubric; :func:`judge_agreement` reports its agreement with a small hand-labelled set.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fintune.errors import FintuneError
from fintune.predict import parse_generated
from fintune.prompts.parse import bin_to_text

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?")
_TICKER = re.compile(r"\$?\b[A-Z]{2,5}\b")
_NAME = re.compile(r"\b[A-Z][a-zA-Z&.\-]+(?:\s+[A-Z][a-zA-Z&.\-]+)*")
_NOT_ENTITIES = {
    "The", "A", "An", "In", "On", "At", "For", "And", "But", "Or", "If", "It", "Its", "This", "That", "These",
    "Those", "We", "I", "He", "She", "They", "Analysis", "Prediction", "Positive", "Negative", "Neutral",
    "Potential", "Concerns", "Developments", "Sentiment", "Confidence", "SENTIMENT", "CONFIDENCE", "ANALYSIS",
    "However", "Overall", "Given", "While", "Also", "As", "With", "The company", "Moreover", "Furthermore",
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December", "Q1", "Q2", "Q3", "Q4", "EPS", "CEO", "CFO",
    "USD", "EUR", "US", "UP", "DOWN",
}


def extract_numbers(text: str) -> list[float]:
    """Numbers written in ``text`` (``1,200`` -> 1200.0, ``-3.5%`` -> -3.5); signs are kept."""
    out = []
    for m in _NUMBER.finditer(text or ""):
        try:
            out.append(float(m.group().replace(",", "")))
        except ValueError:
            continue
    return out


def extract_entities(text: str) -> list[str]:
    """Company names (capitalised word runs) and tickers (2-5 capitals, optional ``$``) named in ``text``."""
    found: list[str] = []
    for m in _TICKER.finditer(text or ""):
        tok = m.group().lstrip("$")
        if tok not in _NOT_ENTITIES and tok not in found:
            found.append(tok)
    for m in _NAME.finditer(text or ""):
        words = [w for w in m.group().split() if w not in _NOT_ENTITIES]
        name = " ".join(words).rstrip(".")
        if len(name) > 1 and name not in found and not name.isupper():
            found.append(name)
    return found


def entity_grounding(answer: str, source: str) -> float | None:
    """Share of entities named in ``answer`` that occur (case-insensitively) in ``source``; None if none named."""
    ents = extract_entities(answer)
    if not ents:
        return None
    src = (source or "").lower()
    return sum(e.lower() in src for e in ents) / len(ents)


def numeric_grounding(answer: str, source: str, derivable: Sequence[float] = ()) -> float | None:
    """Share of numbers in ``answer`` found in ``source`` or in ``derivable`` (by absolute value, to 1e-9);
    None when the answer has no number."""
    nums = extract_numbers(answer)
    if not nums:
        return None
    allowed = {round(abs(x), 9) for x in [*extract_numbers(source), *derivable]}
    return sum(round(abs(x), 9) in allowed for x in nums) / len(nums)


def repetition(text: str, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier one (0 = none repeated; 0 for texts shorter than n words)."""
    words = (text or "").lower().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def derivable_numbers(label: str | None, fmt: str) -> list[float]:
    """Numbers an answer may state without them being in the input: a forecast bin's bounds (``U3`` -> 2, 3)."""
    if fmt == "forecaster" and label and label[0] in "UD":
        try:
            return extract_numbers(bin_to_text(label))
        except FintuneError:
            return []
    return []


def score_answer(answer: str, source: str, fmt: str, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Every rubric metric for one generated answer to the input ``source``."""
    parsed = parse_generated(answer, fmt, labels)
    label = parsed.get("label") if parsed else None
    return {
        "format_ok": parsed is not None,
        "entity_grounding": entity_grounding(answer, source),
        "numeric_grounding": numeric_grounding(answer, source, derivable_numbers(label, fmt)),
        "length_words": len((answer or "").split()),
        "repetition": repetition(answer),
    }


def rubric_report(answers: Sequence[str], sources: Sequence[str], fmt: str,
                  labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Mean of each rubric metric over the answers (``None`` metrics skipped, with ``n_<metric>`` counts)."""
    if len(answers) != len(sources):
        raise FintuneError(f"rubric: {len(answers)} answers but {len(sources)} inputs", "pass one input per answer")
    rows = [score_answer(a, s, fmt, labels) for a, s in zip(answers, sources, strict=True)]
    out: dict[str, Any] = {"n": len(rows)}
    for key in ("format_ok", "entity_grounding", "numeric_grounding", "length_words", "repetition"):
        vals = [float(r[key]) for r in rows if r[key] is not None]
        name = "format_compliance" if key == "format_ok" else key
        out[name] = sum(vals) / len(vals) if vals else None
        out[f"n_{name}"] = len(vals)
    return out


# ---------------------------------------------------------------- optional judge

JUDGE_RUBRIC = (
    "You grade a financial analysis written about the INPUT. Score two criteria from 1 (worst) to 5 (best).\n"
    "COHERENCE: 5 = every sentence follows from the input and from the previous ones, no contradiction; "
    "3 = mostly consistent with one unsupported or contradictory claim; 1 = incoherent or contradicts the input.\n"
    "DEPTH: 5 = names concrete drivers from the input and explains their likely effect; 3 = generic reasons; "
    "1 = no reasoning.\nReply with exactly two lines: 'COHERENCE: <1-5>' and 'DEPTH: <1-5>'."
)
_SCORE = re.compile(r"^\s*(COHERENCE|DEPTH)\s*:\s*([1-5])\s*$", re.IGNORECASE | re.MULTILINE)


def parse_judge_reply(text: str) -> dict[str, int] | None:
    """``{'coherence': n, 'depth': n}`` from the judge's reply, or None when either line is missing."""
    found = {k.lower(): int(v) for k, v in _SCORE.findall(text or "")}
    return found if set(found) == {"coherence", "depth"} else None


def judge_scores(answers: Sequence[str], sources: Sequence[str], endpoint: str, model: str,
                 api_key: str | None = None, client: Any = None, timeout: float = 60.0) -> list[dict[str, int] | None]:
    """Score each answer with an OpenAI-compatible chat endpoint (``endpoint`` = base URL ending in ``/v1``).

    Deterministic request (temperature 0, the fixed :data:`JUDGE_RUBRIC`); an unparsable reply is ``None``.
    """
    import httpx

    own = client is None
    client = client or httpx.Client(timeout=timeout)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    out: list[dict[str, int] | None] = []
    try:
        for answer, source in zip(answers, sources, strict=True):
            body = {"model": model, "temperature": 0, "messages": [
                {"role": "system", "content": JUDGE_RUBRIC},
                {"role": "user", "content": f"INPUT:\n{source}\n\nANALYSIS:\n{answer}"}]}
            try:
                resp = client.post(endpoint.rstrip("/") + "/chat/completions", json=body, headers=headers)
                resp.raise_for_status()
                text = resp.json()["choices"][0]["message"]["content"]
            except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
                raise FintuneError(f"judge {endpoint}: request failed ({type(exc).__name__}: {str(exc)[:120]})",
                                   "check --judge-endpoint, the model name and the API key") from None
            out.append(parse_judge_reply(text))
    finally:
        if own:
            client.close()
    return out


def judge_agreement(judge: Sequence[dict[str, int] | None], human: Sequence[dict[str, int]]) -> dict[str, Any]:
    """Agreement of judge and hand labels per criterion: quadratic-weighted Cohen's kappa and exact-match rate
    (unparsable judge replies are counted and left out)."""
    from sklearn.metrics import cohen_kappa_score

    if len(judge) != len(human):
        raise FintuneError(f"judge agreement: {len(judge)} judge scores but {len(human)} hand labels")
    pairs = [(j, h) for j, h in zip(judge, human, strict=True) if j is not None]
    out: dict[str, Any] = {"n": len(pairs), "unparsable": len(judge) - len(pairs)}
    for crit in ("coherence", "depth"):
        a = [j[crit] for j, _ in pairs]
        b = [h[crit] for _, h in pairs]
        out[crit] = {
            "kappa_quadratic": float(cohen_kappa_score(a, b, weights="quadratic", labels=[1, 2, 3, 4, 5]))
            if pairs else None,
            "exact_agreement": sum(x == y for x, y in zip(a, b, strict=True)) / len(a) if a else None,
        }
    return out
