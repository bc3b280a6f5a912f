"""The two record schemas every stage shares: :class:`Example` (data in) and :class:`Prediction` (model out).

``data`` produces Examples; ``eval`` and ``analyze`` produce Predictions; ``backtest`` reads Predictions and prices
and never a model; ``serve`` returns Predictions as JSON. Both round-trip through JSONL with one-line errors that
name ``file:line`` and the field.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fintune.artifacts import atomic_write_text, strict_json
from fintune.errors import FintuneError

CSV_FIELD_LIMIT = 16 * 1024 * 1024
"""Largest CSV field fintune reads (16 MiB): Python's default of 128 KiB rejects long articles and filings."""
csv.field_size_limit(CSV_FIELD_LIMIT)

INVALID = "invalid"
"""The label of a model output that did not parse. Never mapped to a class, never dropped."""


@dataclass
class Example:
    """One labelled (or unlabelled) piece of financial text.

    Attributes:
        id: unique within a dataset (loaders build it from source and row, e.g. ``fpb50-000123``).
        text: the input text (sentence, headline, tweet, or a full forecaster prompt body).
        label: normalised label from the task's declared label set, or ``None`` when unlabelled.
        date: ISO date or timestamp (``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SS``) when known.
        ticker: upper-case ticker symbol when known.
        source: the loader that produced it (``phrasebank``, ``fiqa``, ``tfns``, ...).
        extra: anything else a later stage may need (agreement level, raw score, target answer text, ...).
    """

    id: str
    text: str
    label: str | None = None
    date: str | None = None
    ticker: str | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class Prediction:
    """One model prediction, the format ``eval``, ``analyze``, ``serve`` write and ``backtest`` reads.

    Attributes:
        id: the Example id it answers.
        label: predicted label, or ``"invalid"`` when a generated output did not parse.
        probabilities: label -> probability (sums to 1) in score mode; empty when unknown.
        confidence: probability of the predicted label (calibrated when a temperature was fitted), or the
            model's stated confidence in generate mode; ``None`` when unknown.
        ticker / date: copied from the Example, so a backtest can place the signal in time.
        expected_move: forecaster's predicted % move for the next period (``+2.5`` means up 2.5%), if any.
        raw_output: the generated text (generate mode) or ``""`` (score mode).
        gold: the gold label when the Example had one (lets metrics be recomputed from this file alone).
        asof: when the prediction's information ends (a weekly forecaster's last prompt item); a backtest trades
            it at the next open after ``asof`` instead of ``date``.
        label_logprobs: score mode: each label's answer log-probability (calibration refits from these).
        p_up: forecaster score mode: the probability mass of the ``U*`` bins.
        sections: generate mode: the parsed text sections (analysis, positive developments, ...).
        extra: anything else (latency, model name, temperature).
    """

    id: str
    label: str
    probabilities: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None
    ticker: str | None = None
    date: str | None = None
    expected_move: float | None = None
    raw_output: str = ""
    gold: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    asof: str | None = None
    label_logprobs: dict[str, float] | None = None
    p_up: float | None = None
    sections: dict[str, str] | None = None

    def __post_init__(self) -> None:
        # files written before these fields were typed carried them in ``extra``: lift them out
        for name in PREDICTION_TYPED_EXTRA:
            if name in self.extra and getattr(self, name) is None:
                setattr(self, name, self.extra.pop(name))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


PREDICTION_TYPED_EXTRA = ("asof", "label_logprobs", "p_up", "sections")
"""Prediction fields that older files kept in ``extra``."""

_REQUIRED = {Example: ("id", "text"), Prediction: ("id", "label")}


def _check_number(value: Any, where: str, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FintuneError(f"{where}: field '{name}' must be a number, got {value!r}")
    if math.isnan(value) or math.isinf(value):
        raise FintuneError(f"{where}: field '{name}' is {value}", "give a finite number or null")
    return float(value)


def record_from_dict(cls: type, row: dict[str, Any], where: str) -> Any:
    """Build an Example or Prediction from a dict, with a one-line error naming ``where`` and the field.

    Unknown keys are an error (a typo would otherwise be dropped silently).
    """
    if not isinstance(row, dict):
        raise FintuneError(f"{where}: expected a JSON object, got {type(row).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(row) - names)
    if unknown:
        raise FintuneError(f"{where}: unknown field(s) {unknown}", f"allowed fields: {sorted(names)}")
    for key in _REQUIRED[cls]:
        if row.get(key) in (None, ""):
            raise FintuneError(f"{where}: missing or empty field '{key}'")
    row = dict(row)
    row["id"] = str(row["id"])
    if cls is Example and not isinstance(row["text"], str):
        raise FintuneError(f"{where}: field 'text' must be a string, got {type(row['text']).__name__} "
                           f"{str(row['text'])[:40]!r}", "quote the text")
    for name in ("label", "ticker", "date", "gold", "source", "raw_output"):
        if name in row and row[name] is not None and not isinstance(row[name], str):
            raise FintuneError(f"{where}: field '{name}' must be a string, got {type(row[name]).__name__} "
                               f"{row[name]!r}", f"quote it, e.g. \"{name}\": \"{row[name]}\"")
    if "extra" in row and row["extra"] is not None and not isinstance(row["extra"], dict):
        raise FintuneError(f"{where}: field 'extra' must be an object")
    if cls is Prediction:
        row["confidence"] = _check_number(row.get("confidence"), where, "confidence")
        row["expected_move"] = _check_number(row.get("expected_move"), where, "expected_move")
        probs = row.get("probabilities") or {}
        if not isinstance(probs, dict):
            raise FintuneError(f"{where}: field 'probabilities' must be an object label -> probability")
        row["probabilities"] = {str(k): _check_number(v, where, f"probabilities.{k}") for k, v in probs.items()}
        row["p_up"] = _check_number(row.get("p_up"), where, "p_up")
    return cls(**row)


def write_jsonl(path: str | Path, records: Iterable[Example | Prediction | dict[str, Any]]) -> int:
    """Write records as JSONL atomically (temp file + rename); returns the number written."""
    lines = [json.dumps(strict_json(r if isinstance(r, dict) else r.to_dict(), f"{path} row {i}"),
                        ensure_ascii=False, allow_nan=False) for i, r in enumerate(records)]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def check_strings(value: Any, where: str, field_path: str = "") -> None:
    """Raise naming ``where`` and the field when a string (at any depth) holds a lone UTF-16 surrogate
    (JSON ``"\\ud800"``), which no UTF-8 output can carry, or a number is not finite (JSON ``NaN``)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise FintuneError(f"{where}: field '{field_path or 'value'}' is {value}", "give a finite number or null")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            name = field_path or "value"
            raise FintuneError(f"{where}: field '{name}' holds a lone surrogate {value[exc.start]!r} at character "
                               f"{exc.start}", "fix the \\uD8xx escape (a broken emoji?) or remove the character") \
                from None
    elif isinstance(value, dict):
        for k, v in value.items():
            check_strings(k, where, field_path or "key")
            check_strings(v, where, f"{field_path}.{k}" if field_path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_strings(v, where, f"{field_path}[{i}]")


def decode_line(raw: bytes, path: str | Path, lineno: int) -> str:
    """One line of a UTF-8 file as text; invalid bytes are a one-line error naming the file, line and byte."""
    try:
        return raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise FintuneError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start + 1} of the line: "
                           f"{raw[exc.start:exc.start + 1]!r})", "re-save the file as UTF-8") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; a bad line raises naming ``file:line``.

    Invalid UTF-8, invalid JSON, non-finite numbers (``NaN``, ``Infinity``) and lone surrogates are errors.
    """
    path = Path(path)
    if path.is_dir():
        raise FintuneError(f"{path}: is a directory, not a JSONL file")
    if not path.exists():
        raise FintuneError(f"{path}: file not found")
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = decode_line(raw, path, lineno)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FintuneError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            check_strings(obj, f"{path}:{lineno}")
            yield lineno, obj


def read_examples(path: str | Path) -> list[Example]:
    """Read Examples from JSONL; duplicate ids are an error."""
    return _read_records(Example, path)


def read_predictions(path: str | Path) -> list[Prediction]:
    """Read Predictions from JSONL; duplicate ids are an error."""
    return _read_records(Prediction, path)


def _read_records(cls: type, path: str | Path) -> list[Any]:
    return read_records_with_lines(cls, path)[0]


def read_records_with_lines(cls: type, path: str | Path) -> tuple[list[Any], dict[str, int]]:
    """Records of a JSONL file and the line each id is on (a duplicate id is an error naming both lines; an empty
    file is an error)."""
    out, seen = [], {}
    for lineno, row in iter_jsonl(path):
        rec = record_from_dict(cls, row, f"{path}:{lineno}")
        if rec.id in seen:
            raise FintuneError(f"{path}:{lineno}: duplicate id '{rec.id}' (first on line {seen[rec.id]})")
        seen[rec.id] = lineno
        out.append(rec)
    if not out:
        raise FintuneError(f"{path}: no records", "the file is empty")
    return out, seen


def read_json_object(path: str | Path, expected: str = "a JSON object") -> dict[str, Any]:
    """A JSON file that must hold one object (``metrics.json``), with one-line errors naming the file;
    ``expected`` says what the object should be in the error."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FintuneError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise FintuneError(f"{path}: expected {expected}")
    return value
