"""Declared label sets per task and strict label normalisation.

An unknown label is an error, never a guess: ``normalize_label("bullish", SENTIMENT)`` raises unless a
``label_map`` says what "bullish" means.

A recipe may declare its own sentiment vocabulary (``data.labels: [bearish, neutral, bullish]``); each declared
label then has a *canonical* sentiment (negative / neutral / positive) that metrics across runs and the backtest
use. ``bearish``/``bullish`` (any case) and the canonical names themselves map by :data:`CANONICAL_SYNONYMS`; any
other vocabulary declares its mapping in ``data.canonical_labels`` (:func:`canonical_map` checks it). A source that
writes canonical labels (PhraseBank, synth) loads into a declared vocabulary through that mapping: ``positive`` ->
``bullish`` (:func:`normalize_label`), never by guessing from other words.

Stated confidence may be a level: :data:`CONFIDENCE_LEVELS` gives the number each level stands for (the value
``Prediction.confidence`` carries, so ``fintune backtest --sizing confidence`` sizes a HIGH call as a full unit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fintune.errors import FintuneError

SENTIMENT = ("negative", "neutral", "positive")
"""Three-way financial sentiment (PhraseBank, FiQA-SA thresholded, TFNS, SemEval thresholded)."""

FORECAST_BINS = ("D5+", "D5", "D4", "D3", "D2", "D1", "U1", "U2", "U3", "U4", "U5", "U5+")
"""FinGPT-Forecaster weekly move bins: U/D + ceil(|return| x 100), 'D5+'/'U5+' for moves beyond 5%."""

HEADLINE_ANSWERS = ("no", "yes")
"""Gold-headline yes/no questions."""

CANONICAL_SYNONYMS: dict[str, str] = {"bearish": "negative", "bullish": "positive", "negative": "negative",
                                      "neutral": "neutral", "positive": "positive"}
"""Declared sentiment label (lower case) -> canonical sentiment, when the recipe gives no ``canonical_labels``."""

CONFIDENCE_LEVELS: dict[str, float] = {"LOW": 1 / 3, "MEDIUM": 2 / 3, "HIGH": 1.0}
"""A stated confidence level -> the number it stands for: the upper edge of its third of [0, 1]. Position sizing
(``--sizing confidence``) takes a HIGH call as a full unit, MEDIUM as 2/3 and LOW as 1/3."""

TASK_LABELS: dict[str, tuple[str, ...]] = {
    "sentiment": SENTIMENT,
    "forecaster": FORECAST_BINS,
    "headlines": HEADLINE_ANSWERS,
}


class LabelSet(tuple):
    """A declared label tuple with ``canonical`` (declared label -> canonical sentiment); behaves as a tuple."""

    canonical: dict[str, str]


def labels_for_task(task: str, declared: Sequence[str] | None = None,
                    canonical: Mapping[str, str] | None = None) -> tuple[str, ...] | None:
    """The label set in force: the recipe's declared one, else the task's default (None for ner/pretrain).

    With ``canonical`` (``data.canonical_labels``) the result is a :class:`LabelSet` carrying that mapping.
    """
    if declared:
        if canonical:
            out = LabelSet(declared)
            out.canonical = canonical_map(task, declared, canonical)
            return out
        return tuple(declared)
    return TASK_LABELS.get(task)


def canonical_map(task: str, labels: Sequence[str], declared: Mapping[str, str] | None = None) -> dict[str, str]:
    """Declared label -> canonical sentiment for a sentiment label set ({} for other tasks).

    ``declared`` (``data.canonical_labels``) wins; otherwise :data:`CANONICAL_SYNONYMS`. Raises when a declared
    mapping names an unknown label or a non-canonical target, or when two labels map to the same sentiment. A
    label with no mapping is left out (it has no canonical meaning: no position in a backtest).
    """
    if task != "sentiment":
        return {}
    given = dict(getattr(labels, "canonical", None) or declared or {})
    unknown = sorted(set(given) - set(labels))
    if unknown:
        raise FintuneError(f"data.canonical_labels: {unknown} not in data.labels {list(labels)}")
    out: dict[str, str] = {}
    for label in labels:
        target = given.get(label) if given else CANONICAL_SYNONYMS.get(label.lower())
        if target is None:
            continue
        if target not in SENTIMENT:
            raise FintuneError(f"data.canonical_labels: '{label}' maps to {target!r}",
                               f"map each label to one of {list(SENTIMENT)}")
        out[label] = target
    dupes = sorted({t for t in out.values() if list(out.values()).count(t) > 1})
    if dupes:
        raise FintuneError(f"data.labels {list(labels)}: several labels mean {dupes}",
                           "give each canonical sentiment at most one declared label")
    return out


def canonical_label(label: str, labels: Sequence[str], task: str = "sentiment") -> str | None:
    """The canonical sentiment of one declared ``label`` (``None`` when it has none, e.g. ``invalid``)."""
    return canonical_map(task, labels).get(label)


def normalize_label(raw: object, labels: Sequence[str], where: str,
                    label_map: Mapping[str, str] | None = None) -> str:
    """Map a raw label to the declared label set; anything unknown raises naming ``where``.

    Matching is case- and whitespace-insensitive; ``label_map`` (raw -> declared) is applied first. A canonical
    label (``positive``) is accepted for the declared label that means it (``bullish``, see :func:`canonical_map`).
    """
    if raw is None or (isinstance(raw, float) and raw != raw):
        raise FintuneError(f"{where}: missing label (empty or NaN)")
    key = str(raw).strip()
    if label_map:
        lowered = {str(k).strip().lower(): v for k, v in label_map.items()}
        key = str(lowered.get(key.lower(), key))
    by_lower = {label.lower(): label for label in labels}
    if key.lower() in by_lower:
        return by_lower[key.lower()]
    if key.lower() in SENTIMENT and set(SENTIMENT) - set(labels):
        # a canonical label (from PhraseBank, synth, ...) into a declared vocabulary: positive -> bullish
        meaning = {v: k for k, v in canonical_map("sentiment", labels).items()}
        if key.lower() in meaning:
            return meaning[key.lower()]
    hint = f"allowed labels: {list(labels)}; map others with label_map"
    raise FintuneError(f"{where}: unknown label {raw!r}", hint)
