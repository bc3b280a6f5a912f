"""``fintune walkforward RECIPE``: retrain the forecaster per window, predict each test window out of sample.

The recipe's prepared forecaster examples (all splits: the walk-forward re-splits them by time) are dated by their
predicted week (``date`` = the week's first day); each example's label spans that week (``extra['week_end']``, so
its label interval in weeks is ``[t0, t1]``, both on the ``W-FRI`` week calendar of the examples). The last
``windows x test_weeks`` weeks are cut into ``windows`` consecutive test windows. For window ``i`` with test weeks
``[a, b]``:

* **train** on the examples whose label interval ends before ``a - purge_weeks`` (the purge: a label resolved in
  the ``purge_weeks`` weeks before the test window is dropped, as are labels inside it);
* with ``two_sided`` also on examples *after* the test window (purged k-fold, Lopez de Prado, "Advances in
  Financial Machine Learning", ch. 7), except those starting in the ``embargo_weeks`` weeks after ``b`` (the
  embargo). Walk-forward training (the default) precedes its test window, where an embargo drops nothing, so
  ``embargo_weeks`` needs ``two_sided``;
* :func:`fintune.backtest.purged.assert_no_leak` checks the training set before anything is trained: a training
  label that reaches into the test window, its purge or its embargo stops the run with a one-line error;
* train with :func:`fintune.train.sft.train_sft` (``OUT/windows/wNN/run``, the window's rows in
  ``OUT/windows/wNN/data``), then predict every example of the test weeks with the one
  :class:`~fintune.predict.predictor.Predictor` (:func:`fintune.evaluate.evaluate_predictor`).

``OUT/predictions.jsonl`` holds every window's predictions (``extra['wf_window']`` = window, ``extra['train_end']``
= the last training label's end), ready for ``fintune backtest`` unchanged; ``OUT/manifest.json`` is a
:class:`fintune.run.WalkForwardManifest` (windows, their weeks, train / purged / embargoed / test counts) and is
written last: a directory without it is an interrupted run. A window's recipe is the given one with
``data.prepared`` pointing at the window's rows, no validation split and no best-checkpoint selection.
"""

from __future__ import annotations

import gc
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fintune.artifacts import atomic_write_json, check_output_dir, write_manifest
from fintune.backtest.purged import assert_no_leak, purged_train_mask
from fintune.data.prepare import SPLITS, prepare_data, read_prepared, source_paths, write_split_parquet
from fintune.errors import FintuneError
from fintune.recipe import recipe_to_dict, validate_recipe_dict
from fintune.records import write_jsonl
from fintune.run import read_run
from fintune.train.sft import train_sft


@dataclass
class WeekIndex:
    """Examples placed on their week calendar: ``t0``/``t1`` week positions of each label interval."""

    weeks: list[str]  # the Friday ending each week (ISO), ascending
    t0: Any
    t1: Any
    ids: list[str]


def week_index(rows: list[dict[str, Any]], where: str) -> WeekIndex:
    """Each row's label interval in week positions (``date`` .. ``extra['week_end']``, ``W-FRI`` weeks)."""
    import numpy as np
    import pandas as pd

    starts, ends = [], []
    for i, row in enumerate(rows):
        date = row.get("date")
        end = (row.get("extra") or {}).get("week_end") or date
        try:
            s, e = pd.Period(str(date)[:10], freq="W-FRI"), pd.Period(str(end)[:10], freq="W-FRI")
        except (ValueError, TypeError):
            raise FintuneError(f"{where} row {i} ('{row.get('id')}'): field 'date' {date!r} / 'week_end' {end!r} "
                               "is not a date", "walk-forward needs dated forecaster examples") from None
        if e < s:
            raise FintuneError(f"{where} row {i} ('{row.get('id')}'): week_end {end} is before its date {date}")
        starts.append(s)
        ends.append(e)
    if not starts:
        raise FintuneError(f"{where}: no examples")
    first = min(starts)
    n = max(ends).ordinal - first.ordinal + 1
    weeks = [str((first + k).end_time.date()) for k in range(n)]
    return WeekIndex(weeks, np.array([s.ordinal - first.ordinal for s in starts]),
                     np.array([e.ordinal - first.ordinal for e in ends]), [str(r.get("id")) for r in rows])


def plan_windows(idx: WeekIndex, windows: int, test_weeks: int, purge_weeks: int) -> list[tuple[int, int]]:
    """The ``windows`` consecutive test windows ``(a, b)`` (week positions) ending at the last predicted week."""
    last = int(idx.t0.max())
    first = last + 1 - windows * test_weeks
    if first - purge_weeks < 1 or not (idx.t1 < first - purge_weeks).any():
        raise FintuneError(f"walk-forward: {last + 1} weeks of examples cannot hold {windows} test windows of "
                           f"{test_weeks} weeks after a purge of {purge_weeks} and some training weeks",
                           "use fewer or shorter windows")
    return [(first + i * test_weeks, first + (i + 1) * test_weeks - 1) for i in range(windows)]


def select_train(idx: WeekIndex, a: int, b: int, purge_weeks: int, embargo_weeks: int,
                 two_sided: bool) -> tuple[Any, int, int]:
    """``(train positions, n_purged, n_embargoed)`` for test weeks ``[a, b]`` (see the module doc)."""
    import numpy as np

    side = np.ones(idx.t0.shape, bool) if two_sided else idx.t0 < a
    keep = purged_train_mask(idx.t0, idx.t1, [(a - purge_weeks, b)], embargo_weeks) & side
    in_test = (idx.t0 >= a) & (idx.t0 <= b)
    embargoed = side & (idx.t0 > b) & (idx.t0 <= b + embargo_weeks)
    purged = side & ~keep & ~in_test & ~embargoed
    return np.flatnonzero(keep), int(purged.sum()), int(embargoed.sum())


def _raw(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "extra": json.dumps(row.get("extra") or {}, ensure_ascii=False, default=str),
            "messages": json.dumps(row.get("messages") or [], ensure_ascii=False)}


def _write_window_data(directory: Path, rows: list[dict[str, Any]], data_manifest: dict[str, Any],
                       window: int) -> Path:
    directory.mkdir(parents=True)
    write_split_parquet(directory / "train.parquet", [_raw(r) for r in rows])
    for name in SPLITS:
        if name != "train":
            write_split_parquet(directory / f"{name}.parquet", [])
    atomic_write_json(directory / "manifest.json", {
        **data_manifest, "counts": {"train": len(rows), "validation": 0, "test": 0}, "walkforward_window": window})
    return directory


def run_walkforward(recipe: Any, out: str | Path, windows: int, test_weeks: int, purge_weeks: int = 1,
                    embargo_weeks: int = 0, two_sided: bool = False, overwrite: bool = False,
                    progress: bool = False) -> Any:
    """Retrain per window and predict each test window; returns the :class:`fintune.run.WalkForwardManifest`.

    Args:
        recipe: a validated forecaster :class:`~fintune.recipe.Recipe` (``data.prepared`` or its sources).
        out: output directory (a non-empty one only with ``overwrite``, never an input).
        windows / test_weeks: number of test windows and weeks per window (the last weeks of the examples).
        purge_weeks: weeks before each test window whose labels are dropped from training.
        embargo_weeks / two_sided: also train after the test window, minus the embargo (see the module doc).
    """
    from fintune.evaluate import EvalData, default_mode, evaluate_predictor
    from fintune.predict.predictor import Predictor

    if windows < 1 or test_weeks < 1 or purge_weeks < 0 or embargo_weeks < 0:
        raise FintuneError("walk-forward: --windows and --test-weeks must be >= 1, purge and embargo >= 0")
    if embargo_weeks and not two_sided:
        raise FintuneError(f"--embargo-weeks {embargo_weeks}: walk-forward training precedes its test window, so "
                           "an embargo after it drops nothing", "add --two-sided to also train after each test "
                                                                "window (purged k-fold), or drop --embargo-weeks")
    if recipe.data.format != "forecaster":
        raise FintuneError(f"walk-forward: recipe data.format is {recipe.data.format!r}",
                           "retrain-per-window needs forecaster examples (data.format: forecaster)")
    inputs = [*source_paths(recipe), recipe.data.prepared]
    out = check_output_dir(out, overwrite, inputs=inputs, runs=[recipe.model_name_or_path])
    if overwrite and out.is_dir() and any(out.iterdir()):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(recipe.data.prepared) if recipe.data.prepared else prepare_data(recipe, out / "data")
    data_manifest = read_run(data_dir, "data")
    splits = read_prepared(data_dir)
    rows = [r for name in ("train", "validation", "test") for r in splits.get(name) or []]
    idx = week_index(rows, str(data_dir))
    tests = plan_windows(idx, windows, test_weeks, purge_weeks)
    spec = data_manifest.spec
    mode = recipe.eval.mode if "mode" in recipe.eval.model_fields_set else default_mode(spec.format)
    raw_manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    records, predictions = [], []
    for w, (a, b) in enumerate(tests):
        train_idx, n_purged, n_embargoed = select_train(idx, a, b, purge_weeks, embargo_weeks, two_sided)
        assert_no_leak(idx.t0, idx.t1, train_idx, [(a - purge_weeks, b)], embargo_weeks, names=idx.ids)
        if not len(train_idx):
            raise FintuneError(f"walk-forward window {w}: no training example before week {idx.weeks[a]}")
        test_idx = [i for i in range(len(rows)) if a <= idx.t0[i] <= b]
        wdir = out / "windows" / f"w{w:02d}"
        wdata = _write_window_data(wdir / "data", [rows[i] for i in train_idx], raw_manifest, w)
        wrecipe = validate_recipe_dict(
            {**recipe_to_dict(recipe), "data": {**recipe_to_dict(recipe)["data"], "prepared": str(wdata)},
             "output_dir": str(wdir / "run"), "eval_steps": None, "load_best_model_at_end": False,
             "metric_for_best_model": "eval_loss"}, f"walk-forward window {w}")
        train_sft(wrecipe, out=wdir / "run")
        predictor = Predictor.load(str(wdir / "run"), batch_size=recipe.per_device_eval_batch_size)
        data = EvalData(splits={"test": [rows[i] for i in test_idx]}, task=spec.task, fmt=spec.format,
                        template=str((predictor.info.template if predictor.info else None) or spec.template),
                        labels=tuple(spec.labels) if spec.labels else None, source=f"{data_dir} window {w}",
                        template_date=spec.template_date)
        preds, _ = evaluate_predictor(predictor, data, split="test", mode=mode, temperature_scaling=False,
                                      bootstrap_samples=0, progress=progress)
        del predictor
        gc.collect()
        train_end = idx.weeks[int(idx.t1[train_idx].max())]
        for p in preds:
            p.extra.update({"wf_window": w, "train_end": train_end})
        predictions += preds
        first_train = int(idx.t0[train_idx].min())
        records.append({
            "window": w, "train_first_week": idx.weeks[first_train], "train_last_week": train_end,
            "purge_first_week": idx.weeks[a - purge_weeks] if purge_weeks else None,
            "test_first_week": idx.weeks[a], "test_last_week": idx.weeks[b],
            "embargo_last_week": idx.weeks[min(b + embargo_weeks, len(idx.weeks) - 1)] if embargo_weeks else None,
            "n_train": len(train_idx), "n_purged": n_purged, "n_embargoed": n_embargoed, "n_test": len(test_idx),
            "run_dir": str(Path("windows") / f"w{w:02d}" / "run")})
    write_jsonl(out / "predictions.jsonl", predictions)
    atomic_write_json(out / "windows.json", records)
    write_manifest(out, "walkforward", recipe=recipe_to_dict(recipe), seed=recipe.seed,
                   data_hashes=data_manifest.data_sha256, base_model=recipe.model_name_or_path,
                   model_cutoff=recipe.model_cutoff, task_spec=spec.model_dump(mode="json"),
                   licenses=dict(data_manifest.licenses), data_dir=str(data_dir), windows=records,
                   test_weeks=test_weeks, purge_weeks=purge_weeks, embargo_weeks=embargo_weeks,
                   two_sided=two_sided, mode=mode, n_predictions=len(predictions))
    return read_run(out, "walkforward")
