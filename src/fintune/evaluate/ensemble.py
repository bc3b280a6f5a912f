"""``fintune ensemble EVAL_DIR... --out DIR``: a seed ensemble of classification evals on one split.

Each member is a ``fintune eval`` output directory (score mode: every prediction carries its calibrated label
probabilities). Rows are matched by id; the ensemble's probabilities are the mean of the members' (each member
calibrated by its own temperature first), its label the argmax of that mean. Metrics come from the functions
``fintune eval`` uses (:func:`fintune.evaluate.compute_metrics`: accuracy, weighted/macro F1, MCC, invalid rate,
bootstrap intervals, ECE), written by the eval writer, so an ensemble directory reads like any eval directory.

Anything that would make the average meaningless is a one-line error naming the file and the row or field: a
generate-mode or forecaster eval, different label sets, an id one member has and another lacks, the same id with
different gold labels, a row without probabilities.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fintune.artifacts import atomic_output_dir, check_output_dir, sha256_file, write_manifest
from fintune.errors import FintuneError
from fintune.evaluate import EvalData, compute_metrics, write_eval_outputs
from fintune.evaluate.compare import RunResult, paired_bootstrap
from fintune.records import (
    INVALID,
    Prediction,
    iter_jsonl,
    read_json_object,
    read_records_with_lines,
)
from fintune.run import (
    SCORABLE_FORMATS,
    EnsembleCost,
    EnsembleMember,
    EvalManifest,
    TrainManifest,
    find_run,
    read_run,
    recorded_path,
)

HEADLINE = ("accuracy", "f1_weighted", "f1_macro", "mcc", "invalid_rate")
"""The metrics the ensemble reports per member next to its own."""


@dataclass
class Member:
    """One eval directory read for averaging: its manifest, metrics and predictions (with their file lines)."""

    path: Path
    manifest: EvalManifest
    metrics: dict[str, Any]
    predictions: list[Prediction]
    lines: dict[str, int]
    labels: list[str]

    @property
    def predictions_file(self) -> Path:
        """The member's predictions.jsonl."""
        return self.path / "predictions.jsonl"


def eval_dir_of(path: str | Path) -> Path:
    """``path`` itself, or ``path/eval`` for a training run evaluated into its own ``eval/`` subdirectory."""
    path = Path(path)
    if not (path / "predictions.jsonl").exists() and (path / "eval" / "predictions.jsonl").is_file():
        return path / "eval"
    return path


def load_member(path: str | Path) -> Member:
    """Read one classification eval directory; a one-line error names what makes it unfit for averaging."""
    path = Path(path)
    if not path.is_dir():
        raise FintuneError(f"{path}: not a directory", "give `fintune eval` output directories")
    manifest = read_run(path, "eval")
    assert isinstance(manifest, EvalManifest)
    mfile = path / "metrics.json"
    if not mfile.is_file():
        raise FintuneError(f"{mfile}: not found", "run `fintune eval` into this directory first")
    metrics = read_json_object(mfile)
    fmt = metrics.get("format") or manifest.spec.format
    if fmt not in SCORABLE_FORMATS or "forecast" in metrics:
        raise FintuneError(f"{mfile}: field 'format' is '{fmt}', not a classification eval",
                           "ensemble averages label probabilities of classification evals")
    if metrics.get("mode") != "score":
        raise FintuneError(f"{mfile}: field 'mode' is '{metrics.get('mode')}', not 'score'",
                           "only score-mode evals carry the label probabilities an ensemble averages")
    labels = metrics.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise FintuneError(f"{mfile}: field 'labels' is missing or empty")
    preds, lines = read_records_with_lines(Prediction, path / "predictions.jsonl")
    for p in preds:
        if set(p.probabilities) != set(labels):
            raise FintuneError(f"{path / 'predictions.jsonl'}:{lines[p.id]}: id '{p.id}' field 'probabilities' has "
                               f"labels {sorted(p.probabilities)}, not {sorted(labels)}",
                               "ensemble needs score-mode predictions with a probability for every label")
    return Member(path=path, manifest=manifest, metrics=metrics, predictions=preds, lines=lines, labels=labels)


def check_members(members: Sequence[Member]) -> None:
    """Same label set, same ids, same gold labels in every member (one-line error at the first difference)."""
    ref = members[0]
    ref_file = ref.predictions_file
    by_id = {p.id: p for p in ref.predictions}
    for m in members[1:]:
        if set(m.labels) != set(ref.labels):
            raise FintuneError(f"{m.path / 'metrics.json'}: field 'labels' is {m.labels} but {ref.labels} in "
                               f"{ref.path / 'metrics.json'}", "ensemble evals of the same task and label set")
        for p in m.predictions:
            if p.id not in by_id:
                raise FintuneError(f"{m.predictions_file}:{m.lines[p.id]}: id '{p.id}' is not in {ref_file}",
                                   "ensemble evals of the same split (no --limit on one of them)")
            if (p.gold or None) != (by_id[p.id].gold or None):
                raise FintuneError(f"{m.predictions_file}:{m.lines[p.id]}: id '{p.id}' has gold '{p.gold}' but "
                                   f"'{by_id[p.id].gold}' in {ref_file}:{ref.lines[p.id]}",
                                   "ensemble evals of the same prepared data")
        missing = [i for i in by_id if i not in m.lines]
        if missing:
            raise FintuneError(f"{m.predictions_file}: id '{missing[0]}' of {ref_file}:{ref.lines[missing[0]]} is "
                               f"missing ({len(missing)} id(s) in all)", "ensemble evals of the same split")


def average_predictions(members: Sequence[Member], labels: Sequence[str]) -> list[Prediction]:
    """One Prediction per id of the first member: the mean of the members' probabilities, label = its argmax.

    ``label_logprobs`` holds ``log`` of the mean probabilities (their softmax gives them back, so calibration
    measured from it is that of the mean); ``extra`` names the members and their labels.
    """
    labels = list(labels)
    names = [str(m.path) for m in members]
    by_member = [{p.id: p for p in m.predictions} for m in members]
    out = []
    for first in members[0].predictions:
        rows = [bm[first.id] for bm in by_member]
        probs = np.array([[r.probabilities[lab] for lab in labels] for r in rows], dtype=np.float64)
        mean = probs.mean(axis=0)
        mean = mean / mean.sum()  # each member's row sums to 1 up to float error
        best = int(mean.argmax())
        out.append(Prediction(
            id=first.id, label=labels[best], probabilities={lab: float(v) for lab, v in zip(labels, mean,
                                                                                             strict=True)},
            confidence=float(mean[best]), ticker=first.ticker, date=first.date, gold=first.gold, asof=first.asof,
            label_logprobs={lab: float(np.log(max(v, 1e-300))) for lab, v in zip(labels, mean, strict=True)},
            extra={"model": "ensemble", "members": names, "member_labels": [r.label for r in rows],
                   "temperature": 1.0}))
    return out


def _train_minutes(run_dir: Path, manifest: TrainManifest) -> tuple[float | None, str | None]:
    """Training minutes a run recorded: its manifest's ``training.train_runtime_s``, else (runs written before it
    was recorded) the ``train_runtime`` seconds of the trainer's final row in ``metrics.jsonl``."""
    value = (manifest.training or {}).get("train_runtime_s")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value) / 60, f"{run_dir / 'manifest.json'} training.train_runtime_s"
    log = run_dir / "metrics.jsonl"
    if log.is_file():
        runtime = None
        for _, row in iter_jsonl(log):
            if isinstance(row.get("train_runtime"), (int, float)):
                runtime = float(row["train_runtime"])
        if runtime is not None and runtime > 0:
            return runtime / 60, f"{log} train_runtime"
    return None, None


def member_record(member: Member) -> EnsembleMember:
    """The manifest entry of one member: its run (found through the eval's ``parent_run``) and what it cost."""
    run_dir = recorded_path(member.manifest.parent_run, member.path)
    run = find_run(run_dir) if run_dir is not None and run_dir.is_dir() else None
    minutes = source = None
    if isinstance(run, TrainManifest) and run_dir is not None:
        minutes, source = _train_minutes(run_dir, run)
    seconds = (member.metrics.get("speed") or {}).get("seconds")
    return EnsembleMember(
        eval_dir=str(member.path), run_dir=str(run_dir) if run_dir is not None else None,
        model=member.manifest.model, seed=run.seed if run is not None else None,
        predictions_sha256=sha256_file(member.predictions_file), train_minutes=minutes, train_minutes_from=source,
        eval_seconds=float(seconds) if isinstance(seconds, (int, float)) else None)


def ensemble_cost(records: Sequence[EnsembleMember]) -> EnsembleCost:
    """Training minutes and scoring seconds summed over the members (None unless every member recorded them)."""
    minutes = [r.train_minutes for r in records]
    seconds = [r.eval_seconds for r in records]
    missing = [r.eval_dir for r in records if r.train_minutes is None]
    note = (f"training minutes unknown for {missing}: their run manifests / logs do not record them" if missing
            else "training minutes summed over the members")
    return EnsembleCost(train_minutes=None if missing else float(sum(m for m in minutes if m is not None)),
                        forward_passes_per_text=len(records),
                        eval_seconds=None if None in seconds else float(sum(s for s in seconds if s is not None)),
                        note=note)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {k: metrics.get(k) for k in HEADLINE}
    out["ece"] = (metrics.get("calibration") or {}).get("ece_after")
    out["f1_weighted_ci95"] = ((metrics.get("classification") or {}).get("ci95") or {}).get("f1_weighted")
    return out


def ensemble_metrics(members: Sequence[Member], preds: Sequence[Prediction], bootstrap_samples: int,
                     seed: int) -> dict[str, Any]:
    """The eval metrics of the ensemble's predictions, plus each member's headline metrics and the paired
    bootstrap difference ensemble minus the best member (by weighted F1)."""
    ref = members[0]
    spec = ref.manifest.spec
    labels = list(ref.labels)
    data = EvalData(splits={}, task=spec.task, fmt=ref.metrics.get("format") or spec.format, template=spec.template,
                    labels=tuple(labels), source=str(ref.metrics.get("data") or ""))
    calibration = {"temperature": 1.0, "fitted_on": None,
                   "note": "the mean of the members' calibrated probabilities; no temperature fitted on top"}
    metrics = compute_metrics(preds, data, str(ref.metrics.get("split") or "test"), "score", bootstrap_samples,
                              seed, calibration)
    n = len(preds)
    seconds = [(m.metrics.get("speed") or {}).get("seconds") for m in members]
    if all(isinstance(s, (int, float)) for s in seconds):
        total = float(sum(seconds))  # type: ignore[arg-type]
        metrics["speed"] = {"examples": n, "seconds": total, "examples_per_s": n / total if total else None,
                            "note": "sum of the members' scoring time (each text is scored by every member)"}
    member_rows = [{"eval_dir": str(m.path), **_headline(m.metrics)} for m in members]
    scored = [(r["f1_weighted"] if isinstance(r["f1_weighted"], (int, float)) else -1.0, i)
              for i, r in enumerate(member_rows)]
    best = max(scored)[1]
    best_run = RunResult(name=str(members[best].path), path=members[best].path, metrics=members[best].metrics,
                         predictions=members[best].predictions)
    ens_run = RunResult(name="ensemble", path=Path("ensemble"), metrics=metrics, predictions=list(preds))
    mean_of_members = {k: float(np.mean([r[k] for r in member_rows])) for k in ("accuracy", "f1_weighted",
                                                                                 "f1_macro", "mcc")
                       if all(isinstance(r[k], (int, float)) for r in member_rows)}
    metrics["ensemble"] = {
        "n_members": len(members), "members": member_rows, "mean_of_members": mean_of_members,
        "best_member": str(members[best].path),
        "vs_best_member": paired_bootstrap(best_run, ens_run, bootstrap_samples, seed),
        "ensemble": _headline(metrics),
    }
    return metrics


def run_ensemble(eval_dirs: Sequence[str | Path], out: str | Path, bootstrap_samples: int | None = None,
                 seed: int | None = None, overwrite: bool = False) -> dict[str, Any]:
    """``fintune ensemble``: average the calibrated probabilities of classification evals of one split.

    Args:
        eval_dirs: two or more ``fintune eval`` output directories (score mode, same split, same label set), or
            run directories evaluated into ``RUN/eval``.
        out: output directory (written atomically: predictions.jsonl, metrics.json, calibration.json, plots,
            manifest.json); a non-empty one only with ``overwrite``, never one of the eval directories.
        bootstrap_samples, seed: for the intervals; ``None`` = what the first member's eval used.

    Returns:
        The metrics written to ``out/metrics.json``.
    """
    if len(eval_dirs) < 2:
        raise FintuneError("ensemble: give at least two eval directories", "an ensemble of one is that eval")
    inputs = [eval_dir_of(d) for d in eval_dirs]
    check_output_dir(out, overwrite, inputs=inputs)
    members = [load_member(d) for d in inputs]
    check_members(members)
    ref = members[0]
    cls = ref.metrics.get("classification") or {}
    if bootstrap_samples is None:
        bootstrap_samples = int(cls.get("bootstrap_samples") or 1000)
    if seed is None:
        seed = int(ref.manifest.seed or 0)
    preds = average_predictions(members, ref.labels)
    if any(p.label == INVALID for p in preds):  # cannot happen with probabilities over the labels
        raise FintuneError("ensemble: an averaged prediction has no label")
    metrics = ensemble_metrics(members, preds, bootstrap_samples, seed)
    records = [member_record(m) for m in members]
    cost = ensemble_cost(records)
    metrics["ensemble"]["cost"] = cost.model_dump(mode="json")
    name = "ensemble(" + ", ".join(str(p) for p in inputs) + ")"
    metrics["model"] = name
    metrics["data"] = ref.metrics.get("data")
    data_hashes: dict[str, str] = {}
    licenses: dict[str, str] = {}
    for m in members:  # what the members were evaluated on, and the licenses they found for it
        data_hashes.update(m.manifest.data_sha256)
        licenses.update(m.manifest.licenses)
    bases = {m.manifest.base_model for m in members}
    with atomic_output_dir(out, overwrite, inputs=inputs) as staging:
        write_eval_outputs(staging, preds, metrics)
        write_manifest(staging, "ensemble", recipe={"eval_dirs": [str(p) for p in inputs], "out": str(out),
                                                    "bootstrap_samples": bootstrap_samples, "seed": seed},
                       seed=seed, data_hashes=data_hashes, licenses=licenses, model=name, labels=list(ref.labels),
                       task_spec=ref.manifest.spec.model_dump(mode="json"), mode="score",
                       base_model=bases.pop() if len(bases) == 1 else None,
                       members=[r.model_dump(mode="json") for r in records], cost=cost.model_dump(mode="json"))
        read_run(staging, "ensemble")  # the manifest validates before the directory appears
    return json.loads((Path(out) / "metrics.json").read_text(encoding="utf-8"))
