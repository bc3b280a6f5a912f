"""``fintune compare RUN... --out DIR``: several evaluated runs side by side, with paired-bootstrap intervals.

Each RUN is an eval output directory (``metrics.json`` + ``predictions.jsonl``) or a training run directory with
an ``eval/`` subdirectory. Differences are measured against the first run on the example ids every run shares,
resampling the same examples for both runs (paired bootstrap), so a delta whose interval spans 0 is not a win.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fintune.artifacts import (
    atomic_output_dir,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    write_manifest,
)
from fintune.errors import FintuneError
from fintune.evaluate import plots as P
from fintune.evaluate.compare_forecast import forecast_comparison, is_forecaster, render_forecast_markdown
from fintune.records import INVALID, iter_jsonl, read_json_object, read_predictions
from fintune.run import read_run


@dataclass
class RunResult:
    """One run's eval metrics, predictions and (when found) training log."""

    name: str
    path: Path
    metrics: dict[str, Any]
    predictions: list[Any]
    train_log: list[dict[str, Any]] = field(default_factory=list)


def _eval_dir(path: Path) -> Path:
    for cand in (path, path / "eval"):
        if (cand / "metrics.json").exists():
            return cand
    raise FintuneError(f"{path}: no metrics.json (nor eval/metrics.json)", "run `fintune eval` on it first")


def _train_log(eval_dir: Path, run_path: Path) -> list[dict[str, Any]]:
    candidates = [run_path / "metrics.jsonl", eval_dir.parent / "metrics.jsonl"]
    if (eval_dir / "manifest.json").exists():
        parent = read_run(eval_dir).parent_run
        if parent:
            candidates.append(Path(parent) / "metrics.jsonl")
    for cand in candidates:
        if cand.exists():
            return [row for _, row in iter_jsonl(cand) if isinstance(row, dict)]
    return []


def load_run(path: str | Path) -> RunResult:
    """Read one run's metrics.json, predictions.jsonl and training log (one-line errors for bad files)."""
    run_path = Path(path)
    if not run_path.is_dir():
        raise FintuneError(f"{run_path}: not a directory", "give eval output or run directories")
    ev = _eval_dir(run_path)
    metrics = read_json_object(ev / "metrics.json")
    preds = read_predictions(ev / "predictions.jsonl")
    return RunResult(name=run_path.name, path=run_path, metrics=metrics, predictions=preds,
                     train_log=_train_log(ev, run_path))


def _get(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)  # type: ignore[assignment]
    return d


def _mean_rouge(metrics: dict[str, Any], key: str = "rouge1") -> float | None:
    rouge = _get(metrics, "forecast", "rouge") or {}
    vals = [v.get(key) for v in rouge.values() if isinstance(v, dict) and v.get(key) is not None]
    return sum(vals) / len(vals) if vals else None


def summary_row(run: RunResult) -> dict[str, Any]:
    """The comparable numbers of one run (None where the run does not have them)."""
    m = run.metrics
    runtime = None
    for row in run.train_log:
        runtime = row.get("train_runtime", runtime)
    return {
        "run": run.name, "n": m.get("n"), "mode": m.get("mode"),
        "accuracy": m.get("accuracy"), "accuracy_ci": _get(m, "classification", "ci95", "accuracy"),
        "f1_weighted": m.get("f1_weighted"), "f1_weighted_ci": _get(m, "classification", "ci95", "f1_weighted"),
        "f1_macro": m.get("f1_macro"), "mcc": m.get("mcc"), "invalid_rate": m.get("invalid_rate"),
        "ece_before": _get(m, "calibration", "ece_before"), "ece_after": _get(m, "calibration", "ece_after"),
        "direction_accuracy": _get(m, "forecast", "direction_accuracy"),
        "mse_vs_bin": _get(m, "forecast", "vs_bin_midpoint", "mse"),
        "mse_vs_actual": _get(m, "forecast", "vs_actual_move", "mse"),
        "rouge1": _mean_rouge(m), "parse_rate": _get(m, "forecast", "parse_rate"),
        "examples_per_s": _get(m, "speed", "examples_per_s"), "latency_ms_p50": _get(m, "speed", "latency_ms_p50"),
        "train_runtime_s": runtime,
    }


def _direction(label: str) -> str | None:
    return None if label == INVALID else ("up" if label.startswith("U") else "down")


def paired_bootstrap(ref: RunResult, other: RunResult, samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Difference (other - ref) of accuracy, weighted F1 and (forecaster) direction accuracy on shared ids,
    with a 95% paired-bootstrap interval."""
    import numpy as np
    from sklearn.metrics import f1_score

    a = {p.id: p for p in ref.predictions if p.gold}
    b = {p.id: p for p in other.predictions if p.gold}
    ids = sorted(set(a) & set(b))
    if not ids:
        return {"n_shared": 0, "note": "no labelled example ids in common"}
    for i in ids:
        if a[i].gold != b[i].gold:
            raise FintuneError(f"{other.path}: example '{i}' has gold '{b[i].gold}' but '{a[i].gold}' in {ref.path}",
                               "compare runs evaluated on the same data")
    gold = np.array([a[i].gold for i in ids], dtype=object)
    pa = np.array([a[i].label for i in ids], dtype=object)
    pb = np.array([b[i].label for i in ids], dtype=object)
    labels = list(ref.metrics.get("labels") or sorted(set(gold)))
    forecaster = ref.metrics.get("format") == "forecaster"

    def stats(idx: Any) -> dict[str, float]:
        g, x, y = gold[idx], pa[idx], pb[idx]
        out = {"accuracy": float((y == g).mean() - (x == g).mean())}
        if forecaster:
            dg = [_direction(v) for v in g]
            out["direction_accuracy"] = float(np.mean([_direction(v) == d for v, d in zip(y, dg, strict=True)])
                                              - np.mean([_direction(v) == d for v, d in zip(x, dg, strict=True)]))
        else:
            out["f1_weighted"] = float(f1_score(g, y, labels=labels, average="weighted", zero_division=0)
                                       - f1_score(g, x, labels=labels, average="weighted", zero_division=0))
        return out

    point = stats(np.arange(len(ids)))
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(samples):
        for k, v in stats(rng.integers(0, len(ids), len(ids))).items():
            draws[k].append(v)
    out: dict[str, Any] = {"n_shared": len(ids), "vs": ref.name}
    for k, v in point.items():
        lo, hi = (float(np.quantile(draws[k], 0.025)), float(np.quantile(draws[k], 0.975))) if samples else (v, v)
        out[k] = {"delta": v, "ci95": [lo, hi], "significant": not (lo <= 0.0 <= hi)}
    return out


def _fmt(v: Any, ci: Any = None) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        s = f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
        return f"{s} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else s
    return str(v)


_COLUMNS = (("run", "run"), ("n", "n"), ("mode", "mode"), ("accuracy", "accuracy [95% CI]"),
            ("f1_weighted", "F1 weighted [95% CI]"), ("f1_macro", "F1 macro"), ("mcc", "MCC"),
            ("invalid_rate", "invalid"), ("ece_before", "ECE"), ("ece_after", "ECE (T-scaled)"),
            ("direction_accuracy", "direction acc"), ("mse_vs_bin", "MSE (bin)"), ("mse_vs_actual", "MSE (actual)"),
            ("rouge1", "ROUGE-1"), ("examples_per_s", "examples/s"), ("latency_ms_p50", "p50 ms"),
            ("train_runtime_s", "train s"))


def _table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    cols = [(k, h) for k, h in _COLUMNS if any(r.get(k) is not None for r in rows)]
    body = [[_fmt(r.get(k), r.get(f"{k}_ci")) for k, _ in cols] for r in rows]
    return [h for _, h in cols], body


def _delta_lines(deltas: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    out = []
    for name, d in deltas.items():
        for metric, v in d.items():
            if isinstance(v, dict) and "delta" in v:
                out.append((name, metric, f"{v['delta']:+.4f} [{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}]",
                            "yes" if v["significant"] else "no"))
    return out


def render_markdown(rows: list[dict[str, Any]], deltas: dict[str, dict[str, Any]], plots: list[str]) -> str:
    """The comparison as a markdown document."""
    head, body = _table(rows)
    lines = ["# Run comparison", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    if deltas:
        ref = next(iter(deltas.values())).get("vs", rows[0]["run"])
        lines += ["", f"## Differences vs `{ref}` (paired bootstrap on shared example ids)", "",
                  "| run | metric | delta [95% CI] | CI excludes 0 |", "|---|---|---|---|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _delta_lines(deltas)]
        lines += [f"\n{name}: {d['n_shared']} shared labelled examples" for name, d in deltas.items()]
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def render_html(rows: list[dict[str, Any]], deltas: dict[str, dict[str, Any]], plots: list[str]) -> str:
    """The comparison as a standalone HTML page (plots referenced by relative path)."""
    head, body = _table(rows)
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>fintune compare</title><style>",
             "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee}</style></head><body>",
             "<h1>Run comparison</h1><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in body]
    parts.append("</table>")
    if deltas:
        parts.append("<h2>Differences vs the first run (paired bootstrap, shared ids)</h2><table><tr><th>run</th>"
                     "<th>metric</th><th>delta [95% CI]</th><th>CI excludes 0</th></tr>")
        parts += [f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td><td>{e(d)}</td></tr>"
                  for a, b, c, d in _delta_lines(deltas)]
        parts.append("</table>")
    parts += [f"<h3>{e(p)}</h3><img src='{e(p)}'>" for p in plots]
    parts.append("</body></html>")
    return "\n".join(parts)


def _plots(runs: list[RunResult], rows: list[dict[str, Any]], out: Path) -> list[str]:
    written = []
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for run in runs:
        for key, tag in (("loss", "train"), ("eval_loss", "eval")):
            pts = [(r.get("step"), r[key]) for r in run.train_log if r.get(key) is not None and r.get("step") is not None]
            if pts:
                curves[f"{run.name} {tag}"] = ([float(s) for s, _ in pts], [float(v) for _, v in pts])
    if curves:
        P.plot_curves(curves, out / "loss_curves.png", "Training and eval loss")
        written.append("loss_curves.png")
    specs = (("f1_weighted", "F1 (weighted)", "f1.png"), ("accuracy", "Accuracy", "accuracy.png"),
             ("direction_accuracy", "Binary (direction) accuracy", "direction_accuracy.png"),
             ("ece_after", "ECE after temperature scaling", "calibration.png"),
             ("mse_vs_bin", "MSE vs gold bin midpoint", "mse.png"), ("rouge1", "ROUGE-1 (mean of sections)",
                                                                     "rouge.png"),
             ("examples_per_s", "Eval speed (examples/s)", "speed.png"),
             ("train_runtime_s", "Training runtime (s)", "runtime.png"))
    for key, title, fname in specs:
        values = {r["run"]: r.get(key) for r in rows}
        if any(v is not None for v in values.values()):
            errs = {r["run"]: r[f"{key}_ci"] for r in rows if r.get(f"{key}_ci")}
            P.plot_bars(values, out / fname, title, key, errs or None)
            written.append(fname)
    return written


def run_compare(runs: Sequence[str | Path], out: str | Path | None, bootstrap_samples: int = 1000,
                seed: int = 0, overwrite: bool = False) -> dict[str, Any]:
    """``fintune compare``: write comparison.md / .html / .json, plots and manifest.json to ``out`` (nothing is
    written when ``out`` is None; a non-empty ``out`` only with ``overwrite``, never a compared run or its eval
    directory); the result has the markdown under ``markdown``.

    When every run was evaluated on forecaster data, comparison.md is the six-metric forecaster table
    (:mod:`fintune.evaluate.compare_forecast`) and comparison.json holds it under ``forecast``.
    """
    if not runs:
        raise FintuneError("compare: give at least one run directory")
    loaded = [load_run(r) for r in runs]
    eval_dirs = [_eval_dir(r.path) for r in loaded]  # what compare reads: never replaced, never written into
    if out is not None:
        check_output_dir(out, overwrite, inputs=eval_dirs, runs=runs)
    names = [r.name for r in loaded]
    if len(set(names)) != len(names):  # same basename twice: fall back to the paths given
        for r, given in zip(loaded, runs, strict=True):
            r.name = str(given)
    rows = [summary_row(r) for r in loaded]
    deltas = {r.name: paired_bootstrap(loaded[0], r, bootstrap_samples, seed) for r in loaded[1:]}
    result: dict[str, Any] = {"runs": rows, "deltas": deltas}
    forecast = forecast_comparison(loaded, bootstrap_samples, seed) if all(map(is_forecaster, loaded)) else None
    if forecast is not None:
        result["forecast"] = forecast

    def markdown(plots: list[str]) -> str:
        if forecast is None:
            return render_markdown(rows, deltas, plots)
        return ("# Run comparison: forecasters, six metrics\n\n" + render_forecast_markdown(forecast)
                + ("\n## Plots\n\n" + "\n".join(f"![{p}]({p})" for p in plots) + "\n" if plots else ""))

    if out is None:
        return {**result, "plots": [], "markdown": markdown([])}
    with atomic_output_dir(out, overwrite, inputs=eval_dirs, runs=runs) as staging:
        written = _plots(loaded, rows, staging)
        atomic_write_text(staging / "comparison.md", markdown(written))
        atomic_write_text(staging / "comparison.html", render_html(rows, deltas, written))
        atomic_write_json(staging / "comparison.json", {**result, "plots": written})
        write_manifest(staging, "compare", recipe={"runs": [str(r) for r in runs],
                                                   "bootstrap_samples": bootstrap_samples},
                       seed=seed, data_hashes={})
    return {**result, "plots": written, "markdown": markdown(written)}
