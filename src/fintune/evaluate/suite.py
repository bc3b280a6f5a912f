"""``fintune eval --suite flare``: the FLARE / two-stage-paper tasks in one command, one table with anchors.

Tasks (data read from ``data_root``, default ``$FINTUNE_DATA`` or ``../shared/data``):

``fpb``        Financial PhraseBank 50Agree, FinGPT split (test = 25%); score mode; accuracy + weighted F1.
``fiqa_sa``    FiQA-2018 task 1, score thresholded at +-0.1 (the shipped FiQA recipe); score mode; weighted F1.
``headlines``  Gold commodity headlines, one yes/no question per column; score mode; F1 weighted per column,
               averaged over the columns (FLARE's "Avg F1").
``ner``        FinNER (FIN5 train / FIN3 test); generate + strict parse (``entity text, TYPE`` per line);
               entity-level F1 with seqeval; unparsable outputs count as invalid and predict no entity.
``tfns``       Twitter Financial News Sentiment (sent_valid = test); score mode; weighted F1.

Honesty rules: ``limit`` takes the first N test rows per task and the table says so; when a run directory's
training data is known, test rows whose id or text (+question) occurs in its train split are left out and counted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fintune.artifacts import (
    atomic_output_dir,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    hash_paths,
    write_manifest,
)
from fintune.data.prepare import prepare_data, read_prepared
from fintune.errors import FintuneError
from fintune.evaluate import compute_metrics, load_eval_data
from fintune.evaluate.anchors import MISSING, SOURCES, anchor_columns, lookup
from fintune.predict.predictor import Predictor
from fintune.predict.rows import generation_prompt, predictions_from_generations
from fintune.predict.stats import InferenceStats
from fintune.prompts.parse import parse_entities
from fintune.prompts.tasks import NER_TYPES
from fintune.recipe import validate_recipe_dict
from fintune.records import write_jsonl
from fintune.run import read_run


@dataclass(frozen=True)
class SuiteTask:
    """One task of a suite: how its data is built and which metrics the table shows."""

    key: str
    title: str
    mode: str
    metrics: tuple[str, ...]
    data: dict[str, Any]


def _tasks(root: str) -> dict[str, SuiteTask]:
    return {
        "fpb": SuiteTask("fpb", "FPB", "score", ("accuracy", "f1_weighted"), {
            "task": "sentiment", "format": "label",
            "sources": [{"name": "phrasebank", "path": f"{root}/financial_phrasebank", "agreement": "50"}],
            "split": {"method": "fingpt", "test_size": 0.25, "seed": 42}}),
        "fiqa_sa": SuiteTask("fiqa_sa", "FiQA-SA", "score", ("f1_weighted",), {
            "task": "sentiment", "format": "label",
            "sources": [{"name": "fiqa", "path": f"{root}/fiqa_2018_task1", "positive_threshold": 0.1,
                         "negative_threshold": -0.1}],
            "split": {"method": "stratified", "test_size": 0.25, "seed": 42}}),
        "headlines": SuiteTask("headlines", "Headlines", "score", ("avg_f1",), {
            "task": "headlines", "format": "headlines",
            "sources": [{"name": "gold", "path": f"{root}/gold_commodity_news_headlines"}],
            "split": {"method": "random", "test_size": 0.2, "seed": 42}}),
        "ner": SuiteTask("ner", "NER (FinNER)", "generate", ("entity_f1",), {
            "task": "ner", "format": "ner",
            "sources": [{"name": "finner", "path": f"{root}/fin_ner_sec_filings"}],
            "split": {"method": "predefined", "seed": 42}}),
        "tfns": SuiteTask("tfns", "TFNS", "score", ("f1_weighted",), {
            "task": "sentiment", "format": "label",
            "sources": [
                {"name": "tfns", "path": f"{root}/twitter_financial_news_sentiment/sent_train.csv", "split": "train"},
                {"name": "tfns", "path": f"{root}/twitter_financial_news_sentiment/sent_valid.csv", "split": "test"}],
            "split": {"method": "predefined", "seed": 42}}),
    }


SUITES: dict[str, tuple[str, ...]] = {"flare": ("fpb", "fiqa_sa", "headlines", "ner", "tfns")}
METRIC_NAMES = {"accuracy": "Acc", "f1_weighted": "F1 (weighted)", "avg_f1": "Avg F1", "entity_f1": "Entity F1"}


def default_data_root() -> str:
    """``$FINTUNE_DATA``, else ``../shared/data`` (the layout shipped recipes assume)."""
    return os.environ.get("FINTUNE_DATA", "../shared/data")


def suite_tasks(suite: str = "flare", tasks: Sequence[str] | None = None,
                data_root: str | Path | None = None) -> list[SuiteTask]:
    """The tasks of ``suite`` (optionally only ``tasks``), their data paths under ``data_root``."""
    if suite not in SUITES:
        raise FintuneError(f"--suite {suite!r}: unknown suite", f"available: {sorted(SUITES)}")
    table = _tasks(str(data_root or default_data_root()).rstrip("/"))
    keys = list(tasks) if tasks else list(SUITES[suite])
    unknown = [k for k in keys if k not in SUITES[suite]]
    if unknown:
        raise FintuneError(f"--tasks {unknown}: not in suite '{suite}'", f"tasks: {list(SUITES[suite])}")
    return [table[k] for k in keys]


def suite_recipe(task: SuiteTask, model: str, template: str = "auto") -> Any:
    """A validated Recipe whose data block prepares ``task`` (model only names the tokenizer for ``auto``)."""
    # only the test split is scored: rendering one train row instead of tens of thousands keeps the suite fast
    data = {**task.data, "template": template, "max_train_examples": 1}
    return validate_recipe_dict({"name": f"suite-{task.key}", "model_name_or_path": model, "data": data},
                                f"suite task '{task.key}'")


# ---------------------------------------------------------------- metrics


def entities_to_bio(n_tokens: int, spans: Sequence[tuple[int, int, str]]) -> list[str]:
    """BIO tags for ``n_tokens`` tokens from ``(start, end_exclusive, type)`` spans (later overlaps are skipped)."""
    tags = ["O"] * n_tokens
    for start, end, etype in spans:
        if start < 0 or end > n_tokens or start >= end or any(t != "O" for t in tags[start:end]):
            continue
        tags[start] = f"B-{etype}"
        for i in range(start + 1, end):
            tags[i] = f"I-{etype}"
    return tags


def locate_entities(tokens: Sequence[str], entities: Sequence[tuple[str, str]]) -> list[tuple[int, int, str]]:
    """Token spans of predicted ``(text, type)`` entities: the first not yet used exact token-sequence match.

    An entity whose tokens do not occur in the sentence is dropped (it cannot be a correct span; it still costs
    precision through seqeval only if placed, so the count of unplaced entities is reported separately).
    """
    lowered = [t.lower() for t in tokens]
    used: set[int] = set()
    spans = []
    for text, etype in entities:
        words = [w.lower() for w in text.split()]
        if not words:
            continue
        for i in range(len(tokens) - len(words) + 1):
            if lowered[i:i + len(words)] == words and not used.intersection(range(i, i + len(words))):
                spans.append((i, i + len(words), etype))
                used.update(range(i, i + len(words)))
                break
    return spans


def ner_metrics(rows: Sequence[dict[str, Any]], texts: Sequence[str]) -> tuple[dict[str, Any], list[dict]]:
    """Entity-level precision / recall / F1 (seqeval, strict IOB2) of generated NER answers against gold spans.

    Returns ``(metrics, per_row)``; a row whose output does not parse is ``invalid`` and predicts no entity.
    """
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    gold_tags, pred_tags, per_row = [], [], []
    invalid = unplaced = predicted = 0
    for row, text in zip(rows, texts, strict=True):
        extra = row.get("extra") or {}
        tokens = extra.get("tokens") or str(row["text"]).split()
        gold = [(int(e["start"]), int(e["end"]), e["type"]) for e in extra.get("entities") or []]
        parsed = parse_entities(text, NER_TYPES)
        if parsed is None:
            invalid += 1
            spans: list[tuple[int, int, str]] = []
        else:
            spans = locate_entities(tokens, parsed)
            predicted += len(parsed)
            unplaced += len(parsed) - len(spans)
        gold_tags.append(entities_to_bio(len(tokens), gold))
        pred_tags.append(entities_to_bio(len(tokens), spans))
        per_row.append({"id": row["id"], "parsed": parsed is not None, "pred_entities": parsed or [],
                        "gold_entities": [[e["text"], e["type"]] for e in extra.get("entities") or []]})
    kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    n = len(rows)
    metrics = {
        "entity_f1": float(f1_score(gold_tags, pred_tags, **kw)),
        "entity_precision": float(precision_score(gold_tags, pred_tags, **kw)),
        "entity_recall": float(recall_score(gold_tags, pred_tags, **kw)),
        "invalid_rate": invalid / n if n else 0.0, "n_invalid": invalid,
        "predicted_entities": predicted, "unplaced_entities": unplaced,
        "gold_entities": sum(len(r["gold_entities"]) for r in per_row),
    }
    return metrics, per_row


def headline_metrics(rows: Sequence[dict[str, Any]], preds: Sequence[Any]) -> dict[str, Any]:
    """FLARE Headlines "Avg F1": weighted F1 per question column, averaged over the columns present."""
    from sklearn.metrics import accuracy_score, f1_score

    by_q: dict[str, tuple[list[str], list[str]]] = {}
    for row, pred in zip(rows, preds, strict=True):
        key = (row.get("extra") or {}).get("question_key") or "?"
        gold, got = by_q.setdefault(key, ([], []))
        gold.append(row["label"])
        got.append(pred.label)
    per = {k: {"n": len(g), "f1_weighted": float(f1_score(g, p, average="weighted", zero_division=0)),
               "accuracy": float(accuracy_score(g, p))} for k, (g, p) in sorted(by_q.items())}
    avg = sum(v["f1_weighted"] for v in per.values()) / len(per) if per else 0.0
    return {"avg_f1": avg, "per_question": per}


# ---------------------------------------------------------------- running


def _seen_in_training(run_or_model: str) -> tuple[set[str], set[tuple[str, str]]] | None:
    """Ids and (text, question) pairs of a run's training split, when its manifest points to prepared data."""
    path = Path(run_or_model)
    if not (path / "manifest.json").exists():
        return None
    data_dir = getattr(read_run(path), "data_dir", None)
    if not data_dir or not (Path(data_dir) / "train.parquet").exists():
        return None
    train = read_prepared(data_dir).get("train") or []
    return ({str(r["id"]) for r in train},
            {(str(r["text"]), str((r.get("extra") or {}).get("question") or "")) for r in train})


def _drop_seen(rows: list[dict[str, Any]], seen: tuple[set[str], set[tuple[str, str]]] | None,
               ) -> tuple[list[dict[str, Any]], int]:
    if not seen:
        return rows, 0
    ids, pairs = seen
    kept = [r for r in rows if str(r["id"]) not in ids
            and (str(r["text"]), str((r.get("extra") or {}).get("question") or "")) not in pairs]
    return kept, len(rows) - len(kept)


def evaluate_task(model: Any, tokenizer: Any, task: SuiteTask, data_dir: Path, limit: int | None,
                  seen: tuple[set[str], set[tuple[str, str]]] | None = None, batch_size: int = 8,
                  max_new_tokens: int = 96, seed: int = 0, model_name: str = "", progress: bool = True,
                  template: str | None = None) -> tuple[list[Any], dict[str, Any]]:
    """Evaluate one prepared suite task with a loaded model; returns (predictions, metrics)."""
    ev = load_eval_data(data_dir)
    if template:
        ev.template = template
    test = ev.splits.get("test") or []
    if not test:
        raise FintuneError(f"{data_dir}: suite task '{task.key}' has no test rows")
    n_test = len(test)
    test, excluded = _drop_seen(test, seen)
    rows = test[:limit] if limit else test
    if not rows:
        raise FintuneError(f"suite task '{task.key}': every test row was seen in training",
                           "evaluate a run trained without this task's test data")
    stats = InferenceStats()
    predictor = model if isinstance(model, Predictor) else Predictor(ev.spec, model, tokenizer)
    predictor.spec, predictor.batch_size, predictor.model_name = ev.spec, batch_size, model_name
    if task.mode == "score":
        preds = predictor.predict_rows(rows, "score", temperature=1.0, stats=stats, progress=progress,
                                       desc=f"score {task.key}")
        ev.splits = {**ev.splits, "test": rows}
        metrics = compute_metrics(preds, ev, "test", "score", bootstrap_samples=200, seed=seed,
                                  calibration={"temperature": 1.0, "fitted_on": None})
        if task.key == "headlines":
            metrics.update(headline_metrics(rows, preds))
    else:
        prompts = [generation_prompt(r, ev.template, predictor.tokenizer) for r in rows]
        texts = predictor.generate(prompts, max_new_tokens=max_new_tokens, stats=stats, progress=progress,
                                   desc=f"generate {task.key}")
        metrics, per_row = ner_metrics(rows, texts)
        preds = predictions_from_generations(rows, texts, "text", None, model_name,
                                             parser=lambda *_: None)
        for pred, info in zip(preds, per_row, strict=True):
            pred.label = "parsed" if info["parsed"] else pred.label
            pred.extra.update(parsed=info["parsed"], pred_entities=info["pred_entities"],
                              gold_entities=info["gold_entities"])
        metrics.update(task="ner", format="ner", mode="generate", split="test", n=len(rows))
    metrics.update(suite_task=task.key, n_test_total=n_test, n_evaluated=len(rows), limit=limit,
                   excluded_seen_in_training=excluded, speed=stats.summary())
    return preds, metrics


def run_suite(run_or_model: str, out: str | Path, suite: str = "flare", tasks: Sequence[str] | None = None,
              limit: int | None = 200, data_root: str | Path | None = None, batch_size: int = 8,
              max_new_tokens: int = 96, dtype: str = "auto", seed: int = 0, progress: bool = True,
              overwrite: bool = False) -> dict[str, Any]:
    """Run every task of ``suite`` on a run or model and write ``suite.md`` (table + anchors), ``suite.json``,
    per-task ``<task>/predictions.jsonl`` + ``metrics.json``, the prepared data and ``manifest.json`` to ``out``.

    Args:
        run_or_model: run directory, model directory, hub id or alias (e.g. ``smollm2-135m``).
        limit: first N test rows per task (``None`` = full test sets); printed in the table.
        data_root: folder holding the shared datasets (default ``$FINTUNE_DATA`` or ``../shared/data``).
    """
    if limit is not None and limit < 1:
        raise FintuneError(f"--limit {limit}: must be >= 1", "omit it to use the full test sets")
    check_output_dir(out, overwrite, inputs=[data_root], runs=[run_or_model])
    chosen = suite_tasks(suite, tasks, data_root)
    root = Path(str(data_root or default_data_root()))
    if not root.is_dir():
        raise FintuneError(f"suite data root {root}: not a directory", "set FINTUNE_DATA or pass --data-root")
    args = {"run_or_model": run_or_model, "suite": suite, "tasks": [t.key for t in chosen], "limit": limit,
            "data_root": str(root), "batch_size": batch_size, "max_new_tokens": max_new_tokens, "dtype": dtype}
    predictor = Predictor.load(run_or_model, dtype=dtype, batch_size=batch_size, max_new_tokens=max_new_tokens)
    tokenizer, info = predictor.tokenizer, predictor.info
    template = str((info.template if info else None) or "auto")
    seen = _seen_in_training(run_or_model)
    results: dict[str, Any] = {}
    hashes: dict[str, str] = {}
    with atomic_output_dir(out, overwrite, inputs=[data_root], runs=[run_or_model]) as staging:
        for task in chosen:
            data_dir = prepare_data(suite_recipe(task, str((info.base_model if info else None) or run_or_model),
                                                 template),
                                    staging / "data" / task.key, tokenizer=tokenizer)
            hashes.update({f"{task.key}/{Path(k).name}": v for k, v in hash_paths(
                sorted(data_dir.glob("*.parquet"))).items()})
            preds, metrics = evaluate_task(predictor, tokenizer, task, data_dir, limit, seen, batch_size,
                                           max_new_tokens, seed, str(run_or_model), progress, template)
            write_jsonl(staging / task.key / "predictions.jsonl", preds)
            atomic_write_json(staging / task.key / "metrics.json", metrics)
            results[task.key] = {m: metrics.get(m) for m in (*task.metrics, "invalid_rate")} | {
                "n": metrics["n_evaluated"], "n_test_total": metrics["n_test_total"],
                "excluded_seen_in_training": metrics["excluded_seen_in_training"]}
        summary = {"suite": suite, "model": str(run_or_model), "template": template, "limit": limit,
                   "tasks": results}
        table = suite_table(summary, chosen)
        atomic_write_json(staging / "suite.json", summary)
        atomic_write_text(staging / "suite.md", table)
        write_manifest(staging, "eval-suite", recipe=args, seed=seed, data_hashes=hashes, parent=str(run_or_model),
                       model=str(run_or_model), base_model=info.base_model if info else None, template=template)
    summary["table"] = table
    return summary


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def suite_table(summary: dict[str, Any], tasks: Sequence[SuiteTask]) -> str:
    """Markdown: one row per (task, metric), this model's value with n, the anchors beside it, footnotes."""
    cols = anchor_columns()
    marks = {key: i + 1 for i, key in enumerate(SOURCES)}
    limit = summary.get("limit")
    head = ["Task", "Metric", f"{Path(str(summary['model'])).name} (n)"] + [
        f"{m} [{marks[s]}]" for m, s in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in tasks:
        res = summary["tasks"].get(task.key) or {}
        for metric in task.metrics:
            ours = f"{_fmt(res.get(metric))} ({res.get('n', 0)}/{res.get('n_test_total', 0)})"
            anchors = [_fmt(lookup(m, s, task.key, metric)) for m, s in cols]
            lines.append("| " + " | ".join([task.title, METRIC_NAMES.get(metric, metric), ours, *anchors]) + " |")
    notes = [f"Model: `{summary['model']}`, template `{summary.get('template')}`; "
             + (f"**first {limit} test rows per task** (n = evaluated / test-set size)" if limit
                else "full test sets") + ". Score mode for FPB/FiQA-SA/Headlines/TFNS (label log-probabilities, "
             "nothing invalid); NER generates and parses strictly (invalid rate "
             f"{_fmt((summary['tasks'].get('ner') or {}).get('invalid_rate'))}).",
             "Anchors are published numbers under their authors' own splits and prompts: context, not a "
             "like-for-like comparison. '-' = not reported by that source."]
    excluded = {k: v["excluded_seen_in_training"] for k, v in summary["tasks"].items()
                if v.get("excluded_seen_in_training")}
    if excluded:
        notes.append(f"Test rows left out because the run trained on them: {excluded}.")
    notes.append(f"Not found in any stored source, so not shown: {', '.join(MISSING)}.")
    foot = [f"[{marks[k]}] {s.citation}; {s.location}." for k, s in SOURCES.items()]
    return "\n".join(lines) + "\n\n" + "\n".join(notes + foot) + "\n"
