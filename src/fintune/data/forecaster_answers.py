"""Teacher-written forecaster answers: label-blind by default, FinGPT's label-aware rationalisation on request.

The teacher is the synth/augment helper's client (:mod:`fintune.data.augment_teacher`: an OpenAI-compatible
endpoint over httpx or a local HF model, every response cached on disk under its prompt hash, retries with
backoff, rate limit), so an endpoint that goes down mid-run loses nothing: the answers received so far are cached,
the error is one line, and a rerun resumes from the cache.

Modes (``teacher.label_aware``):

* **label-blind** (default): the teacher sees the prompt only and writes ``[Positive Developments]`` and
  ``[Potential Concerns]`` (it is told not to predict). The kept answer is those two sections plus
  ``[Prediction & Analysis]:\\nPrediction: <true bin>``. No analysis is kept: an analysis written without the
  outcome could contradict the label, and one written with it would be hindsight.
* **label-aware** (FinGPT's own recipe, ``fingpt/FinGPT_Forecaster/prompt.py`` ``PROMPT_END``: "Then let's assume
  your prediction for next week ... is up by 2-3%. Provide a summary analysis to support your prediction ..."):
  the teacher is told the true move and rationalises it. Every such answer is marked
  ``provenance.answer = 'teacher-label-aware'`` because its analysis is written with hindsight.

An empty or unparsable response (missing section, a ``Prediction:`` line in blind mode, a prediction that differs
from the label in aware mode) is rejected and asked again with a new seed, up to ``max_attempts``; an example whose
attempts all fail keeps the label-only answer and is counted, never silently dropped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from fintune.data.augment_teacher import ResponseCache, TeacherRequest, make_teacher
from fintune.errors import FintuneError
from fintune.prompts.forecaster import SYSTEM_PROMPT
from fintune.prompts.parse import bin_to_text, parse_forecast
from fintune.records import Example

BLIND_SYSTEM = (
    "You are a seasoned stock market analyst. Your task is to list the positive developments and potential "
    "concerns for companies based on relevant news and basic financials from the past weeks. Do not predict the "
    "stock price movement. Your answer format should be as follows:\n\n[Positive Developments]:\n1. ...\n\n"
    "[Potential Concerns]:\n1. ...\n"
)
_PROMPT_TAIL = "Then make your prediction of the"


@dataclass
class TeacherConfig:
    """``data.sources[].options.teacher`` of a forecaster recipe."""

    teacher: str  # "openai:MODEL" (endpoint from FINTUNE_TEACHER_BASE_URL / base_url) or "local:NAME"
    label_aware: bool = False
    cache_dir: str = ".fintune_cache/forecaster_teacher"
    max_attempts: int = 3
    temperature: float = 0.7
    max_new_tokens: int = 512
    base_url: str | None = None
    requests_per_minute: float = 60.0
    concurrency: int = 4
    max_retries: int = 5
    seed: int = 0

    @classmethod
    def from_options(cls, raw: Any) -> TeacherConfig:
        """Validate the recipe dict (a bare string is the teacher spec) with one-line errors."""
        if isinstance(raw, str):
            raw = {"teacher": raw}
        if not isinstance(raw, dict) or not raw.get("teacher"):
            raise FintuneError("options.teacher: give {teacher: 'openai:MODEL' | 'local:NAME', ...}")
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise FintuneError(f"options.teacher: unknown key(s) {unknown}",
                               f"allowed: {sorted(cls.__dataclass_fields__)}")
        cfg = cls(**raw)
        if cfg.max_attempts < 1:
            raise FintuneError(f"options.teacher.max_attempts={cfg.max_attempts}", "use 1 or more")
        return cfg


def teacher_messages(example: Example, label_aware: bool) -> list[dict[str, str]]:
    """What the teacher is asked: blind (sections only) or FinGPT's label-aware rationalisation."""
    text = example.text
    cut = text.rfind(_PROMPT_TAIL)
    if cut < 0:
        raise FintuneError(f"example '{example.id}': not a forecaster prompt (no closing instruction)")
    head = text[:cut]
    start, end = example.extra.get("week_start"), example.extra.get("week_end")
    if not label_aware:
        user = head + "Do not predict the stock price movement; list the factors only."
        return [{"role": "system", "content": BLIND_SYSTEM}, {"role": "user", "content": user}]
    user = (head + f"Then let's assume your prediction for next week ({start} to {end}) is "
            f"{bin_to_text(example.label or '')}. Provide a summary analysis to support your prediction. The "
            "prediction result need to be inferred from your analysis at the end, and thus not appearing as a "
            "foundational factor of your analysis.")
    system = SYSTEM_PROMPT.replace("\nPrediction: ...\nAnalysis: ...", ":\n...")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def kept_answer(raw: str | None, label: str, label_aware: bool) -> str | None:
    """The training answer built from a teacher response, or None when the response must be rejected."""
    import re

    if not raw or not raw.strip():
        return None
    text = raw.strip()
    prediction = f"Prediction: {bin_to_text(label).capitalize()}"
    if label_aware:
        # FinGPT's gpt4_to_llama: insert the true prediction right after the [Prediction & Analysis] header
        if not re.search(r"\[Prediction & Analysis\]:?", text):
            return None
        text = re.sub(r"\[Prediction & Analysis\]:?\s*", f"[Prediction & Analysis]:\n{prediction}\nAnalysis: ",
                      text, count=1)
    else:
        if "[Prediction" in text:
            return None
        text = f"{text}\n\n[Prediction & Analysis]:\n{prediction}"
    parsed = parse_forecast(text)
    if parsed is None or parsed["bin"] != label:
        return None
    if not parsed["positive_developments"] or not parsed["potential_concerns"]:
        return None
    if label_aware and not parsed["analysis"]:
        return None
    return text


def add_teacher_answers(examples: list[Example], cfg: TeacherConfig) -> dict[str, Any]:
    """Replace each example's label-only ``extra['answer']`` by a teacher-written one (in place); returns counts.

    Raises:
        FintuneError: the teacher cannot be reached (cached answers are kept; rerun to resume).
    """
    endpoint = {}
    if cfg.teacher.startswith("openai:"):
        endpoint = {"base_url": cfg.base_url, "requests_per_minute": cfg.requests_per_minute,
                    "concurrency": cfg.concurrency, "max_retries": cfg.max_retries}
    teacher = make_teacher(cfg.teacher, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, **endpoint)
    cache = ResponseCache(cfg.cache_dir)
    mode = "teacher-label-aware" if cfg.label_aware else "teacher-label-blind"
    pending = [e for e in examples if e.label]
    rejected_responses, cached_hits, calls, answered = 0, 0, 0, 0
    for attempt in range(cfg.max_attempts):
        if not pending:
            break
        requests = [TeacherRequest(teacher_messages(e, cfg.label_aware), seed=cfg.seed + attempt) for e in pending]
        responses = teacher.complete(requests, cache)
        retry = []
        for ex, resp in zip(pending, responses, strict=True):
            cached_hits += resp.cached
            calls += not resp.cached
            answer = kept_answer(resp.text, ex.label or "", cfg.label_aware)
            if answer is None:
                rejected_responses += 1
                retry.append(ex)
                continue
            ex.extra["answer"] = answer
            answered += 1
            ex.extra["provenance"] = {
                **ex.extra.get("provenance", {}), "answer": mode, "teacher": teacher.identity(),
                "prompt_hash": resp.prompt_hash, "created": resp.created, "attempt": attempt + 1,
                "label_aware": cfg.label_aware,
            }
        pending = retry
    for ex in pending:
        ex.extra["provenance"] = {**ex.extra.get("provenance", {}), "teacher_rejected_attempts": cfg.max_attempts}
    settings = asdict(cfg)
    return {"mode": mode, "settings": settings, "examples": len(examples),
            "teacher_answers": answered, "fell_back_to_label_only": len(pending),
            "rejected_responses": rejected_responses, "new_responses": calls, "cached_responses": cached_hits,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
