"""Baselines that every fine-tune is measured against: majority class and TF-IDF + logistic regression.

(The third baseline, the base model zero-shot with the same prompt, is ordinary model evaluation of the run's
base model; see :func:`fintune.evaluate.base_model_of`.) Both baselines here are trained on the train split only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from fintune.errors import FintuneError
from fintune.records import Prediction

BASELINES = ("majority", "tfidf", "zero-shot")


def _labelled_train(train_rows: Sequence[dict[str, Any]], name: str) -> tuple[list[str], list[str]]:
    texts = [str(r["text"]) for r in train_rows if r.get("label")]
    labels = [str(r["label"]) for r in train_rows if r.get("label")]
    if not labels:
        raise FintuneError(f"baseline {name}: the train split has no labelled examples",
                           "prepare data with a labelled train split")
    return texts, labels


def majority_predictions(train_rows: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
                         labels: Sequence[str]) -> list[Any]:
    """Predict the train split's most frequent label for every row (ties: first in label order)."""
    _, y = _labelled_train(train_rows, "majority")
    counts = Counter(y)
    best = max(labels, key=lambda lab: (counts.get(lab, 0), -list(labels).index(lab)))
    n = len(y)
    probs = {lab: counts.get(lab, 0) / n for lab in labels}
    return [Prediction(id=str(r["id"]), label=best, probabilities=probs, confidence=probs[best],
                       ticker=r.get("ticker"), date=r.get("date"), gold=r.get("label") or None,
                       extra={"model": "baseline:majority"}) for r in rows]


def tfidf_predictions(train_rows: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
                      labels: Sequence[str], seed: int = 0) -> list[Any]:
    """TF-IDF (word 1-2 grams, sublinear tf) + multinomial logistic regression fitted on the train split."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    x, y = _labelled_train(train_rows, "tfidf")
    unknown = sorted(set(y) - set(labels))
    if unknown:
        raise FintuneError(f"baseline tfidf: train labels {unknown} are not in the label set {list(labels)}")
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                         LogisticRegression(C=10.0, max_iter=2000, random_state=seed))
    # one BLAS thread: on a small shared CPU the default thread pool oversubscribes and the fit runs ~6x slower
    with threadpool_limits(limits=1):
        pipe.fit(x, y)
    classes = list(pipe.classes_)
    raw = pipe.predict_proba([str(r["text"]) for r in rows])
    # labels never seen in train get probability 0 (the model cannot predict them)
    probs = np.zeros((len(rows), len(labels)))
    for j, lab in enumerate(labels):
        if lab in classes:
            probs[:, j] = raw[:, classes.index(lab)]
    preds = []
    for r, p in zip(rows, probs, strict=True):
        best = int(p.argmax())
        preds.append(Prediction(id=str(r["id"]), label=labels[best],
                                probabilities={lab: float(v) for lab, v in zip(labels, p, strict=True)},
                                confidence=float(p[best]), ticker=r.get("ticker"), date=r.get("date"),
                                gold=r.get("label") or None, extra={"model": "baseline:tfidf"}))
    return preds
