"""The trials ledger: every backtest run in a project directory, one strict-JSON line each, append-only.

The Deflated Sharpe Ratio needs to know how many things were tried and how much their Sharpes varied. Every
``fintune backtest`` appends one :class:`Trial` (strategy settings, predictions file hash, model run, prompt
variant / sweep trial when known -- ``--trial-label KEY=VALUE``, or ``sweep_trial`` read from the manifest of a
sweep trial's validation predictions --, Sharpe) to ``<project>/backtest_trials.jsonl`` (by default the parent of
``--out``, i.e. the ``runs/`` folder). A trial is identified by the hash of what defines it (predictions content,
prices, tickers, strategy settings): re-running the identical backtest does not count twice, its latest line wins.

Appends are atomic: one ``os.write`` of one line on an ``O_APPEND`` descriptor under an exclusive ``flock``, so
concurrent runs never interleave half lines; the ledger is never rewritten. A corrupt line is a one-line error
naming file and line (a ledger the DSR silently under-counts would flatter every result).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fintune.errors import FintuneError
from fintune.run import EvalManifest, find_run

LEDGER_NAME = "backtest_trials.jsonl"


@dataclass
class Trial:
    """One backtest trial as a ledger line.

    Attributes:
        trial_id: sha256 (16 hex) of the defining fields (see module doc).
        created: UTC time of the run.
        out: the run's output directory.
        predictions / predictions_sha256: the predictions file and its content hash.
        model_run: the model run that made the predictions, when its manifest names one.
        settings: the strategy settings (thresholds, holding period, costs, ...).
        sharpe_per_period / sharpe_annual / n_obs: the result.
        extra: free-form labels (prompt variant, sweep trial number) given by the caller.
    """

    trial_id: str
    created: str
    out: str
    predictions: str
    predictions_sha256: str
    model_run: str | None
    settings: dict[str, Any]
    sharpe_per_period: float | None
    sharpe_annual: float | None
    n_obs: int
    extra: dict[str, Any] = field(default_factory=dict)


def trial_id(predictions_sha256: str, prices: str, tickers: list[str], settings: dict[str, Any]) -> str:
    """Stable id of a trial: sha256 over the canonical JSON of what defines it."""
    blob = json.dumps({"p": predictions_sha256, "px": prices, "t": sorted(tickers), "s": settings}, sort_keys=True,
                      allow_nan=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def new_trial(out: str | Path, predictions: str | Path, predictions_sha256: str, prices: str, tickers: list[str],
              settings: dict[str, Any], sharpe_per_period: float, sharpe_annual: float, n_obs: int,
              model_run: str | None = None, extra: dict[str, Any] | None = None) -> Trial:
    """Build a :class:`Trial` (non-finite Sharpes stored as null)."""
    return Trial(trial_id=trial_id(predictions_sha256, prices, tickers, settings),
                 created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), out=str(out),
                 predictions=str(predictions), predictions_sha256=predictions_sha256, model_run=model_run,
                 settings=settings, sharpe_per_period=_finite(sharpe_per_period),
                 sharpe_annual=_finite(sharpe_annual), n_obs=n_obs, extra=extra or {})


def run_trial_labels(predictions: str | Path) -> dict[str, Any]:
    """Labels the predictions' own run directory gives their trial: ``sweep_trial`` for the validation
    predictions ``fintune sweep`` keeps per trial (``TRIAL/validation/``). ``--trial-label`` overrides them."""
    run = find_run(Path(predictions).resolve().parent)
    if isinstance(run, EvalManifest) and run.sweep_trial is not None:
        return {"sweep_trial": run.sweep_trial}
    return {}


def append_trial(ledger: str | Path, trial: Trial) -> Path:
    """Append one line to the ledger (created with its folder when missing), atomically (see module doc)."""
    path = Path(ledger)
    if path.exists() and path.is_dir():
        raise FintuneError(f"{path}: the trials ledger path is a directory", "pass a file path to --ledger")
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(asdict(trial), allow_nan=False, ensure_ascii=False, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(ImportError):
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        if os.write(fd, line) != len(line):
            raise FintuneError(f"{path}: short write to the trials ledger", "check free disk space")
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_trials(ledger: str | Path) -> list[Trial]:
    """All ledger lines, in order (missing ledger: none). A line that is not a Trial is a one-line error."""
    path = Path(ledger)
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue

            def _bad(what: str, n: int = lineno) -> FintuneError:
                return FintuneError(f"{path}:{n}: {what}", "the ledger is append-only; restore the line or move "
                                                           "the file aside to start a new ledger")
            try:
                row = json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
            except ValueError as exc:
                raise _bad(f"invalid JSON ({exc})") from None
            if not isinstance(row, dict):
                raise _bad("not a JSON object")
            try:
                out.append(Trial(**row))
            except TypeError as exc:
                raise _bad(f"not a trial record ({exc})") from None
    return out


def unique_trials(trials: list[Trial]) -> list[Trial]:
    """One trial per ``trial_id`` (the latest line), in first-seen order."""
    latest: dict[str, Trial] = {}
    for t in trials:
        latest[t.trial_id] = t
    return list(latest.values())


def best_of(trials: list[Trial], current_id: str) -> dict[str, Any]:
    """Summary for the report: trial count, this trial's rank by Sharpe (1 = best), the best Sharpe."""
    uniq = unique_trials(trials)
    sharpes = [(t.sharpe_annual if t.sharpe_annual is not None else -math.inf, t.trial_id) for t in uniq]
    ranked = sorted(sharpes, key=lambda x: -x[0])
    rank = next((i + 1 for i, (_, tid) in enumerate(ranked) if tid == current_id), None)
    best = ranked[0][0] if ranked and math.isfinite(ranked[0][0]) else None
    return {"n_trials": len(uniq), "rank": rank, "best_sharpe_annual": best}
