"""Financial PhraseBank metrics by annotator agreement: where models differ (all-agree vs 50-65% sentences).

FPB splits (FinGPT, FLARE) are drawn from ``Sentences_50Agree.txt``: sentences that at least half of the 5-8
annotators labelled alike. The release's other files are nested subsets (66%, 75%, 100% agreement), so a
sentence's highest agreement level is the highest file that holds it with the same label; its bucket is one of
:data:`AGREEMENT_BUCKETS`. Sentences are matched by (text, gold label), not by id: ``fpb50-01855`` is the row
index in ``Sentences_50Agree`` (:func:`fintune.data.phrasebank.load_phrasebank`), which says nothing about the
higher files, and 50Agree repeats a few sentences with conflicting labels.

:func:`metrics_by_agreement` is the pure part (predictions + buckets -> the metrics ``fintune eval`` computes, per
bucket); :func:`eval_by_agreement` reads an eval directory and the prepared split it scored.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fintune.data.phrasebank import load_phrasebank
from fintune.data.prepare import read_prepared
from fintune.errors import FintuneError
from fintune.evaluate.metrics import classification_metrics
from fintune.labels import SENTIMENT
from fintune.records import Prediction, read_predictions
from fintune.run import read_run, recorded_path

AGREEMENT_BUCKETS = ("50-65%", "66-74%", "75-99%", "100%")
"""Highest annotator agreement of a sentence: in 50Agree only, in 66Agree, in 75Agree, in AllAgree."""
_LEVELS = ("50", "66", "75", "all")  # the files, in the order of AGREEMENT_BUCKETS
_FPB50_ID = re.compile(r"^fpb50-(\d+)$")


def agreement_levels(folder: str | Path, labels: Sequence[str] | None = None) -> dict[tuple[str, str], str]:
    """``(sentence, label) -> bucket`` for every sentence of ``Sentences_50Agree`` (the highest file holding it).

    Args:
        folder: the FinancialPhraseBank-v1.0 folder (the four ``Sentences_*Agree.txt`` files).
        labels: the label set the sentences' labels are normalised to (default: the sentiment labels).
    """
    out: dict[tuple[str, str], str] = {}
    for level, bucket in zip(_LEVELS, AGREEMENT_BUCKETS, strict=True):
        for ex in load_phrasebank(folder, level, labels or SENTIMENT):
            out[(ex.text, str(ex.label))] = bucket  # the higher files come later and win
    return out


def assign_buckets(preds: Sequence[Prediction], texts: Mapping[str, str],
                   levels: Mapping[tuple[str, str], str], where: str = "predictions") -> list[str]:
    """The agreement bucket of each prediction (its text from ``texts`` by id, matched with its gold label).

    A prediction without gold, without a text, or whose (text, gold) is not a 50Agree sentence is a one-line error
    naming ``where`` and the id: every row is bucketed, none is dropped.
    """
    out = []
    for p in preds:
        if not p.gold:
            raise FintuneError(f"{where}: id '{p.id}' has no gold label", "agreement buckets need labelled rows")
        text = texts.get(p.id)
        if text is None:
            raise FintuneError(f"{where}: id '{p.id}' has no sentence text in the prepared split")
        bucket = levels.get((text, p.gold))
        if bucket is None:
            raise FintuneError(f"{where}: id '{p.id}' ({text[:60]!r}, gold '{p.gold}') is not a "
                               "Sentences_50Agree sentence with that label",
                               "is this an eval of Financial PhraseBank data (and --data the release folder)?")
        out.append(bucket)
    return out


def metrics_by_agreement(preds: Sequence[Prediction], buckets: Sequence[str], labels: Sequence[str],
                         bootstrap_samples: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per agreement bucket: n, accuracy, weighted / macro F1, MCC, invalid rate and bootstrap 95% intervals
    (:func:`fintune.evaluate.metrics.classification_metrics`, the functions ``fintune eval`` uses).

    A bucket without rows is ``{"n": 0}``.
    """
    if len(preds) != len(buckets):
        raise FintuneError(f"agreement: {len(preds)} predictions but {len(buckets)} buckets")
    out: dict[str, dict[str, Any]] = {}
    for bucket in AGREEMENT_BUCKETS:
        rows = [p for p, b in zip(preds, buckets, strict=True) if b == bucket]
        if not rows:
            out[bucket] = {"n": 0}
            continue
        m = classification_metrics([str(p.gold) for p in rows], [p.label for p in rows], labels,
                                   bootstrap_samples, seed)
        out[bucket] = {k: m[k] for k in ("n", "accuracy", "f1_weighted", "f1_macro", "mcc", "invalid_rate",
                                         "ci95", "gold_distribution")}
    return out


def phrasebank_by_agreement(preds: Sequence[Prediction], rows: Sequence[Mapping[str, Any]], prepared: str | Path,
                            labels: Sequence[str], bootstrap_samples: int = 1000,
                            seed: int = 0) -> dict[str, Any] | None:
    """What ``fintune eval`` adds to metrics.json for Financial PhraseBank data: metrics per agreement bucket.

    None unless every row of the scored split is a 50Agree PhraseBank sentence (``source: phrasebank``,
    ``extra.agreement: "50"``) with gold. The release folder is the one the prepared data's manifest recorded;
    when it cannot be found or read, the result says why under ``note`` instead of failing the eval.
    """
    if not rows or not preds or not all(p.gold for p in preds):
        return None
    if any(r.get("source") != "phrasebank" or str((r.get("extra") or {}).get("agreement")) != "50" for r in rows):
        return None
    sources = [s for s in read_run(prepared, "data").sources if s.name == "phrasebank"]
    if len(sources) != 1 or not sources[0].path:
        return {"note": "no single phrasebank source in the prepared data's manifest: no agreement breakdown"}
    folder = recorded_path(sources[0].path, prepared)
    if folder is None:
        return {"note": f"phrasebank folder {sources[0].path} (recorded by `fintune data`) not found: "
                        "no agreement breakdown"}
    folder = folder.parent if folder.is_file() else folder
    try:
        levels = agreement_levels(folder, labels)
        buckets = assign_buckets(preds, {str(r["id"]): str(r["text"]) for r in rows}, levels,
                                 f"{prepared} ({folder})")
    except FintuneError as exc:
        return {"note": f"no agreement breakdown: {exc.one_line()}"}
    return {"folder": str(folder), "buckets": metrics_by_agreement(preds, buckets, labels, bootstrap_samples, seed)}


def _prepared_dir(eval_dir: Path) -> Path | None:
    """The prepared data directory an eval scored (its metrics' / manifest's ``data``), when it still exists."""
    candidates: list[Any] = []
    mfile = eval_dir / "metrics.json"
    if mfile.is_file():
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            candidates.append(json.loads(mfile.read_text(encoding="utf-8")).get("data"))
    recipe = read_run(eval_dir).recipe or {}
    candidates += [recipe.get("data"), eval_dir / "data"]
    for cand in candidates:
        path = recorded_path(cand, eval_dir) if cand else None
        if path is not None and path.is_dir() and (path / "manifest.json").is_file():
            return path
    return None


def eval_by_agreement(eval_dir: str | Path, phrasebank: str | Path, prepared: str | Path | None = None,
                      bootstrap_samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """An FPB eval directory's metrics per annotator-agreement bucket.

    Texts come from the prepared split the eval scored (``prepared``, else the ``data`` the eval recorded); when
    that directory is gone, from ``Sentences_50Agree`` by the ``fpb50-NNNNN`` row index of each id.

    Returns:
        ``{"eval": dir, "n": rows, "texts_from": where, "split": split, "buckets": {bucket: metrics}}``.
    """
    eval_dir = Path(eval_dir)
    pfile = eval_dir / "predictions.jsonl"
    preds = read_predictions(pfile)
    metrics = json.loads((eval_dir / "metrics.json").read_text(encoding="utf-8")) \
        if (eval_dir / "metrics.json").is_file() else {}
    labels = list(metrics.get("labels") or read_run(eval_dir).spec.labels or [])
    split = str(metrics.get("split") or "test")
    data_dir = Path(prepared) if prepared else _prepared_dir(eval_dir)
    if data_dir is not None:
        rows = read_prepared(data_dir).get(split) or []
        texts = {str(r["id"]): str(r["text"]) for r in rows}
        source = str(data_dir / f"{split}.parquet")
    else:
        by_index = load_phrasebank(phrasebank, "50", labels or SENTIMENT)
        texts = {}
        for p in preds:
            m = _FPB50_ID.match(p.id)
            if m and int(m[1]) < len(by_index):
                texts[p.id] = by_index[int(m[1])].text
        source = f"{Path(phrasebank) / 'Sentences_50Agree.txt'} by fpb50 row index"
    levels = agreement_levels(phrasebank, labels or None)
    buckets = assign_buckets(preds, texts, levels, str(pfile))
    return {"eval": str(eval_dir), "n": len(preds), "split": split, "texts_from": source,
            "buckets": metrics_by_agreement(preds, buckets, labels, bootstrap_samples, seed)}
