"""Task formats: an :class:`~fintune.records.Example` -> chat messages, and a label -> the exact answer text.

Formats (``DataConfig.format``):

``label``
    FinGPT style: ``Instruction: What is the sentiment of this news? Please choose an answer from
    {negative/neutral/positive}.`` + ``Input: <text>``; the answer is the label word alone.
``structured``
    Same question, answered as ``SENTIMENT: <label>`` optionally followed by ``CONFIDENCE: <0-1 or
    LOW/MEDIUM/HIGH>`` and ``ANALYSIS: <text>``; the label is written as the recipe declares it (``labels: [BEARISH, NEUTRAL,
    BULLISH]`` trains ``SENTIMENT: BULLISH``), a confidence level as its upper-case name. The answer never
    invents facts: CONFIDENCE and ANALYSIS are written only when the Example carries them in
    ``extra['confidence']`` / ``extra['analysis']`` (synthetic, teacher or seed data); otherwise the structured
    answer is just the SENTIMENT line.
``forecaster``
    FinGPT-Forecaster: the whole user prompt is built by the forecaster data builder and arrives as
    ``Example.text``; a row's own system prompt (``extra['system_prompt']``, the ``<<SYS>>`` block of a published
    FinGPT row) is the system message unless the recipe sets ``data.system_prompt``; the target answer
    (``[Positive Developments]: ... [Potential Concerns]: ... [Prediction & Analysis]: Prediction: up by 2-3%
    Analysis: ...``) is ``extra['answer']`` when present.
``ner``
    The model lists entities one per line as ``entity text, TYPE`` (or ``None``); gold entities come from
    ``extra['entities']`` (a list of ``[text, type]`` pairs or ``{'text':..., 'type':...}`` dicts).
``headlines``
    Yes/no question about a headline: the question is ``extra['question']``, the answer ``yes``/``no``.
``text``
    Raw text for continued pre-training: one user message holding ``Example.text``, no answer turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fintune.errors import FintuneError
from fintune.labels import HEADLINE_ANSWERS, SENTIMENT
from fintune.prompts.parse import bin_to_text, confidence_value, parse_forecast
from fintune.records import Example

FORMATS = ("structured", "label", "forecaster", "ner", "headlines", "text")
NER_TYPES = ("PER", "ORG", "LOC", "MISC")
"""Entity types of the FinNER data (CoNLL IO tags)."""

SENTIMENT_QUESTION = "What is the sentiment of this news? Please choose an answer from {{{choices}}}."
STRUCTURED_FORMAT_HINT = (
    'Reply with the line "SENTIMENT: <answer>", optionally followed by the lines "CONFIDENCE: <a number from 0 '
    'to 1>" and "ANALYSIS: <one or two sentences>".'
)
NER_QUESTION = (
    "Please extract the named entities (types: {types}) from the input sentence. Write one entity per line "
    'as "entity text, TYPE". If there are no entities, write "None".'
)
HEADLINE_CHOICES = "Please choose an answer from {{{choices}}}."


def _where(example: Example) -> str:
    return f"example '{example.id}'"


def _choices(labels: Sequence[str]) -> str:
    return "/".join(labels)


def _user(instruction: str, text: str) -> str:
    return f"Instruction: {instruction}\nInput: {text}"


def format_entities(entities: Any, where: str = "extra['entities']") -> str:
    """The NER answer for a gold entity list: ``"Apple Inc, ORG\\nTim Cook, PER"``, or ``"None"`` when empty."""
    if not isinstance(entities, (list, tuple)):
        raise FintuneError(f"{where}: must be a list of [text, type] pairs, got {type(entities).__name__}")
    lines = []
    for i, ent in enumerate(entities):
        if isinstance(ent, dict):
            text, etype = ent.get("text"), ent.get("type")
        elif isinstance(ent, (list, tuple)) and len(ent) == 2:
            text, etype = ent
        else:
            raise FintuneError(f"{where}[{i}]: expected [text, type] or {{'text', 'type'}}, got {ent!r}")
        if not isinstance(text, str) or not text.strip() or not isinstance(etype, str) or not etype.strip():
            raise FintuneError(f"{where}[{i}]: entity text and type must be non-empty strings, got {ent!r}")
        if "\n" in text:
            raise FintuneError(f"{where}[{i}]: entity text contains a newline: {text!r}")
        lines.append(f"{text.strip()}, {etype.strip()}")
    return "\n".join(lines) if lines else "None"


def answer_text(label: str, fmt: str, extra: dict[str, Any] | None = None) -> str:
    """The exact text the model is trained to write for ``label`` in format ``fmt`` (score mode scores these).

    ``extra`` supplies what the label alone cannot: ``confidence``/``analysis`` (structured), ``answer``
    (forecaster), ``entities`` (ner; ``label`` is ignored there).
    """
    extra = extra or {}
    if fmt in ("label", "headlines"):
        return label
    if fmt == "structured":
        lines = [f"SENTIMENT: {label}"]
        conf = extra.get("confidence")
        if conf is not None:
            stated = confidence_value(conf)
            if stated is None:
                raise FintuneError(f"extra['confidence']: must be a number in [0, 1] or LOW/MEDIUM/HIGH, got {conf!r}")
            lines.append(f"CONFIDENCE: {stated[1]}" if stated[1] else f"CONFIDENCE: {stated[0]:.2f}")
        analysis = extra.get("analysis")
        if analysis is not None:
            if not isinstance(analysis, str) or not analysis.strip():
                raise FintuneError(f"extra['analysis']: must be a non-empty string, got {analysis!r}")
            lines.append(f"ANALYSIS: {analysis.strip()}")
        return "\n".join(lines)
    if fmt == "forecaster":
        answer = extra.get("answer")
        if isinstance(answer, str) and answer.strip():
            parsed = parse_forecast(answer)
            if parsed is not None and parsed["bin"] == label:
                return answer.strip()
        # no target answer for this label: the prediction alone, never invented developments/analysis
        return f"[Prediction & Analysis]:\nPrediction: {bin_to_text(label)}"
    if fmt == "ner":
        if "entities" not in extra:
            raise FintuneError("extra['entities']: missing for the ner format", "give the gold entity list")
        return format_entities(extra["entities"])
    raise FintuneError(f"unknown format {fmt!r}", f"allowed formats: {list(FORMATS)}")


def _has_answer(example: Example, fmt: str) -> bool:
    if fmt == "ner":
        return "entities" in example.extra
    if fmt == "text":
        return False
    return example.label is not None


def _check_forecast_answer(example: Example, label: str) -> None:
    answer = example.extra.get("answer")
    if answer is None:
        return
    parsed = parse_forecast(answer) if isinstance(answer, str) else None
    if parsed is None or parsed["bin"] != label:
        got = parsed["bin"] if parsed else "no valid Prediction line"
        raise FintuneError(
            f"{_where(example)}: extra['answer'] predicts {got} but the label is {label!r}",
            "fix the label or the answer text",
        )


def build_messages(
    example: Example,
    fmt: str,
    labels: Sequence[str] | None,
    system_prompt: str | None = None,
    with_answer: bool = True,
) -> list[dict[str, str]]:
    """Chat messages (roles system/user/assistant) for one example in format ``fmt``.

    The assistant turn holds :func:`answer_text` and is present when ``with_answer`` and the example has a
    label (or gold entities for ``ner``). ``labels`` is the declared label set (default: the task's).
    """
    if fmt not in FORMATS:
        raise FintuneError(f"{_where(example)}: unknown format {fmt!r}", f"allowed formats: {list(FORMATS)}")
    if not isinstance(example.text, str) or not example.text.strip():
        raise FintuneError(f"{_where(example)}: field 'text' is empty")
    if fmt in ("label", "structured"):
        labels = tuple(labels or SENTIMENT)
        instruction = SENTIMENT_QUESTION.format(choices=_choices(labels))
        if fmt == "structured":
            instruction += " " + STRUCTURED_FORMAT_HINT
        user = _user(instruction, example.text)
    elif fmt == "headlines":
        labels = tuple(labels or HEADLINE_ANSWERS)
        question = example.extra.get("question")
        if not isinstance(question, str) or not question.strip():
            raise FintuneError(
                f"{_where(example)}: extra['question'] is missing or empty",
                "the headlines format needs the yes/no question for each headline",
            )
        question = question.strip()
        user = _user(f"{question} {HEADLINE_CHOICES.format(choices=_choices(labels))}", example.text)
    elif fmt == "ner":
        types = tuple(labels or NER_TYPES)
        user = _user(NER_QUESTION.format(types=", ".join(types)), example.text)
    else:  # forecaster prompt body is built upstream; text keeps the raw text
        user = example.text

    messages: list[dict[str, str]] = []
    own_system = example.extra.get("system_prompt") if fmt == "forecaster" else None
    if system_prompt is None and isinstance(own_system, str) and own_system:
        # an imported FinGPT row carries its own system prompt (it holds the answer format): keep it verbatim
        system_prompt = own_system
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": user})
    if with_answer and _has_answer(example, fmt):
        label = example.label or ""
        if fmt in ("label", "structured", "headlines", "forecaster") and labels and label not in labels:
            raise FintuneError(f"{_where(example)}: label {label!r} is not in the label set {list(labels)}")
        if fmt == "forecaster":
            _check_forecast_answer(example, label)
        try:
            answer = answer_text(label, fmt, example.extra)
        except FintuneError as exc:
            raise FintuneError(f"{_where(example)}: {exc.message}", exc.hint) from None
        messages.append({"role": "assistant", "content": answer})
    return messages
