"""``fintune backtest`` end to end: read predictions and prices, backtest, write the output directory.

Output directory (written atomically): ``metrics.json`` (strategy + benchmark metrics, settings, every data issue
counted), ``equity.csv`` (strategy and benchmark growth-of-1 per bar), ``positions.csv`` (weights per bar and
ticker), ``trades.csv``, ``walk_forward.csv`` (walk-forward mode), four PNG plots, a self-contained
``report.html`` (images base64-embedded) and ``manifest.json``.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fintune.artifacts import (
    atomic_output_dir,
    atomic_write_text,
    check_output_dir,
    sha256_file,
    write_manifest,
)
from fintune.backtest import plots
from fintune.backtest.baselines import random_signal_baseline
from fintune.backtest.costs import ImpactModel, impact_report
from fintune.backtest.cutoff import cutoff_check, resolve_cutoff
from fintune.backtest.engine import _aligned, _window, buy_and_hold, prepare_panel, run_backtest
from fintune.backtest.ledger import (
    LEDGER_NAME,
    append_trial,
    best_of,
    new_trial,
    read_trials,
    run_trial_labels,
    unique_trials,
)
from fintune.backtest.metrics import drawdown_series, performance_metrics, sharpe_ratio
from fintune.backtest.statistics import return_moments, sharpe_statistics
from fintune.backtest.strategies import predictions_to_scores
from fintune.backtest.universe import apply_universe, membership_mask, read_universe
from fintune.backtest.walkforward import run_walk_forward, walk_forward_windows
from fintune.errors import FintuneError
from fintune.prices import load_prices, price_issues_summary, price_panel
from fintune.records import read_predictions

PLOTS = ("equity.png", "drawdown.png", "monthly_returns.png", "exposure.png")


@dataclass
class TrustOptions:
    """What every report carries to say whether a result can be believed.

    Attributes:
        random_sims: random-signal simulations (0 = skip).
        ledger: trials ledger path (default ``<parent of out>/backtest_trials.jsonl``).
        trial_labels: extra labels stored with this trial (prompt variant, sweep trial).
        model_cutoff: base model pretraining cutoff (ISO date) overriding the manifest lookup.
        universe_file: point-in-time membership CSV (ticker,from,to).
        impact: apply this square-root impact model to the returns (None: fixed bps only; capacity is still
            reported with the default :class:`ImpactModel`).
        max_invalid_rate: share of unreadable predictions tolerated (counted); above it the run fails.
    """

    random_sims: int = 200
    ledger: str | None = None
    trial_labels: dict[str, Any] = field(default_factory=dict)
    model_cutoff: str | None = None
    universe_file: str | None = None
    impact: ImpactModel | None = None
    max_invalid_rate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for the manifest."""
        return {k: (asdict(v) if isinstance(v, ImpactModel) else v) for k, v in self.__dict__.items()}


def run_backtest_to_dir(predictions: str | Path, prices: str | Path, out: str | Path, cfg: Any,
                        benchmark_ticker: str | None = None, tickers: list[str] | None = None,
                        walk_forward: tuple[int, ...] | None = None, bootstrap_samples: int = 1000,
                        seed: int = 0, trust: TrustOptions | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Backtest a predictions JSONL against prices and write the output directory; returns metrics.json's dict.

    Args:
        predictions: JSONL of :class:`fintune.records.Prediction` (each with ticker and date).
        prices: anything :func:`fintune.prices.load_prices` reads.
        out: output directory (written atomically; a non-empty one only with ``overwrite``, never an input).
        cfg: :class:`fintune.backtest.strategies.StrategyConfig`.
        benchmark_ticker: also compare with buy-and-hold of this ticker.
        tickers: restrict to these tickers (default: the tickers the predictions name).
        walk_forward: ``(train_bars, test_bars[, purge_bars])`` to also report rolling out-of-sample windows.
        bootstrap_samples / seed: for the Sharpe CI (``seed`` also seeds the random-signal baselines).
        trust: the statistics that make a result believable (see :class:`TrustOptions`; defaults when None).
    """
    import pandas as pd

    check_output_dir(out, overwrite, inputs=[predictions, prices])  # before any work
    trust = trust or TrustOptions()
    cutoff = resolve_cutoff(predictions, trust.model_cutoff)  # a bad --model-cutoff fails before any work
    preds = read_predictions(predictions)
    named = sorted({p.ticker.strip().upper() for p in preds if p.ticker})
    universe = [t.upper() for t in tickers] if tickers else named
    if benchmark_ticker and benchmark_ticker.upper() not in universe:
        universe = sorted({*universe, benchmark_ticker.upper()})
    if not universe:
        raise FintuneError(f"{predictions}: no prediction has a ticker", "a backtest needs ticker and date per row")
    px = load_prices(prices, universe)
    panel = price_panel(px)
    traded = [t for t in universe if t in named] or universe
    scores, counts = predictions_to_scores(preds, panel["adj_close"].index, cfg, list(panel["adj_close"].columns),
                                           panel["available"], max_invalid_rate=trust.max_invalid_rate,
                                           source=str(predictions))
    if trust.universe_file:
        mask = membership_mask(read_universe(trust.universe_file), scores.index, list(scores.columns))
        scores, counts["signals_outside_universe"] = apply_universe(scores, mask)
    if counts["used"] == 0:
        raise FintuneError(f"{predictions}: no usable signal ({counts['invalid']} invalid, "
                           f"{counts['outside_price_range']} outside the price range)",
                           "check the prediction dates against the price dates")
    traded_panel = {k: v[traded] for k, v in panel.items()}
    prep = prepare_panel(traded_panel)
    res = run_backtest(scores[traded], prep, cfg)
    gross_sharpe = sharpe_ratio(res.returns)
    impact_model = trust.impact or ImpactModel()
    net, costs = impact_report(res.returns, res.weights, traded_panel, impact_model)
    costs["applied_to_returns"] = trust.impact is not None
    returns = net if trust.impact is not None else res.returns
    benchmarks = {"buy_and_hold_universe": buy_and_hold(panel, res.returns.index, traded)}
    if benchmark_ticker:
        benchmarks[f"buy_and_hold_{benchmark_ticker.upper()}"] = buy_and_hold(
            panel, res.returns.index, [benchmark_ticker.upper()])
    s = _aligned(scores[traded], prep)
    rb = random_signal_baseline(s, prep, cfg, _window(s, prep, cfg, None, None), gross_sharpe,
                                n_sims=trust.random_sims, seed=seed)
    # trials ledger: this run joins the project's trials before the DSR is computed
    ledger_path = Path(trust.ledger) if trust.ledger else Path(out).resolve().parent / LEDGER_NAME
    pred_sha = sha256_file(predictions)
    sr_pp = return_moments(returns)[0]
    trial_settings = {**cfg.to_dict(), "universe_file": trust.universe_file,
                      "impact": asdict(trust.impact) if trust.impact else None}
    trial = new_trial(out, predictions, pred_sha, str(prices), traded, trial_settings, sr_pp, sharpe_ratio(returns),
                      len(returns), model_run=cutoff.get("model"),
                      extra={**run_trial_labels(predictions), **trust.trial_labels})
    trials = unique_trials([*read_trials(ledger_path), trial])
    stats = sharpe_statistics(returns, [t.sharpe_per_period for t in trials])
    metrics = {
        "strategy": performance_metrics(returns, res.turnover, res.weights, res.trades,
                                        bootstrap_samples=bootstrap_samples, seed=seed),
        "statistics": {**stats.to_dict(), **best_of(trials, trial.trial_id), "ledger": str(ledger_path)},
        "random_baseline": rb.to_dict(),
        "model_cutoff": cutoff_check(cutoff, res.counts["start"], res.counts["end"]),
        "costs": costs,
        "benchmarks": {k: performance_metrics(v, bootstrap_samples=bootstrap_samples, seed=seed)
                       for k, v in benchmarks.items()},
        "settings": cfg.to_dict(),
        "period": {"start": res.counts["start"], "end": res.counts["end"], "bars": res.counts["bars"]},
        "tickers": traded,
        "signals": counts,
        "data_issues": {**price_issues_summary(px),
                        "signals_outside_ticker_range": res.counts["signals_outside_ticker_range"],
                        "missing_bars_carried": res.counts["missing_bars_carried"],
                        "benchmark_tickers_excluded": benchmarks["buy_and_hold_universe"].attrs.get("excluded", 0)},
    }
    metrics["random_baseline"]["model_turnover_daily"] = metrics["strategy"].get("turnover_daily")
    wf = None
    if walk_forward:
        purge = walk_forward[2] if len(walk_forward) > 2 else 0
        windows = walk_forward_windows(res.returns.index, walk_forward[0], walk_forward[1],
                                       purge_bars=purge)  # over the backtest period only
        wf = run_walk_forward(preds, traded_panel, cfg, windows, max_invalid_rate=trust.max_invalid_rate)
        metrics["walk_forward"] = {
            "train_bars": walk_forward[0], "test_bars": walk_forward[1], "purge_bars": purge,
            "windows": len(windows),
            "stitched": performance_metrics(wf["returns"], bootstrap_samples=bootstrap_samples, seed=seed)}
    metrics = strict_json_ready(metrics)
    with atomic_output_dir(out, overwrite, inputs=[predictions, prices]) as tmp:
        atomic_write_text(tmp / "metrics.json", strict_json(metrics))
        bench_curves = {k: (1 + v).cumprod() for k, v in benchmarks.items()}
        curves = pd.DataFrame({"strategy": (1 + returns).cumprod(), **bench_curves,
                               **{f"random_{c}": rb.band[c] for c in rb.band.columns}})
        curves.index.name = "date"
        atomic_write_text(tmp / "equity.csv", curves.to_csv(float_format="%.10g"))
        atomic_write_text(tmp / "positions.csv", res.weights.rename_axis("date").to_csv(float_format="%.6g"))
        atomic_write_text(tmp / "trades.csv", res.trades.to_csv(index=False, float_format="%.8g",
                                                                 date_format="%Y-%m-%d"))
        if wf is not None:
            atomic_write_text(tmp / "walk_forward.csv", pd.DataFrame(wf["windows"]).drop(
                columns=["sharpe_ci95"]).to_csv(index=False, float_format="%.6g"))
        plots.plot_equity((1 + returns).cumprod(), bench_curves, tmp / PLOTS[0], band=rb.band)
        plots.plot_drawdown(pd.Series(drawdown_series(returns), index=returns.index), tmp / PLOTS[1])
        plots.plot_monthly_heatmap(returns, tmp / PLOTS[2])
        plots.plot_exposure(res.weights, tmp / PLOTS[3])
        atomic_write_text(tmp / "report.html", render_html(metrics, tmp))
        data_hashes = {str(predictions): pred_sha, **_price_hashes(prices, traded)}
        write_manifest(tmp, "backtest", recipe={"predictions": str(predictions), "prices": str(prices),
                                                "benchmark_ticker": benchmark_ticker, "tickers": traded,
                                                "walk_forward": list(walk_forward) if walk_forward else None,
                                                "bootstrap_samples": bootstrap_samples, **trust.to_dict(),
                                                **cfg.to_dict()},
                       seed=seed, data_hashes=data_hashes)
    append_trial(ledger_path, trial)  # after the output exists: a failed run is not a trial
    return metrics


def strict_json_ready(obj: Any) -> Any:
    """Deep copy with every non-finite float (NaN, inf) replaced by None and numpy scalars made Python numbers."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): strict_json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json_ready(v) for v in obj]
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def strict_json(obj: Any) -> str:
    """Indented strict JSON (``allow_nan=False``: never ``NaN``/``Infinity``), for metrics.json."""
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"


def _price_hashes(prices: str | Path, tickers: list[str]) -> dict[str, str]:
    p = Path(str(prices))
    if p.is_dir():
        return {str(p / f"{t}.csv"): sha256_file(p / f"{t}.csv") for t in tickers if (p / f"{t}.csv").exists()}
    return {str(p): sha256_file(p)} if p.is_file() else {}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return html.escape("n/a" if v is None else str(v))


def trust_lines(metrics: dict[str, Any]) -> list[str]:
    """Plain-text lines the CLI prints and the report shows: raw vs deflated Sharpe with the trial count, random
    baseline percentile, model cutoff check, capacity."""
    st, rb, mc, co = metrics["statistics"], metrics["random_baseline"], metrics["model_cutoff"], metrics["costs"]

    def f(v: Any, spec: str = ".2f") -> str:
        return "n/a" if v is None else format(v, spec)

    lines = [f"Sharpe {f(metrics['strategy'].get('sharpe'))} (best of {st['n_trials']} trials in the ledger: "
             f"best {f(st['best_sharpe_annual'])}, this one ranks {st['rank']}); deflated: DSR {f(st['dsr'], '.3f')} "
             f"(P[true Sharpe > {f(st['sr0_annual'])}, the expected best of {st['n_trials']} skill-less trials]), "
             f"PSR {f(st['psr'], '.3f')} (P[true Sharpe > 0]); minimum track record "
             f"{f(st['min_track_record_years'])} years"]
    if rb["n_sims"]:
        lines.append(f"random signals: the model's Sharpe beats {f(rb['model_sharpe_percentile'], '.1f')}% of "
                     f"{rb['n_sims']} shuffled-signal backtests (their Sharpe 5-95%: {f(rb['sharpe_p05'])} .. "
                     f"{f(rb['sharpe_p95'])})")
    lines.append(f"model cutoff: {mc['status']}: {mc['message']}")
    lines.append(f"capacity: {f(co['capacity_usd'], ',.0f')} USD book before square-root impact costs eat the edge "
                 f"(impact at {co['book_size']:,.0f} USD: {f(co['impact_cost_bps_per_bar'])} bps/bar"
                 f"{', applied' if co['applied_to_returns'] else ', not applied; --slippage-model sqrt'}); "
                 f"{co['unpriced_trades']} trades without volume data")
    return lines


def render_html(metrics: dict[str, Any], plot_dir: Path) -> str:
    """A self-contained HTML report: the trust summary (deflated Sharpe, random baseline, cutoff check,
    capacity), metrics table (strategy vs benchmarks), data issues, embedded PNGs."""
    cols = {"strategy": metrics["strategy"], **metrics["benchmarks"]}
    keys = list(metrics["strategy"])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(f"<tr><td>{html.escape(k)}</td>" + "".join(f"<td>{_fmt(m.get(k))}</td>" for m in cols.values())
                   + "</tr>" for k in keys)
    issues = {**metrics["signals"], **metrics["data_issues"]}
    issue_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in issues.items())
    settings = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>"
                       for k, v in metrics["settings"].items())
    imgs = "".join(
        f'<h3>{html.escape(name[:-4].replace("_", " "))}</h3><img alt="{name}" '
        f'src="data:image/png;base64,{base64.b64encode((plot_dir / name).read_bytes()).decode()}">'
        for name in PLOTS if (plot_dir / name).exists())
    wf = ""
    if "walk_forward" in metrics:
        w = metrics["walk_forward"]
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in w["stitched"].items())
        wf = (f"<h2>Walk-forward</h2><p>{w['windows']} windows of {w['train_bars']} train / {w['test_bars']} test "
              f"bars; stitched out-of-sample returns (per window: walk_forward.csv)</p><table>{rows}</table>")
    period = metrics["period"]
    warn = ' style="color:#b00"' if metrics["model_cutoff"]["status"] != "ok" else ""
    trust = "".join(f"<li{warn if i == 2 else ''}>{html.escape(line)}</li>"
                    for i, line in enumerate(trust_lines(metrics)))
    stats = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in metrics["statistics"].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>fintune backtest</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>Backtest</h1>
<p>{period['start']} to {period['end']} ({period['bars']} bars), {len(metrics['tickers'])} tickers.
Signals trade at the bar after their signal day ({html.escape(metrics['settings']['fill'])}).</p>
<h2>Is it luck?</h2><ul>{trust}</ul>
<p>The equity plot shows the strategy inside the 5-95% band of the same strategy fed shuffled signals.</p>
<h2>Metrics</h2><table><tr><th>metric</th>{head}</tr>{body}</table>
<h2>Sharpe statistics (Bailey &amp; Lopez de Prado)</h2><table>{stats}</table>
<h2>Signals and data issues</h2><table>{issue_rows}</table>
<h2>Settings</h2><table>{settings}</table>
{wf}
<h2>Plots</h2>{imgs}
</body></html>
"""
