"""``fintune sweep RECIPE --space SPACE.yaml --trials N``: LoRA hyper-parameter search with Optuna.

Each trial is a normal run directory (``OUT/trials/trial-0003``) trained by :func:`fintune.train.sft.train_sft`
with the recipe plus the trial's parameters, then scored on the **validation** split (never test) with
:func:`fintune.evaluate.evaluate_rows`. The study lives in ``OUT/study.db`` (SQLite) and is resumed when the
command runs again. A trial whose logged ``eval_loss`` curve is worse than the median of earlier trials at the
same step (Optuna's MedianPruner) is pruned before its validation scoring. Outputs: ``trials.csv``,
``summary.md``, ``best.json`` and Optuna's matplotlib plots (``history.png``, ``importance.png``,
``parallel.png``), plus ``manifest.json``.

Space file (YAML)::

    lora_r: {type: categorical, choices: [4, 8, 16]}
    lora_alpha: {type: categorical, choices: [8, 16, 32]}
    lora_dropout: {type: float, low: 0.0, high: 0.1}
    target_modules: {type: categorical, choices: ["all-linear", "q_proj,v_proj"]}
    learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
    num_train_epochs: {type: int, low: 1, high: 3}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fintune.artifacts import (
    atomic_output_dir,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    write_manifest,
)
from fintune.data.prepare import source_paths
from fintune.errors import FintuneError
from fintune.recipe import recipe_to_dict, validate_recipe_dict
from fintune.records import write_jsonl
from fintune.train.sft import train_sft
from fintune.yamlio import load_yaml

SEARCHABLE = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate", "num_train_epochs",
              "weight_decay", "warmup_ratio", "per_device_train_batch_size", "max_steps")
_TYPES = ("categorical", "float", "int")
MINIMIZE = ("eval_loss", "invalid_rate")


def load_space(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read and validate a search-space YAML; errors name the file and the key."""
    path = Path(path)
    if not path.exists():
        raise FintuneError(f"--space {path}: file not found")
    return validate_space(load_yaml(path), str(path))


def validate_space(raw: Any, where: str = "<space>") -> dict[str, dict[str, Any]]:
    """Check every parameter: a searchable recipe key with a known type and sane bounds."""
    if not isinstance(raw, dict) or not raw:
        raise FintuneError(f"{where}: a space is a mapping of recipe keys to distributions",
                           "e.g. lora_r: {type: categorical, choices: [4, 8]}")
    for key, spec in raw.items():
        at = f"{where}: key '{key}'"
        if key not in SEARCHABLE:
            raise FintuneError(f"{at}: not searchable", f"searchable keys: {list(SEARCHABLE)}")
        if not isinstance(spec, dict) or spec.get("type") not in _TYPES:
            raise FintuneError(f"{at}: needs 'type' in {list(_TYPES)}")
        if spec["type"] == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise FintuneError(f"{at}: 'choices' must be a non-empty list")
            bad = [c for c in choices if not isinstance(c, (str, int, float, bool))]
            if bad:
                raise FintuneError(f"{at}: choices must be scalars, got {bad[0]!r}",
                                   "write module lists as comma-separated strings: 'q_proj,v_proj'")
        else:
            low, high = spec.get("low"), spec.get("high")
            if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low > high:
                raise FintuneError(f"{at}: needs numbers 'low' <= 'high', got low={low!r} high={high!r}")
            if spec.get("log") and low <= 0:
                raise FintuneError(f"{at}: log scale needs low > 0")
    return raw


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The trial's parameters as recipe values (``"q_proj,v_proj"`` -> a list of module names)."""
    params: dict[str, Any] = {}
    for key, spec in space.items():
        if spec["type"] == "categorical":
            value = trial.suggest_categorical(key, spec["choices"])
        elif spec["type"] == "int":
            value = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            value = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
        if key == "target_modules" and isinstance(value, str) and value != "all-linear":
            value = [m.strip() for m in value.split(",") if m.strip()]
        params[key] = value
    return params


def _sampler(name: str, space: dict[str, dict[str, Any]], seed: int) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        grid = {k: v["choices"] for k, v in space.items() if v["type"] == "categorical"}
        if len(grid) != len(space):
            raise FintuneError("--sampler grid: every parameter must be categorical (a grid needs choices)")
        return optuna.samplers.GridSampler(grid, seed=seed)
    raise FintuneError(f"--sampler {name!r}: unknown", "use tpe, random or grid")


def _eval_losses(run: Path) -> list[tuple[int, float]]:
    path = run / "metrics.jsonl"
    out = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if "eval_loss" in row and row.get("step") is not None:
                out.append((int(row["step"]), float(row["eval_loss"])))
    return out


def pruning_callback(trial: Any) -> Any:
    """A TrainerCallback that reports every ``eval_loss`` to the Optuna trial and stops a bad trial mid-training.

    Raising ``optuna.TrialPruned`` inside ``on_evaluate`` ends ``trainer.train()`` at once, so a pruned trial
    spends no more training steps (its run directory keeps the checkpoints written so far).
    """
    import optuna
    from transformers import TrainerCallback

    class _Prune(TrainerCallback):
        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                        **kwargs: Any) -> None:
            if metrics and "eval_loss" in metrics:
                trial.report(float(metrics["eval_loss"]), int(state.global_step))
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at step {state.global_step}")

    return _Prune()


def run_trial(recipe: Any, params: dict[str, Any], run_dir: Path, metric: str, trial: Any = None,
              limit: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Train one trial run and score it on the validation split; returns ``{metric, value, metrics}``.

    The validation predictions are kept in ``RUN/validation/predictions.jsonl`` with an ``eval`` manifest naming
    the trial (``sweep_trial``), so ``fintune backtest`` can backtest every trial and records each in the trials
    ledger with its ``sweep_trial`` label (the deflated Sharpe then counts the whole sweep).

    Raises ``optuna.TrialPruned`` (from inside training) when ``trial`` says its eval-loss curve should be pruned.
    """
    from fintune.evaluate import evaluate_predictor, load_eval_data
    from fintune.predict.predictor import Predictor

    trial_recipe = validate_recipe_dict({**recipe_to_dict(recipe), **params, "output_dir": str(run_dir)},
                                        f"trial {run_dir.name}")
    train_sft(trial_recipe, run_dir, callbacks=[pruning_callback(trial)] if trial is not None else None)
    data = load_eval_data(run_dir / "data")
    if not data.splits.get("validation"):
        raise FintuneError(f"{run_dir / 'data'}: no validation split to score trials on",
                           "set data.split.val_size > 0 in the recipe (the test split is never used by a sweep)")
    if metric == "eval_loss":
        losses = _eval_losses(run_dir)
        if not losses:
            raise FintuneError("metric eval_loss: the trainer logged no eval_loss", "set eval_steps in the recipe")
        return {"metric": metric, "value": losses[-1][1], "metrics": {"eval_loss": losses[-1][1]}}
    predictor = Predictor.load(str(run_dir), batch_size=trial_recipe.per_device_eval_batch_size)
    data.template = str((predictor.info.template if predictor.info else None) or data.template)
    preds, metrics = evaluate_predictor(predictor, data, split="validation", temperature_scaling=False,
                                        bootstrap_samples=0, progress=progress, limit=limit)
    write_trial_predictions(run_dir, preds, trial.number if trial is not None else None, metrics)
    if metric not in metrics:
        have = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
        raise FintuneError(f"--metric {metric!r}: not computed for this task", f"available: {have}")
    return {"metric": metric, "value": float(metrics[metric]), "metrics": {
        k: metrics[k] for k in ("accuracy", "f1_weighted", "f1_macro", "mcc", "invalid_rate") if k in metrics}}


def write_trial_predictions(run_dir: Path, preds: list[Any], number: int | None, metrics: dict[str, Any]) -> Path:
    """``RUN/validation/``: the trial's validation predictions + metrics + an ``eval`` manifest (``sweep_trial``)."""
    out = run_dir / "validation"
    with atomic_output_dir(out, overwrite=True) as tmp:
        write_jsonl(tmp / "predictions.jsonl", preds)
        atomic_write_json(tmp / "metrics.json", metrics)
        write_manifest(tmp, "eval", parent=str(run_dir), model=str(run_dir), split="validation", sweep_trial=number,
                       sweep=str(run_dir.parent.parent))
    return out


def _sweep_dir(recipe: Any, out: str | Path, overwrite: bool) -> Path:
    """A new or earlier sweep directory (resumed); anything else non-empty needs ``overwrite`` (which empties it)."""
    import shutil

    out = Path(out)
    resumable = (out / "study.db").is_file() and not overwrite
    check_output_dir(out, overwrite or resumable, inputs=source_paths(recipe), runs=[recipe.model_name_or_path])
    if overwrite and out.is_dir() and any(out.iterdir()):
        shutil.rmtree(out)
    return out


def run_sweep(recipe: Any, space: dict[str, dict[str, Any]], out: str | Path, trials: int,
              metric: str = "f1_weighted", sampler: str = "tpe", seed: int = 42, study_name: str | None = None,
              eval_limit: int | None = None, progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Run (or resume) a study of ``trials`` more trials; returns the summary written to ``OUT/best.json``.

    Args:
        recipe: a validated Recipe (``fintune.recipe.load_recipe``); must have a validation split.
        space: parameter -> distribution (:func:`validate_space`).
        metric: validation metric to optimise (``f1_weighted``, ``accuracy``, ``mcc`` maximised;
            ``eval_loss``, ``invalid_rate`` minimised).
        eval_limit: score only the first N validation rows per trial (quick sweeps).
    """
    import optuna

    if trials < 1:
        raise FintuneError(f"--trials {trials}: must be >= 1")
    if recipe.data.split.val_size <= 0 and recipe.data.split.method != "predefined":
        raise FintuneError("recipe data.split.val_size is 0: a sweep scores trials on the validation split",
                           "set data.split.val_size (e.g. 0.1); the test split is never used by a sweep")
    space = validate_space(space)
    out = _sweep_dir(recipe, out, overwrite)
    (out / "trials").mkdir(parents=True, exist_ok=True)
    direction = "minimize" if metric in MINIMIZE else "maximize"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name or recipe.name, storage=f"sqlite:///{(out / 'study.db').resolve()}",
        load_if_exists=True, direction=direction, sampler=_sampler(sampler, space, seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))

    def objective(trial: Any) -> float:
        params = suggest(trial, space)
        run_dir = out / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        result = run_trial(recipe, params, run_dir, metric, trial, eval_limit, progress=False)
        for k, v in result["metrics"].items():
            trial.set_user_attr(k, v)
        return result["value"]

    study.optimize(objective, n_trials=trials, show_progress_bar=progress, catch=())
    summary = write_sweep_outputs(study, out, metric)
    write_manifest(out, "sweep", recipe=recipe_to_dict(recipe), seed=seed,
                   sweep={"space": space, "metric": metric, "direction": direction, "sampler": sampler,
                          "trials_requested": trials, "storage": "study.db"})
    return summary


def write_sweep_outputs(study: Any, out: Path, metric: str) -> dict[str, Any]:
    """trials.csv, summary.md, best.json and the Optuna plots for a study."""
    import optuna

    df = study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs", "duration"))
    atomic_write_text(out / "trials.csv", df.to_csv(index=False))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    best = study.best_trial if done else None
    summary = {"metric": metric, "direction": study.direction.name.lower(), "n_trials": len(study.trials),
               "n_complete": len(done), "n_pruned": len(pruned),
               "best": {"number": best.number, "value": best.value, "params": best.params,
                        "run_dir": best.user_attrs.get("run_dir")} if best else None}
    atomic_write_json(out / "best.json", summary)
    lines = [f"# Sweep: {study.study_name}", "",
             f"Objective: validation `{metric}` ({summary['direction']}); {len(done)} complete, "
             f"{len(pruned)} pruned, {len(study.trials)} total.", "",
             "| trial | state | value | " + " | ".join(sorted({k for t in study.trials for k in t.params})) + " |"]
    keys = sorted({k for t in study.trials for k in t.params})
    lines.append("|" + "---|" * (3 + len(keys)))
    for t in study.trials:
        val = "-" if t.value is None else f"{t.value:.4f}"
        lines.append(f"| {t.number} | {t.state.name.lower()} | {val} | "
                     + " | ".join(str(t.params.get(k, "-")) for k in keys) + " |")
    if best:
        lines += ["", f"Best: trial {best.number}, {metric} = {best.value:.4f}, run `{best.user_attrs.get('run_dir')}`."]
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    _plots(study, out, len(done))
    return summary


def _plots(study: Any, out: Path, n_complete: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plots = [("history.png", ovm.plot_optimization_history)]
    if n_complete >= 2:
        plots += [("parallel.png", ovm.plot_parallel_coordinate)]
    if n_complete >= 3 and len(study.best_trial.params) > 1:
        plots += [("importance.png", ovm.plot_param_importances)]
    for name, fn in plots:
        ax = fn(study)
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(9, 5)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
