"""Find out what each directory given to ``fintune report`` holds.

A directory is a *run* when it has a ``manifest.json``; its kind comes from the manifest's ``stage`` and is checked
against the files that kind must have (an eval without ``metrics.json`` is an error, not a silently empty
section). A directory without a manifest (``runs/demo``) is expanded into the runs below it, two levels deep, so
``fintune report runs/demo`` finds ``data/``, ``train/``, ``eval/finetuned/`` ... on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fintune.errors import FintuneError
from fintune.run import RunManifest, parse_manifest

KINDS = ("synth", "data", "train", "eval", "analyze", "signals", "backtest", "references")
_STAGE_KIND = {"synth": "synth", "data": "data", "train": "train", "pretrain": "train", "eval": "eval",
               "ensemble": "eval", "analyze": "analyze", "signals": "signals", "backtest": "backtest", "references": "references"}
# "signals" (the demo's backtest input, derived from an eval) has no section of its own: it is listed with the
# runs and its manifest is shown, so the backtest's lineage stays visible.
_REQUIRED = {"data": ("train.parquet",), "eval": ("metrics.json", "predictions.jsonl"),
             "backtest": ("metrics.json", "equity.csv"), "analyze": ("predictions.jsonl",),
             "synth": ("examples.jsonl",), "train": (), "signals": ("predictions.jsonl",),
             "references": ("references.json",)}
_SKIP_DIRS = ("checkpoints", "report")


@dataclass
class Run:
    """One recognised run directory."""

    kind: str
    path: Path
    manifest: RunManifest
    name: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def file(self, name: str) -> Path:
        """A file inside the run directory."""
        return self.path / name


def read_json(path: Path) -> Any:
    """Parse a JSON file with a one-line error naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FintuneError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})", "re-create the run") from None
    except UnicodeDecodeError:
        raise FintuneError(f"{path}: not UTF-8 text") from None


def classify(path: Path) -> Run | None:
    """The Run a directory holds, or None when it has no manifest (or a stage the report does not show)."""
    mpath = path / "manifest.json"
    if not mpath.is_file():
        return None
    raw = read_json(mpath)
    if not isinstance(raw, dict):
        raise FintuneError(f"{mpath}: expected a JSON object")
    stage = raw.get("stage")
    kind = _STAGE_KIND.get(str(stage))
    if kind is None:
        return None
    missing = [f for f in _REQUIRED[kind] if not (path / f).is_file()]
    if missing:
        article = "an" if kind[0] in "aeiou" else "a"
        raise FintuneError(f"{path}: {article} {kind} run (manifest stage '{stage}') without {missing}",
                           "the run did not finish: re-run that stage")
    metrics: dict[str, Any] = {}
    if kind in ("eval", "backtest", "references"):
        metrics = read_json(path / ("references.json" if kind == "references" else "metrics.json"))
        if not isinstance(metrics, dict):
            raise FintuneError(f"{path / 'metrics.json'}: expected a JSON object")
    return Run(kind=kind, path=path, manifest=parse_manifest(raw, str(mpath)), metrics=metrics)


def _children(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name not in _SKIP_DIRS)


def discover_runs(paths: list[str | Path]) -> list[Run]:
    """Recognised runs under ``paths`` in the order given (children sorted), each directory once.

    A run's own sub-runs (``RUN/data``, ``RUN/eval``) are included after it. A path that is missing, or under
    which nothing is recognised, is a one-line error.
    """
    found: list[Run] = []
    seen: set[Path] = set()

    def visit(path: Path, depth: int) -> int:
        real = path.resolve()
        if real in seen:
            return 0
        seen.add(real)
        run = classify(path)
        count = 0
        if run is not None:
            found.append(run)
            count += 1
        if depth < 2:
            for child in _children(path):
                count += visit(child, depth + 1)
        return count

    for given in paths:
        path = Path(given)
        if not path.is_dir():
            raise FintuneError(f"{path}: not a directory", "give run directories written by fintune")
        if visit(path, 0) == 0 and path.resolve() not in {r.path.resolve() for r in found}:
            raise FintuneError(f"{path}: no fintune run found (no manifest.json of a data, train, eval, analyze, "
                               "backtest or synth stage here or in its subdirectories)",
                               "give the output directory of a fintune command")
    names: dict[str, int] = {}
    for run in found:
        base = run.path.name if run.path.name not in ("eval", "data") else f"{run.path.parent.name}/{run.path.name}"
        names[base] = names.get(base, 0) + 1
        run.name = base if names[base] == 1 else f"{base} ({names[base]})"
    return found


def eval_label(run: Run) -> str:
    """A short display name for an eval run: the baseline it is, else the directory name."""
    model = str(run.metrics.get("model") or "")
    if model.startswith("baseline:zero-shot"):
        return "zero-shot base model"
    if model.startswith("baseline:"):
        return {"tfidf": "TF-IDF + logistic regression", "majority": "majority class"}.get(
            model.split(":", 1)[1], model)
    return f"fine-tuned ({run.name})"


def is_baseline(run: Run) -> bool:
    """True for baseline evals (majority, TF-IDF, zero-shot)."""
    return str(run.metrics.get("model") or "").startswith("baseline:")
