"""``fintune eval``: predict on a prepared split, then score the predictions honestly.

:func:`run_eval` is what the CLI calls: it loads the data (a prepared directory, or a recipe it prepares first),
the model (a run or a plain model) or a baseline, predicts, computes metrics and writes one output directory
atomically: ``predictions.jsonl``, ``metrics.json``, ``calibration.json`` (score mode), PNG plots and
``manifest.json``. Nothing is written when anything fails. :func:`evaluate_rows` is the same pipeline on rows and
an already loaded model, for tests and the benchmark.

Submodules: ``metrics`` (classification + bootstrap), ``calibration`` (ECE, temperature), ``forecast``,
``baselines``, ``compare``, ``ensemble`` (seed ensembles of evals), ``agreement`` (Financial PhraseBank metrics per
annotator-agreement bucket, added to metrics.json when the data is PhraseBank), ``plots``. Nothing heavy is imported
at module import time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fintune.artifacts import (
    atomic_output_dir,
    atomic_write_json,
    check_output_dir,
    hash_paths,
    write_manifest,
)
from fintune.data.prepare import prepare_data, read_prepared
from fintune.errors import FintuneError
from fintune.evaluate import plots
from fintune.evaluate.agreement import phrasebank_by_agreement
from fintune.evaluate.baselines import majority_predictions, tfidf_predictions
from fintune.evaluate.calibration import calibration_metrics, choose_temperature
from fintune.evaluate.forecast import (
    direction_intervals,
    example_rouge,
    forecast_baselines,
    forecast_metrics,
    thinking_summary,
)
from fintune.evaluate.metrics import classification_metrics, unlabelled_summary
from fintune.predict.predictor import Predictor
from fintune.predict.rows import predictions_from_scores, softmax_rows
from fintune.predict.stats import InferenceStats
from fintune.prompts.parse import parse_forecast
from fintune.recipe import load_recipe
from fintune.records import INVALID, write_jsonl
from fintune.run import SCORABLE_FORMATS, TaskSpec, read_run


@dataclass
class EvalData:
    """Prepared rows per split plus what the prepared manifest says about them."""

    splits: dict[str, list[dict[str, Any]]]
    task: str
    fmt: str
    template: str
    labels: tuple[str, ...] | None
    source: str
    data_hashes: dict[str, str] = field(default_factory=dict)
    template_date: str | None = None  # the pinned date a dated chat template rendered at `fintune data`

    @property
    def spec(self) -> TaskSpec:
        """The task spec these rows were prepared with (template as overridden by the run, if any)."""
        return TaskSpec(task=self.task, format=self.fmt, labels=list(self.labels) if self.labels else None,
                        template=self.template, template_date=self.template_date)


def load_eval_data(data: str | Path, workdir: str | Path | None = None, tokenizer: Any = None) -> EvalData:
    """Read a prepared dataset directory, or prepare a recipe into ``workdir/data`` first."""
    path = Path(data)
    if not path.exists():
        raise FintuneError(f"--data {data}: not found", "give a directory written by `fintune data` or a recipe")
    if path.is_file():
        if workdir is None:
            raise FintuneError(f"--data {data}: a recipe needs an output directory to prepare into")
        path = Path(prepare_data(load_recipe(path), Path(workdir) / "data", tokenizer=tokenizer))
    spec = read_run(path, "data").spec
    splits = read_prepared(path)
    files = sorted(p for p in path.glob("*.parquet"))
    return EvalData(splits=splits, task=spec.task, fmt=spec.format, template=spec.template,
                    labels=tuple(spec.labels) if spec.labels else None, source=str(path),
                    data_hashes=hash_paths(files), template_date=spec.template_date)


def check_label_sets(model_labels: Sequence[str] | None, data_labels: Sequence[str] | None, model: str,
                     data: str) -> None:
    """Refuse to score a model on data whose label set differs from the one it was trained on."""
    if model_labels and data_labels and set(model_labels) != set(data_labels):
        raise FintuneError(f"label sets differ: model {model} was trained on {sorted(model_labels)} but data "
                           f"{data} has {sorted(data_labels)}",
                           "evaluate on data prepared with the same labels (data.labels / label_map)")


def run_labels(run_or_model: str) -> list[str] | None:
    """The label set a run directory's manifest records (None for plain models)."""
    path = Path(run_or_model)
    if not (path / "manifest.json").exists():
        return None
    spec = read_run(path).task_spec
    return spec.labels if spec is not None else None


def default_mode(fmt: str) -> str:
    """Score for closed label sets (classification), generate for free-text formats."""
    return "score" if fmt in SCORABLE_FORMATS else "generate"


def base_model_of(run_or_model: str) -> str:
    """The base model a run was trained from (for the zero-shot baseline); a plain model is its own base."""
    path = Path(run_or_model)
    if path.is_dir() and (path / "manifest.json").exists():
        base = read_run(path).base_model
        if base:
            return str(base)
    return run_or_model


def score_rows(model: Any, tokenizer: Any, rows: list[dict[str, Any]], labels: Sequence[str], fmt: str,
               template: str, batch_size: int, stats: Any, progress: bool, desc: str,
               date_string: str | None = None) -> Any:
    """``[n_rows, n_labels]`` sequence log-probabilities of each label's answer for prepared rows."""
    spec = TaskSpec(format=fmt, labels=list(labels), template=template)
    return Predictor(spec, model, tokenizer, batch_size=batch_size).score_rows(rows, stats, progress, desc)


def evaluate_rows(model: Any, tokenizer: Any, data: EvalData, split: str = "test", mode: str | None = None,
                  batch_size: int = 8, max_new_tokens: int = 64, temperature_scaling: bool = True,
                  bootstrap_samples: int = 1000, seed: int = 0, model_name: str = "",
                  progress: bool = True, limit: int | None = None,
                  run_temperature: float | None = None) -> tuple[list[Any], dict[str, Any]]:
    """:func:`evaluate_predictor` with a Predictor built on ``model`` and ``data``'s task spec."""
    predictor = Predictor(data.spec, model, tokenizer, model_name=model_name, batch_size=batch_size,
                          max_new_tokens=max_new_tokens)
    return evaluate_predictor(predictor, data, split, mode, temperature_scaling, bootstrap_samples, seed,
                              progress, limit, run_temperature)


def evaluate_predictor(predictor: Predictor, data: EvalData, split: str = "test", mode: str | None = None,
                       temperature_scaling: bool = True, bootstrap_samples: int = 1000, seed: int = 0,
                       progress: bool = True, limit: int | None = None,
                       run_temperature: float | None = None) -> tuple[list[Any], dict[str, Any]]:
    """Predict ``data.splits[split]`` and compute every metric; returns (predictions, metrics).

    Score mode fits a temperature on the validation split (when it has labels) and applies it to the test split;
    without a validation split it uses ``run_temperature`` (one the run recorded) if given. Generate mode parses
    strictly and counts unparsable outputs as ``invalid``. The predictor's spec is taken from ``data``.
    """
    predictor.spec = data.spec
    rows = _split_rows(data, split, limit)
    mode = mode or default_mode(data.fmt)
    labels = data.labels
    stats = InferenceStats()
    calibration: dict[str, Any] | None = None
    if mode == "score":
        if not labels:
            raise FintuneError(f"score mode needs a label set; task '{data.task}' has none", "use --mode generate")
        logprobs = predictor.score_rows(rows, stats, progress, f"score {split}")
        temperature, calibration = 1.0, {"temperature": 1.0, "fitted_on": None}
        val = [r for r in data.splits.get("validation") or [] if r.get("label")] if split != "validation" else []
        if temperature_scaling and val:
            val_lp = predictor.score_rows(val, None, progress, "score validation")
            unknown = sorted({r["label"] for r in val} - set(labels))
            if unknown:
                raise FintuneError(f"{data.source}: validation labels {unknown} are not in the label set {labels}")
            calibration = choose_temperature(val_lp, [labels.index(r["label"]) for r in val]).to_dict()
            temperature = calibration["temperature"]  # 1.0 unless scaling lowers held-out validation NLL
        elif temperature_scaling and run_temperature:
            temperature = float(run_temperature)
            calibration = {"temperature": temperature, "fitted_on": "run manifest"}
        elif temperature_scaling:
            calibration["note"] = "no labelled validation split: temperature not fitted (T=1)"
        preds = predictions_from_scores(rows, labels, logprobs, temperature, predictor.model_name)
    elif mode == "generate":
        preds = predictor.predict_rows(rows, "generate", stats=stats, progress=progress, desc=f"generate {split}")
    else:
        raise FintuneError(f"--mode {mode!r}: unknown mode", "use score or generate")
    metrics = compute_metrics(preds, data, split, mode, bootstrap_samples, seed, calibration)
    metrics["speed"] = stats.summary()
    if mode == "generate":
        metrics["thinking"] = thinking_summary(preds)
        # generated_tokens / tokens_per_s count every generated token, reasoning included
        metrics["speed"]["includes_thinking_tokens"] = True
    return preds, metrics


def _split_rows(data: EvalData, split: str, limit: int | None) -> list[dict[str, Any]]:
    rows = data.splits.get(split) or []
    if not rows:
        have = sorted(k for k, v in data.splits.items() if v)
        raise FintuneError(f"{data.source}: split '{split}' is empty or absent", f"splits with rows: {have}")
    return rows[:limit] if limit else rows


def compute_metrics(preds: Sequence[Any], data: EvalData, split: str, mode: str, bootstrap_samples: int = 1000,
                    seed: int = 0, calibration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every metric the predictions support: classification (+ calibration in score mode) or forecaster."""
    out: dict[str, Any] = {"task": data.task, "format": data.fmt, "mode": mode, "split": split, "n": len(preds),
                           "labels": list(data.labels or [])}
    labelled = [p for p in preds if p.gold]
    out["n_labelled"] = len(labelled)
    if not labelled:
        out.update(unlabelled_summary([p.label for p in preds]))
        return out
    if data.fmt == "forecaster":
        out["forecast"] = _forecast(labelled, data, bootstrap_samples, seed)
        return out
    labels = list(data.labels or [])
    out["classification"] = classification_metrics([p.gold for p in labelled], [p.label for p in labelled],
                                                   labels, bootstrap_samples, seed)
    for key in ("accuracy", "f1_weighted", "f1_macro", "mcc", "invalid_rate"):
        out[key] = out["classification"][key]
    if mode == "score" and calibration is not None:
        out["calibration"] = _calibration(labelled, labels, calibration)
    return out


def _calibration(preds: Sequence[Any], labels: list[str], calibration: dict[str, Any]) -> dict[str, Any]:
    logits = np.array([[(p.label_logprobs or {})[lab] for lab in labels] for p in preds])
    gold = [p.gold for p in preds]
    t = float(calibration.get("temperature") or 1.0)
    before = calibration_metrics(softmax_rows(logits, 1.0), gold, labels)
    after = calibration_metrics(softmax_rows(logits, t), gold, labels)
    return {**calibration, "before": before, "after": after, "ece_before": before["ece"], "ece_after": after["ece"]}


def _forecast(preds: Sequence[Any], data: EvalData, bootstrap_samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    by_id = {str(r["id"]): r for rows in data.splits.values() for r in rows or []}
    # previous period's move: the same ticker's example whose week ends where this one's starts
    week_move = {(r.get("ticker"), (r.get("extra") or {}).get("week_end")): (r.get("extra") or {}).get(
        "next_week_return") for r in by_id.values()}
    gold_rows = [by_id[p.id] for p in preds]
    extras = [r.get("extra") or {} for r in gold_rows]
    refs = [parse_forecast(e["answer"]) if isinstance(e.get("answer"), str) else None for e in extras]
    pred_sections = [p.sections if p.label != INVALID else None for p in preds]
    actual = [e.get("next_week_return") for e in extras]
    metrics = forecast_metrics(
        [p.gold for p in preds], [p.label for p in preds], [p.expected_move for p in preds],
        actual_moves=actual, pred_sections=pred_sections, ref_sections=refs)
    # per-example values, so `fintune compare` can pair two runs example by example
    for p, move, scores in zip(preds, actual, example_rouge(pred_sections, refs), strict=True):
        if move is not None:
            p.extra["actual_move"] = move
        if scores is not None:
            p.extra["rouge"] = scores
    train_bins = [r["label"] for r in data.splits.get("train") or [] if r.get("label")]
    prev = [week_move.get((r.get("ticker"), e.get("prev_close_date"))) for r, e in zip(gold_rows, extras,
                                                                                      strict=True)]
    metrics["baselines"] = forecast_baselines([p.gold for p in preds], train_bins, prev)
    p_up = [p.p_up for p in preds] if all(p.p_up is not None for p in preds) else None
    metrics["direction_ci"] = direction_intervals([p.gold for p in preds], [p.label for p in preds], prev, p_up,
                                                  bootstrap_samples, seed)
    return metrics


def baseline_predictions(baseline: str, data: EvalData, split: str = "test",
                         limit: int | None = None, seed: int = 0) -> list[Any]:
    """Predictions of the majority-class or TF-IDF + LR baseline (trained on the train split)."""
    rows = _split_rows(data, split, limit)
    if not data.labels:
        raise FintuneError(f"baseline {baseline}: task '{data.task}' has no label set")
    train = data.splits.get("train") or []
    if baseline == "majority":
        return majority_predictions(train, rows, data.labels)
    if baseline == "tfidf":
        return tfidf_predictions(train, rows, data.labels, seed)
    raise FintuneError(f"--baseline {baseline!r}: unknown baseline", "use majority, tfidf or zero-shot")


def write_eval_outputs(out_dir: Path, preds: Sequence[Any], metrics: dict[str, Any]) -> None:
    """predictions.jsonl, metrics.json, calibration.json and the plots, into an (already staged) directory."""
    write_jsonl(out_dir / "predictions.jsonl", preds)
    cls = metrics.get("classification")
    if cls:
        cm = cls["confusion_matrix"]
        plots.plot_confusion_matrix(cm["matrix"], metrics["labels"], cm["labels"], out_dir / "confusion_matrix.png")
    cal = metrics.get("calibration")
    if cal:
        atomic_write_json(out_dir / "calibration.json", {
            "temperature": cal["temperature"], "fitted_on": cal.get("fitted_on"),
            "n_validation": cal.get("n_validation"), "labels": metrics["labels"],
            "ece_before": cal["ece_before"], "ece_after": cal["ece_after"],
            "nll_before": cal["before"]["nll"], "nll_after": cal["after"]["nll"], "note": cal.get("note")})
        plots.plot_reliability(cal["before"]["reliability"], out_dir / "reliability.png",
                               cal["after"]["reliability"] if cal.get("fitted_on") else None,
                               cal["ece_before"], cal["ece_after"] if cal.get("fitted_on") else None)
        plots.plot_accuracy_coverage({"uncalibrated": cal["before"]["accuracy_vs_coverage"],
                                      "temperature-scaled": cal["after"]["accuracy_vs_coverage"]},
                                     out_dir / "accuracy_vs_coverage.png")
    atomic_write_json(out_dir / "metrics.json", metrics)


EVAL_DEFAULTS: dict[str, Any] = {"mode": None, "batch_size": 8, "max_new_tokens": 64, "temperature_scaling": True,
                                 "bootstrap_samples": 1000, "split": "test"}
"""What ``fintune eval`` uses when neither a flag nor the run's recipe ``eval:`` block sets a value."""
_EVAL_KEYS = {"mode": "mode", "batch_size": "per_device_eval_batch_size", "max_new_tokens": "max_new_tokens",
              "temperature_scaling": "temperature_scaling", "bootstrap_samples": "bootstrap_samples",
              "split": "split"}


def resolve_eval_settings(flags: dict[str, Any], spec: TaskSpec | None) -> dict[str, dict[str, Any]]:
    """Each eval setting with where it came from: a flag (not None) wins, then the run's recipe ``eval:`` block
    (keys the recipe set), then :data:`EVAL_DEFAULTS`. Returns ``{name: {"value": v, "from": source}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, key in _EVAL_KEYS.items():
        if flags.get(name) is not None:
            out[name] = {"value": flags[name], "from": "flag"}
        elif spec is not None and key in spec.eval_set:
            out[name] = {"value": getattr(spec.eval, key), "from": "run recipe eval block"}
        else:
            out[name] = {"value": EVAL_DEFAULTS[name], "from": "default"}
    return out


def run_eval(run_or_model: str | None, data: str | Path, out: str | Path, mode: str | None = None,
             baseline: str | None = None, split: str | None = None, batch_size: int | None = None,
             max_new_tokens: int | None = None, temperature_scaling: bool | None = None,
             bootstrap_samples: int | None = None, seed: int = 0, limit: int | None = None, dtype: str = "auto",
             progress: bool = True, backend: str = "torch",
             overwrite: bool = False) -> dict[str, Any]:
    """``fintune eval``: evaluate a run / model (or a baseline) on prepared data; returns the metrics dict.

    Args:
        run_or_model: run directory, model directory, hub id or alias (not needed for majority / tfidf).
        data: prepared dataset directory, or a recipe YAML to prepare into ``out/data``.
        out: output directory (written atomically; a non-empty one is replaced only with ``overwrite``, and never
            when it is or holds ``data`` / the run).
        mode, split, batch_size, max_new_tokens, temperature_scaling, bootstrap_samples: ``None`` = the run's
            recipe ``eval:`` block when it set the key, else :data:`EVAL_DEFAULTS`; ``metrics["settings"]`` says
            which was used.
        baseline: ``majority`` | ``tfidf`` | ``zero-shot`` (the base model of ``run_or_model``).
        backend: ``torch`` or ``vllm`` (the same predictions schema).
    """
    args = {k: v for k, v in locals().items() if k not in ("atomic_output_dir", "write_manifest", "check_output_dir")}
    args["data"], args["out"] = str(data), str(out)
    if baseline not in (None, "majority", "tfidf", "zero-shot"):
        raise FintuneError(f"--baseline {baseline!r}: unknown baseline", "use majority, tfidf or zero-shot")
    if mode not in (None, "score", "generate"):
        raise FintuneError(f"--mode {mode!r}: unknown mode", "use score or generate")
    if limit is not None and limit < 1:
        raise FintuneError(f"--limit {limit}: must be >= 1", "omit it to evaluate every example")
    if bootstrap_samples is not None and bootstrap_samples < 0:
        raise FintuneError(f"--bootstrap-samples {bootstrap_samples}: must be >= 0")
    check_inputs = {"inputs": [data], "runs": [run_or_model]}
    check_output_dir(out, overwrite, **check_inputs)
    if not Path(data).exists():  # before any model is loaded
        raise FintuneError(f"--data {data}: not found", "give a `fintune data` directory or a recipe YAML")
    if Path(data).is_file():  # a recipe: validate it now (preparing it may need the model's tokenizer)

        load_recipe(data)
    run_spec = None
    if run_or_model and baseline is None and (Path(run_or_model) / "manifest.json").exists():
        run_spec = read_run(run_or_model).task_spec
    settings = resolve_eval_settings({"mode": mode, "batch_size": batch_size, "max_new_tokens": max_new_tokens,
                                      "temperature_scaling": temperature_scaling,
                                      "bootstrap_samples": bootstrap_samples, "split": split}, run_spec)
    val = {k: v["value"] for k, v in settings.items()}
    with atomic_output_dir(out, overwrite, **check_inputs) as staging:
        predictor = None
        if baseline in ("majority", "tfidf"):
            ev = load_eval_data(data, workdir=staging)
            preds = baseline_predictions(baseline, ev, val["split"], limit, seed)
            metrics = compute_metrics(preds, ev, val["split"], "baseline", val["bootstrap_samples"], seed)
            model_name = f"baseline:{baseline}"
        else:
            if not run_or_model:
                raise FintuneError("eval: give RUN_OR_MODEL (a run directory, model directory or alias)")
            target = base_model_of(run_or_model) if baseline == "zero-shot" else run_or_model
            ev = None
            if Path(data).is_dir():  # check labels before spending time loading weights
                ev = load_eval_data(data, workdir=staging)
                if baseline != "zero-shot":
                    check_label_sets(run_labels(run_or_model), ev.labels, run_or_model, str(data))
            model_name = f"baseline:zero-shot:{target}" if baseline else str(run_or_model)
            predictor = Predictor.load(target, dtype=dtype, backend=backend, batch_size=val["batch_size"],
                                       max_new_tokens=val["max_new_tokens"])
            predictor.model_name = model_name
            info = predictor.info
            if ev is None:
                ev = load_eval_data(data, workdir=staging, tokenizer=predictor.tokenizer)
            if baseline != "zero-shot":
                check_label_sets(info.labels if info else None, ev.labels, run_or_model, str(data))
            if info is not None and info.template and baseline != "zero-shot":
                ev.template = str(info.template)
            preds, metrics = evaluate_predictor(predictor, ev, val["split"], val["mode"], val["temperature_scaling"],
                                                val["bootstrap_samples"], seed, progress, limit,
                                                info.temperature if info is not None and baseline is None else None)
        if metrics.get("classification"):  # Financial PhraseBank: the metrics per annotator-agreement bucket
            rows = _split_rows(ev, val["split"], limit)
            by_agreement = phrasebank_by_agreement(preds, rows, ev.source, list(ev.labels or []),
                                                   val["bootstrap_samples"], seed)
            if by_agreement is not None:
                metrics["by_agreement"] = by_agreement
        metrics["model"] = model_name
        metrics["data"] = ev.source
        metrics["settings"] = settings
        write_eval_outputs(staging, preds, metrics)
        write_manifest(staging, "eval", recipe=args, seed=seed, data_hashes=ev.data_hashes,
                       parent=str(run_or_model) if run_or_model else None, model=model_name,
                       labels=list(ev.labels or []), template=ev.template, mode=metrics.get("mode"),
                       temperature=(metrics.get("calibration") or {}).get("temperature"),
                       base_model=predictor.info.base_model if predictor is not None and predictor.info else None,
                       task_spec=ev.spec.model_dump(mode="json"), settings=settings,
                       backend=predictor.backend.name if predictor is not None else None)
    return json.loads((Path(out) / "metrics.json").read_text(encoding="utf-8"))
