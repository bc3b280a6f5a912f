"""FiQA-2018 Task 1 (headlines + microblog posts): one Example per (sentence, target) with a score in [-1, 1].

The score becomes a label with the FinGPT/FLARE thresholds by default: ``score > 0.1`` positive, ``score < -0.1``
negative, otherwise neutral (``positive_threshold`` / ``negative_threshold`` change them). The original challenge
JSON files are read when ``path`` is the dataset folder; a flat JSONL (one object per target with ``id``,
``target_index``, ``format``, ``sentence``, ``target``, ``sentiment_score``) is read when ``path`` is that file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fintune.data.registry import (
    check_options,
    parse_score,
    read_text,
    require_path,
    require_text,
    score_to_label,
    thresholds,
)
from fintune.errors import FintuneError
from fintune.labels import SENTIMENT, normalize_label
from fintune.recipe import SourceConfig
from fintune.records import Example, iter_jsonl

TRAIN_FILES = (("headline", "task1_headline_ABSA_train.json"), ("post", "task1_post_ABSA_train.json"))


def _rows_from_json(file: Path, fmt: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(read_text(file))
    except json.JSONDecodeError as exc:
        raise FintuneError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise FintuneError(f"{file}: expected a JSON object keyed by id (FiQA task 1 format)")
    rows = []
    for key, value in data.items():
        where = f"{file}: id {key}"
        if not isinstance(value, dict) or "sentence" not in value or not isinstance(value.get("info"), list):
            raise FintuneError(f"{where}: expected {{'sentence': ..., 'info': [...]}}")
        for j, info in enumerate(value["info"]):
            rows.append((f"{where} info[{j}]", {"id": key, "target_index": j, "format": fmt,
                                                 "sentence": value["sentence"], **info}))
    return rows


def load_fiqa(path: str | Path, labels: Sequence[str] = SENTIMENT, positive_threshold: float = 0.1,
              negative_threshold: float = -0.1, label_map: Mapping[str, str] | None = None) -> list[Example]:
    """Load FiQA-2018 task 1 labelled rows (1173 targets in the original train files).

    Args:
        path: the folder with ``task1_{headline,post}_ABSA_train.json``, one of those files, or a flat JSONL.
        labels: declared label set; ``positive``/``negative``/``neutral`` are normalised to it (via ``label_map``).
        positive_threshold / negative_threshold: score cut-offs (FinGPT: +-0.1).
        label_map: maps the thresholded label to a declared one.
    """
    path = Path(path)
    if path.is_dir():
        rows = []
        for fmt, name in TRAIN_FILES:
            if not (path / name).is_file():
                raise FintuneError(f"{path / name}: file not found", "point 'path' to the FiQA task 1 folder")
            rows += _rows_from_json(path / name, fmt)
    elif path.suffix == ".jsonl":
        rows = [(f"{path}:{lineno}", row) for lineno, row in iter_jsonl(path)]
    else:
        fmt = "post" if "post" in path.name else "headline"
        rows = _rows_from_json(path, fmt)
    examples = []
    for where, row in rows:
        for key in ("sentence", "sentiment_score"):
            if row.get(key) in (None, ""):
                raise FintuneError(f"{where}: missing field '{key}'",
                                   "FiQA blind-test files have no scores; use the *_train files")
        sentence = require_text(row["sentence"], where, "sentence")
        score = parse_score(row["sentiment_score"], where)
        raw = score_to_label(score, positive_threshold, negative_threshold)
        label = normalize_label(raw, labels, where, label_map)
        fmt = row.get("format", "headline")
        examples.append(Example(
            id=f"fiqa-{fmt}-{row['id']}-{row.get('target_index', 0)}", text=sentence,
            label=label, source="fiqa",
            extra={"score": score, "target": row.get("target"), "aspects": row.get("aspects"), "format": fmt,
                   "group_id": f"fiqa-{fmt}-{row['id']}"}))
    return examples


def load_fiqa_source(cfg: SourceConfig, task: str, labels: tuple[str, ...] | None) -> list[Example]:
    """Registry entry: ``name: fiqa`` (``positive_threshold`` / ``negative_threshold``, ``label_map``)."""
    check_options(cfg, [])
    if task not in ("sentiment", "pretrain"):
        raise FintuneError(f"source 'fiqa' has sentiment scores, not task '{task}'", "use data.task: sentiment")
    pos, neg = thresholds(cfg)
    path = require_path(cfg, "FiQA task 1 folder or file")
    return load_fiqa(path, labels or SENTIMENT, pos, neg, cfg.label_map)
