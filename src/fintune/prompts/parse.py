"""Strict parsers for generated answers: a parse either succeeds exactly or returns ``None``.

``None`` means the output is unusable and the caller records the label ``"invalid"``
(:data:`fintune.records.INVALID`); nothing is guessed from free text. Decisions, all deliberate:

* :func:`parse_label`: the first non-empty line must be exactly one label (case-insensitive; surrounding
  whitespace, quotes and trailing ``.!,;:`` allowed). ``"The sentiment is positive"`` is rejected (``None``):
  searching for a label word inside a sentence turns "not positive" into "positive".
* :func:`parse_structured`: every non-empty line must be a ``SENTIMENT:``, ``CONFIDENCE:`` or ``ANALYSIS:`` line
  (lines after ``ANALYSIS:`` continue the analysis); exactly one ``SENTIMENT:`` line with a label in the set;
  any key twice (even with the same value) is rejected. ``CONFIDENCE`` is a float in [0, 1], a percentage
  (``85%``) in [0, 100], or a level ``LOW`` / ``MEDIUM`` / ``HIGH`` (any case), which stands for the number in
  :data:`fintune.labels.CONFIDENCE_LEVELS` (the level itself is kept as ``confidence_level``). Anything else on
  the CONFIDENCE line (``very high``, ``1.2``) makes the whole answer invalid. The ANALYSIS may state one expected
  move (``rise 3-5%``, ``fall by 2%``, ``up 1.5%``): :func:`expected_move` turns it into a signed % (a range's
  midpoint, ``+4.0``); an analysis with no move or with two different moves gives ``expected_move = None``.
* :func:`parse_forecast`: needs exactly one ``Prediction:`` line whose value is one of the FinGPT-Forecaster bin
  phrases (``up by 2-3%``, ``down by more than 5%``, ...). ``expected_move`` follows FinGPT's own evaluation
  (``fingpt/FinGPT_Forecaster``'s ``parse_answer``: lower bound of the bin + 0.5, so ``2-3%`` -> 2.5 and
  ``more than 5%`` -> 5.5), signed by direction.
* :func:`split_thinking`: a reasoning model (DeepSeek-R1-Distill) writes ``<think>...</think>`` before its answer;
  the block is cut off (everything up to the last ``</think>``, which must be preceded only by the optional opening
  ``<think>`` and the reasoning) and the answer after it is what the strict parsers see. An unterminated
  ``<think>`` leaves no answer (invalid), and a ``<think>`` that does not open the output is not stripped.
* :func:`move_to_bin`: a return of exactly 0 maps to ``U1`` (FinGPT's ``bin_mapping`` calls ``ret >= 0`` up and
  would produce the non-bin ``U0``; the smallest up bin is the honest place for a flat week).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from fintune.errors import FintuneError
from fintune.labels import CONFIDENCE_LEVELS, FORECAST_BINS

_TRAILING = ".!,;:"
_QUOTES = "\"'`*"


def _clean_token(text: str) -> str:
    return text.strip().strip(_QUOTES).strip().rstrip(_TRAILING).strip().strip(_QUOTES).strip()


def _match_label(value: str, labels: Sequence[str]) -> str | None:
    by_lower = {label.lower(): label for label in labels}
    return by_lower.get(_clean_token(value).lower())


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The label an output names on its first non-empty line, or ``None`` when that line is not exactly a label.

    Example: ``parse_label("Positive.", SENTIMENT) == "positive"``; ``parse_label("The sentiment is positive",
    SENTIMENT) is None``.
    """
    for line in (text or "").splitlines():
        if line.strip():
            return _match_label(line, labels)
    return None


_KEY_RE = re.compile(r"^\s*(SENTIMENT|CONFIDENCE|ANALYSIS)\s*:\s*(.*?)\s*$", re.IGNORECASE)


def _parse_confidence(value: str) -> float | None:
    value = value.strip().rstrip(".").strip()
    percent = value.endswith("%")
    number = value[:-1].strip() if percent else value
    if not re.fullmatch(r"[0-9]*\.?[0-9]+", number):
        return None
    conf = float(number) / (100.0 if percent else 1.0)
    return conf if 0.0 <= conf <= 1.0 else None


_UP_WORDS = "rise|rises|rising|gain|gains|increase|increases|climb|climbs|jump|jumps|rally|rallies|up|higher"
_DOWN_WORDS = "fall|falls|falling|drop|drops|decline|declines|slide|slides|sink|sinks|lose|loses|down|lower"
_MOVE_RE = re.compile(
    rf"\b(?P<dir>{_UP_WORDS}|{_DOWN_WORDS})\s+(?:by\s+|about\s+|around\s+|roughly\s+)?"
    r"(?P<lo>[0-9]+(?:\.[0-9]+)?)\s*%?\s*(?:-|–|to)\s*(?P<hi>[0-9]+(?:\.[0-9]+)?)\s*%"
    r"|\b(?P<dir1>" + _UP_WORDS + "|" + _DOWN_WORDS + r")\s+(?:by\s+|about\s+|around\s+|roughly\s+)?"
    r"(?P<one>[0-9]+(?:\.[0-9]+)?)\s*%",
    re.IGNORECASE,
)


def expected_move(analysis: str | None) -> float | None:
    """The signed % move an analysis states (``"Stock likely to rise 3-5% in next session"`` -> ``4.0``).

    A range gives its midpoint; ``fall``/``drop``/``down``/... are negative. ``None`` when no move is stated or
    when the analysis states different moves (never a guess between them).
    """
    moves = set()
    for m in _MOVE_RE.finditer(analysis or ""):
        word = (m.group("dir") or m.group("dir1")).lower()
        if m.group("one") is not None:
            size = float(m.group("one"))
        else:
            lo, hi = float(m.group("lo")), float(m.group("hi"))
            if lo > hi:
                return None
            size = (lo + hi) / 2
        sign = 1.0 if re.fullmatch(_UP_WORDS, word) else -1.0
        moves.add(round(sign * size, 6))
    return moves.pop() if len(moves) == 1 else None


def confidence_value(value: Any) -> tuple[float, str | None] | None:
    """``(number, level)`` of a stated confidence: a level (``HIGH`` -> ``(1.0, 'HIGH')``), a number in [0, 1] or a
    percentage (``"85%"`` -> ``(0.85, None)``); ``None`` when it is none of these."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return (float(value), None) if 0.0 <= float(value) <= 1.0 else None
    if not isinstance(value, str):
        return None
    level = value.strip().rstrip(".").strip().upper()
    if level in CONFIDENCE_LEVELS:
        return CONFIDENCE_LEVELS[level], level
    number = _parse_confidence(value)
    return (number, None) if number is not None else None


def parse_structured(text: str, labels: Sequence[str]) -> dict[str, Any] | None:
    """Parse the structured sentiment answer into ``{'sentiment', 'confidence', 'confidence_level', 'analysis',
    'expected_move'}`` or ``None``.

    ``confidence`` (a number), ``confidence_level`` (``LOW``/``MEDIUM``/``HIGH`` when stated as a level),
    ``analysis`` and ``expected_move`` are ``None`` when absent. Example: ``"SENTIMENT: BULLISH\nCONFIDENCE:
    HIGH\nANALYSIS: Stock likely to rise 3-5% in next session"`` with labels ``[bearish, neutral, bullish]`` ->
    ``sentiment='bullish', confidence=1.0, confidence_level='HIGH', expected_move=4.0``.
    """
    found: dict[str, str] = {}
    analysis_parts: list[str] = []
    in_analysis = False
    for line in (text or "").splitlines():
        m = _KEY_RE.match(line)
        if m is None:
            if not line.strip():
                continue
            if not in_analysis:
                return None  # free text outside the three keys
            analysis_parts.append(line.strip())
            continue
        key, value = m.group(1).upper(), m.group(2)
        if key in found:
            return None  # a repeated key is ambiguous even when the values agree
        found[key] = value
        in_analysis = key == "ANALYSIS"
        if in_analysis:
            analysis_parts.append(value)
    if "SENTIMENT" not in found:
        return None
    sentiment = _match_label(found["SENTIMENT"], labels)
    if sentiment is None:
        return None
    confidence, level = None, None
    if "CONFIDENCE" in found:
        stated = confidence_value(found["CONFIDENCE"])
        if stated is None:
            return None
        confidence, level = stated
    analysis = "\n".join(analysis_parts).strip() or None
    return {"sentiment": sentiment, "confidence": confidence, "confidence_level": level, "analysis": analysis,
            "expected_move": expected_move(analysis)}


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def split_thinking(text: str) -> tuple[str, str | None]:
    """``(answer, thinking)``: a leading ``<think>...</think>`` block cut off the output (``thinking`` is None
    when there is none).

    The generation prompt may already hold ``<think>\\n`` (DeepSeek-R1's official one), so a closing tag without
    the opening one also ends a reasoning block. An opening tag that is never closed means the model ran out of
    tokens while reasoning: the answer is ``""`` (the caller scores it invalid) and the reasoning is all the text.
    """
    text = text or ""
    stripped = text.lstrip()
    if THINK_CLOSE in text:
        head, _, answer = text.rpartition(THINK_CLOSE)
        body = head.lstrip()
        body = body[len(THINK_OPEN):] if body.startswith(THINK_OPEN) else body
        return answer.lstrip("\n"), body.strip("\n")
    if stripped.startswith(THINK_OPEN):
        return "", stripped[len(THINK_OPEN):].strip("\n")
    return text, None


# ------------------------------------------------------------------ forecaster bins

_BIN_RANGES = {"1": "0-1%", "2": "1-2%", "3": "2-3%", "4": "3-4%", "5": "4-5%", "5+": "more than 5%"}


def _check_bin(bin_label: str) -> str:
    if bin_label not in FORECAST_BINS:
        raise FintuneError(f"unknown forecast bin {bin_label!r}", f"allowed bins: {list(FORECAST_BINS)}")
    return bin_label


def bin_to_text(bin_label: str) -> str:
    """FinGPT-Forecaster's phrase for a bin: ``"U3"`` -> ``"up by 2-3%"``, ``"D5+"`` -> ``"down by more than 5%"``."""
    _check_bin(bin_label)
    direction = "up" if bin_label[0] == "U" else "down"
    return f"{direction} by {_BIN_RANGES[bin_label[1:]]}"


def bin_midpoint(bin_label: str) -> float:
    """Signed % move FinGPT's evaluation assigns a bin: ``"U3"`` -> ``2.5``, ``"D5+"`` -> ``-5.5``."""
    _check_bin(bin_label)
    magnitude = int(bin_label[1]) - 0.5 + (1.0 if bin_label.endswith("+") else 0.0)
    return magnitude if bin_label[0] == "U" else -magnitude


def move_to_bin(pct_return: float) -> str:
    """Bin of a fractional return (``0.025`` = +2.5%): U/D + ceil(|r| x 100), capped at ``5+``; 0 -> ``U1``."""
    if pct_return is None or isinstance(pct_return, bool) or not math.isfinite(float(pct_return)):
        raise FintuneError(f"move_to_bin: return must be a finite number, got {pct_return!r}")
    r = float(pct_return)
    # round first so 0.03 (stored as 0.030000000000000002 after arithmetic) stays in U3, not U4
    size = math.ceil(round(abs(r) * 100, 9))
    size = max(size, 1)
    return ("U" if r >= 0 else "D") + (str(size) if size <= 5 else "5+")


_TEXT_TO_BIN = {bin_to_text(b): b for b in FORECAST_BINS}
_SECTION_RE = re.compile(
    r"^\s*\[(positive developments|potential concerns|prediction\s*(?:&|and)\s*analysis)\]\s*:\s*(.*)$",
    re.IGNORECASE,
)
_PRED_RE = re.compile(r"^\s*prediction\s*:\s*(.*?)\s*$", re.IGNORECASE)
_ANALYSIS_RE = re.compile(r"^\s*analysis\s*:\s*(.*)$", re.IGNORECASE)


def _prediction_bin(value: str) -> str | None:
    phrase = re.sub(r"\s+", " ", value.strip().rstrip(_TRAILING).strip()).lower()
    return _TEXT_TO_BIN.get(phrase)


def _forecast_lines(text: str) -> list[str]:
    """Lines with a section header's trailing text and a same-line ``Analysis:`` moved onto lines of their own."""
    out: list[str] = []
    for line in text.splitlines():
        m = _SECTION_RE.match(line)
        if m and m.group(2).strip():
            out.append(line[: m.start(2)])
            line = m.group(2)
        pm = _PRED_RE.match(line)
        split = re.search(r"\banalysis\s*:", line, re.IGNORECASE) if pm else None
        if split:
            out.extend([line[: split.start()], line[split.start() :]])
        else:
            out.append(line)
    return out


def parse_forecast(text: str) -> dict[str, Any] | None:
    """Parse a FinGPT-Forecaster answer; ``None`` without exactly one valid ``Prediction:`` line.

    Returns ``{'direction': 'up'|'down', 'bin': 'U3', 'expected_move': 2.5, 'positive_developments': str|None,
    'potential_concerns': str|None, 'analysis': str|None}``.
    """
    sections: dict[str, list[str]] = {}
    current: str | None = None
    predictions: list[str] = []
    analysis: list[str] | None = None
    for line in _forecast_lines(text or ""):
        m = _SECTION_RE.match(line)
        if m:
            name = m.group(1).lower()
            current = (
                "positive_developments"
                if name.startswith("positive")
                else "potential_concerns"
                if name.startswith("potential")
                else "prediction_analysis"
            )
            if current in sections:
                return None
            sections[current] = [m.group(2)] if m.group(2).strip() else []
            analysis = None
            continue
        pm = _PRED_RE.match(line)
        if pm:
            predictions.append(pm.group(1))
            current, analysis = None, None
            continue
        am = _ANALYSIS_RE.match(line)
        if am and predictions:
            if analysis is not None:
                return None
            analysis = [am.group(1)]
            current = None
            continue
        if analysis is not None:
            analysis.append(line)
        elif current is not None:
            sections[current].append(line)
    if len(predictions) != 1:
        return None
    bin_label = _prediction_bin(predictions[0])
    if bin_label is None:
        return None

    def _text(lines: list[str] | None) -> str | None:
        joined = "\n".join(lines).strip() if lines else ""
        return joined or None

    return {
        "direction": "up" if bin_label[0] == "U" else "down",
        "bin": bin_label,
        "expected_move": bin_midpoint(bin_label),
        "positive_developments": _text(sections.get("positive_developments")),
        "potential_concerns": _text(sections.get("potential_concerns")),
        "analysis": _text(analysis),
    }


# ------------------------------------------------------------------ NER


def parse_entities(text: str, types: Sequence[str]) -> list[tuple[str, str]] | None:
    """Parse the NER answer: one ``entity text, TYPE`` per line, or exactly ``None`` for no entities.

    The type is the text after the LAST comma (entity names may contain commas) and must be in ``types``
    (case-insensitive, returned canonical). Any other line -> ``None`` (unparsable).
    """
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return None
    if len(lines) == 1 and lines[0].rstrip(".").lower() == "none":
        return []
    by_lower = {t.lower(): t for t in types}
    out: list[tuple[str, str]] = []
    for line in lines:
        entity, sep, etype = line.rpartition(",")
        canonical = by_lower.get(etype.strip().lower())
        if not sep or not entity.strip() or canonical is None:
            return None
        out.append((entity.strip(), canonical))
    return out
