"""Model cutoff check: did the base model's pretraining data already contain the backtest period?

A language model pretrained on web text written after the backtest window may have read how those weeks turned
out (news, earnings, price moves), so a backtest over a window that ends before the model's pretraining cutoff is
not out of sample for the *base* model, whatever the fine-tuning split. The check compares the cutoff with the
window and always reports one of ``ok`` (window starts after the cutoff), ``warning`` (window starts on or before
it) or ``unknown`` (no cutoff found: pass ``--model-cutoff``).

Where the cutoff comes from, first found wins: ``--model-cutoff DATE``; the ``model_cutoff`` field of the typed
manifest (:func:`fintune.run.read_run`) of the predictions' run directory or its parents (``parent_run`` chain):
``fintune train`` records the recipe's ``model_cutoff`` key there; the base model named there matched against
:data:`KNOWN_CUTOFFS` (lower bounds with their source).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fintune.errors import FintuneError
from fintune.run import MANIFEST, RunManifest, find_run, parse_manifest

KNOWN_CUTOFFS: dict[str, tuple[str, str]] = {
    "smollm2": ("2023-12-31", "lower bound: SmolLM2 is pretrained on FineWeb-Edu, built from CommonCrawl snapshots "
                              "2013 .. 2024 (FineWeb, Penedo et al. 2024; SmolLM2 paper, arXiv 2502.02737)"),
    "llama-3": ("2023-12-01", "Llama 3.1 / 3.2 model cards: 'pretraining data has a cutoff of December 2023' "
                              "(also the base of DeepSeek-R1-Distill-Llama-8B)"),
    "deepseek-r1-distill-llama": ("2023-12-01", "distilled from Llama-3.1-8B (cutoff December 2023)"),
    "pythia": ("2020-01-01", "Pythia is trained on the Pile (Gao et al. 2020), assembled during 2020"),
}
"""Lowercase substring of a model name -> (a date the pretraining data certainly reaches, source)."""


def _parse_date(value: str, where: str) -> str:
    import pandas as pd

    try:
        return str(pd.Timestamp(str(value)).date())
    except (ValueError, TypeError):
        raise FintuneError(f"{where}: model cutoff {value!r} is not a date", "use YYYY-MM-DD") from None


def _manifest_chain(start: Path, max_hops: int = 5) -> list[tuple[Path, RunManifest]]:
    """The typed manifests of ``start`` and its ``parent_run`` chain (:func:`fintune.run.find_run`: another
    tool's ``manifest.json`` next to the predictions ends the chain; a broken fintune one is a one-line error)."""
    out: list[tuple[Path, RunManifest]] = []
    seen: set[Path] = set()
    cur = start.resolve()
    for _ in range(max_hops):
        manifest = None if cur in seen else find_run(cur)
        if manifest is None:
            break
        seen.add(cur)
        out.append((cur / MANIFEST, manifest))
        if not manifest.parent_run:
            break
        cur = Path(manifest.parent_run).resolve()
    return out


def _model_names(manifest: RunManifest) -> list[str]:
    """Names of the base model a manifest records, the most specific first (an eval's ``model`` may be a run)."""
    model = getattr(manifest, "model", None)
    recipe = manifest.recipe or {}
    names = [manifest.base_model, recipe.get("model_name_or_path"), model if isinstance(model, str) else None]
    return [str(n) for n in names if n]


def _predictions_chain(predictions: Path) -> list[tuple[Path, RunManifest]]:
    """The manifest chain of a predictions file: its own ``<file>.manifest.json`` (what ``analyze --file`` writes
    beside its output) and that run's parents, else the manifest of the folder it sits in and its parents."""
    own = predictions.with_name(predictions.name + ".manifest.json")
    if own.is_file():
        try:
            raw = json.loads(own.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = None
        if isinstance(raw, dict) and "stage" in raw:
            manifest = parse_manifest(raw, str(own))
            parent = _manifest_chain(Path(manifest.parent_run)) if manifest.parent_run else []
            return [(own, manifest), *parent]
    return _manifest_chain(predictions.resolve().parent)


def resolve_cutoff(predictions: str | Path, flag: str | None = None) -> dict[str, Any]:
    """``{"cutoff": ISO date or None, "source": where it came from, "model": base model name or None}``.

    First found wins: ``flag`` (``--model-cutoff``); the ``model_cutoff`` field of the typed manifest of the
    predictions' directory or of a run up its ``parent_run`` chain (a recipe's ``model_cutoff`` key, recorded by
    ``fintune train``); the base model matched against :data:`KNOWN_CUTOFFS`.
    """
    if flag:
        return {"cutoff": _parse_date(flag, "--model-cutoff"), "source": "--model-cutoff", "model": None}
    names: list[str] = []
    for path, manifest in _predictions_chain(Path(predictions)):
        names += _model_names(manifest)
        if manifest.model_cutoff:
            return {"cutoff": manifest.model_cutoff, "source": f"{path} (model_cutoff)",
                    "model": names[0] if names else None}
    model = names[0] if names else None
    for name in names:  # the first name the table knows (a run path names no model)
        for key, (date, source) in KNOWN_CUTOFFS.items():
            if key in name.lower().replace("-", "").replace("_", ""):
                return {"cutoff": date, "source": source, "model": name}
    return {"cutoff": None, "source": None, "model": model}


def cutoff_check(cutoff: dict[str, Any], start: str | None, end: str | None) -> dict[str, Any]:
    """Compare the cutoff with the window ``[start, end]``: status ``ok`` / ``warning`` / ``unknown`` + message."""
    c = cutoff.get("cutoff")
    if not c:
        status, msg = "unknown", ("base model pretraining cutoff unknown: the model may have read the backtest "
                                  "period; pass --model-cutoff DATE")
    elif start is not None and start > c:
        status, msg = "ok", f"backtest window starts {start}, after the model cutoff {c}"
    else:
        status, msg = "warning", (f"backtest window {start} .. {end} precedes the base model's pretraining cutoff "
                                  f"{c}: the model may have read about this period (not out of sample)")
    return {**cutoff, "window_start": start, "window_end": end, "status": status, "message": msg}
