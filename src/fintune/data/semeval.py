"""SemEval-2017 Task 5 subtask 2: financial headlines with a company and a sentiment score in [-1, 1].

Scores are thresholded like FiQA (default +-0.1). A headline with two companies appears twice; both rows share a
``group_id`` so a split never puts the same headline on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from fintune.data.registry import (
    check_options,
    find_file,
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
from fintune.records import Example


def load_semeval(path: str | Path, labels: Sequence[str] = SENTIMENT, positive_threshold: float = 0.1,
                 negative_threshold: float = -0.1, label_map: Mapping[str, str] | None = None) -> list[Example]:
    """Load ``SemEval2017Task5Headlines.json`` (a JSON array of ``{id, company, title, sentiment}``).

    Args:
        path: the JSON file or the folder holding it.
        labels / label_map: declared label set and mapping of the thresholded labels.
        positive_threshold / negative_threshold: score cut-offs.
    """
    path = Path(path)
    file = find_file(path, ["SemEval2017Task5Headlines.json"], "semeval") if path.is_dir() else path
    try:
        data = json.loads(read_text(file))
    except json.JSONDecodeError as exc:
        raise FintuneError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise FintuneError(f"{file}: expected a JSON array of {{id, company, title, sentiment}} objects")
    examples = []
    for i, row in enumerate(data):
        where = f"{file}: item {i}"
        if not isinstance(row, dict):
            raise FintuneError(f"{where}: expected an object")
        for key in ("id", "title", "sentiment"):
            if row.get(key) in (None, ""):
                raise FintuneError(f"{where}: missing field '{key}'")
        title = require_text(row["title"], where, "title")
        score = parse_score(row["sentiment"], where)
        label = normalize_label(score_to_label(score, positive_threshold, negative_threshold), labels, where,
                                label_map)
        # The file's own ids are not unique (2, 3 and 4 appear twice, on different headlines): number by
        # position and keep the original id in extra.
        examples.append(Example(id=f"semeval-{i:04d}", text=title, label=label, source="semeval",
                                extra={"score": score, "company": row.get("company"), "source_id": row["id"],
                                       "group_id": "semeval-" + " ".join(title.lower().split())}))
    return examples


def load_semeval_source(cfg: SourceConfig, task: str, labels: tuple[str, ...] | None) -> list[Example]:
    """Registry entry: ``name: semeval``."""
    check_options(cfg, [])
    if task not in ("sentiment", "pretrain"):
        raise FintuneError(f"source 'semeval' has sentiment scores, not task '{task}'", "use data.task: sentiment")
    pos, neg = thresholds(cfg)
    return load_semeval(require_path(cfg, "SemEval2017Task5Headlines.json"), labels or SENTIMENT, pos, neg,
                        cfg.label_map)
