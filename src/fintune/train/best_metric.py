"""Best checkpoint by a task metric: ``metric_for_best_model: f1_weighted`` (or ``direction_accuracy``, ...).

HF Trainer picks the best checkpoint from the metrics dict of each evaluation (``_determine_best_metric`` reads
``eval_<metric_for_best_model>`` from the dict that ``evaluate()`` also hands to ``on_evaluate``;
``greater_is_better`` defaults to True for a name not ending in ``loss``). Its ``compute_metrics`` only sees the
logits of the loss pass, which is not how ``fintune eval`` scores, so instead :class:`TaskMetricCallback` runs the
real scorer -- :func:`fintune.evaluate.evaluate_rows` on the validation split, the code path ``fintune eval`` uses
(score mode ranks the labels by log-probability; generate mode parses strictly) -- in ``on_evaluate`` and adds
``eval_<metric>`` to that dict and to the logged history. In a multi-task mix only the rows of the data block's own
task are scored (a sentiment F1 of the sentiment rows); the others still count in ``eval_loss``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from fintune.data.prepare import MIX_TASK
from fintune.errors import FintuneError
from fintune.recipe import Recipe

CLASSIFICATION_METRICS = ("f1_weighted", "f1_macro", "accuracy", "mcc")
FORECAST_METRICS = ("direction_accuracy", "bin_accuracy")
TASK_METRICS = CLASSIFICATION_METRICS + FORECAST_METRICS


def task_metric(recipe: Recipe) -> str | None:
    """The task metric ``metric_for_best_model`` names (``None`` for a loss); an unknown name is an error."""
    name = recipe.metric_for_best_model.removeprefix("eval_")
    if name.endswith("loss"):
        return None
    if name not in TASK_METRICS:
        raise FintuneError(f"recipe key 'metric_for_best_model': unknown metric {recipe.metric_for_best_model!r}",
                           f"use eval_loss or one of {list(TASK_METRICS)}")
    if recipe.stage == "pretrain":
        raise FintuneError(f"recipe key 'metric_for_best_model': {name} needs labelled examples; stage 1 "
                           "(pretrain) selects by eval_loss")
    fmt = recipe.data.format
    wanted = FORECAST_METRICS if fmt == "forecaster" else CLASSIFICATION_METRICS
    if name not in wanted or fmt in ("ner", "text"):
        raise FintuneError(f"recipe key 'metric_for_best_model': {name} does not apply to data.format '{fmt}'",
                           f"use one of {list(wanted)} or eval_loss")
    if recipe.eval_steps is None:
        raise FintuneError(f"recipe key 'metric_for_best_model': {name} is measured at each evaluation, but "
                           "eval_steps is not set", "set eval_steps (and a validation split: data.split.val_size)")
    return name


def validation_data(data_dir: str | Path) -> Any:
    """The prepared validation rows of the data block's own task, as ``EvalData`` for ``evaluate_rows``."""
    from fintune.evaluate import load_eval_data

    ev = load_eval_data(data_dir)
    rows = [r for r in ev.splits.get("validation") or [] if MIX_TASK not in (r.get("extra") or {})
            and r.get("label")]
    if not rows:
        raise FintuneError(f"{data_dir}: no labelled '{ev.task}' rows in the validation split to select the best "
                           "checkpoint by", "set data.split.val_size > 0")
    ev.splits = {"validation": rows}
    return ev


def metric_value(metrics: dict[str, Any], name: str) -> float:
    """``name`` from ``evaluate_rows`` metrics (classification keys at the top, forecaster ones under forecast)."""
    value = metrics.get(name) if name in CLASSIFICATION_METRICS else (metrics.get("forecast") or {}).get(name)
    return float(value) if value is not None else 0.0


class TaskMetricCallback(TrainerCallback):
    """Score the validation split like ``fintune eval`` at every evaluation and report ``eval_<metric>``."""

    def __init__(self, metric: str, data: Any, tokenizer: Any, mode: str, batch_size: int = 8,
                 max_new_tokens: int = 64) -> None:
        self.metric, self.data, self.tokenizer = metric, data, tokenizer
        self.mode, self.batch_size, self.max_new_tokens = mode, batch_size, max_new_tokens
        self.history: list[dict[str, Any]] = []

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                    model: Any = None, **kwargs: Any) -> None:
        """Add ``eval_<metric>`` to this evaluation's metrics (Trainer compares it next) and its log entry."""
        from fintune.evaluate import evaluate_rows

        if metrics is None or model is None:
            return
        _, scored = evaluate_rows(model, self.tokenizer, self.data, split="validation", mode=self.mode,
                                  batch_size=self.batch_size, max_new_tokens=self.max_new_tokens,
                                  temperature_scaling=False, bootstrap_samples=0, progress=False)
        key = f"eval_{self.metric}"
        value = metric_value(scored, self.metric)
        metrics[key] = value
        for row in reversed(state.log_history):  # Trainer logged this evaluation before calling on_evaluate
            if "eval_loss" in row and row.get("step") == state.global_step:
                row[key] = value
                break
        self.history.append({"step": state.global_step, key: value, "n": scored.get("n")})


def build_callback(recipe: Recipe, data_dir: str | Path, tokenizer: Any) -> TaskMetricCallback | None:
    """The callback for ``recipe`` (None when it selects by a loss)."""
    name = task_metric(recipe)
    if name is None:
        return None
    # the recipe's eval block says how its runs are scored: score (labels by log-probability) or generate
    return TaskMetricCallback(name, validation_data(data_dir), tokenizer, recipe.eval.mode,
                              recipe.eval.per_device_eval_batch_size, recipe.eval.max_new_tokens)


def restore_best_full_weights(trainer: Any) -> bool:
    """Reload a full-weight model's best checkpoint through ``from_pretrained`` after ``load_best_model_at_end``.

    Trainer restores the best checkpoint with a plain ``load_state_dict(strict=False)``, which misses weights whose
    on-disk name differs from the module name: transformers 5 saves GPT-NeoX's ``lm_head`` as ``embed_out``, so the
    output head silently stayed at the LAST step (found by the S3 test). ``from_pretrained`` applies the key
    mapping; its weights are copied in strictly. Adapters, DeepSpeed and FSDP runs are left to Trainer. Returns True
    when it reloaded.
    """
    import torch

    state, args, model = trainer.state, trainer.args, trainer.model
    if not (args.load_best_model_at_end and state.best_model_checkpoint):
        return False
    if hasattr(model, "peft_config") or trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        return False
    dtype = next(model.parameters()).dtype
    best = type(model).from_pretrained(state.best_model_checkpoint, dtype=dtype)
    with torch.no_grad():
        model.load_state_dict(best.state_dict(), strict=True)
    return True
