"""``fintune report RUN... --out DIR``: one self-contained HTML page (plain CSS, embedded PNGs, no script, no
external URL) from run directories, written atomically with its manifest."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fintune.artifacts import (
    atomic_output_dir,
    atomic_write_text,
    check_output_dir,
    sha256_file,
    write_manifest,
)
from fintune.errors import FintuneError
from fintune.report import sections as S
from fintune.report.answers import answers_section
from fintune.report.runs import Run, discover_runs, eval_label, is_baseline

CSS = """
*{box-sizing:border-box}
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2330;background:#f4f6f9;
margin:0;line-height:1.45;font-size:14px}
header{background:#17324d;color:#fff;padding:22px 40px 18px}
header h1{margin:0 0 4px;font-size:24px}header p{margin:0;color:#c8d6e5}
nav{background:#fff;border-bottom:1px solid #dde3ea;padding:8px 40px;position:sticky;top:0}
nav a{color:#17324d;margin-right:18px;text-decoration:none;font-weight:600}
main{padding:10px 40px 40px;max-width:1400px}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:6px 22px 18px;margin:18px 0}
h2{color:#17324d;border-bottom:2px solid #e3e9f0;padding-bottom:6px}h3{margin:18px 0 8px}h4{margin:14px 0 6px}
.intro{color:#555}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th{background:#eef2f6;text-align:left;font-weight:600}
td,th{border:1px solid #dde3ea;padding:4px 9px;vertical-align:top}
table.metrics td{text-align:right;white-space:nowrap}table.metrics td:first-child{text-align:left}
table.kv td:first-child{color:#555;white-space:nowrap}
table.examples td:nth-child(2){max-width:560px}
.ci{color:#7a8594;font-size:12px}
.banner{background:#fff4d6;border:1px solid #e0b84c;padding:8px 12px}
#answers pre{white-space:pre-wrap;word-break:break-all}
dl.answers dt{font-weight:bold;margin-top:10px}dl.answers dd{margin:4px 0 0 0}
.cards{display:flex;flex-wrap:wrap;gap:14px;margin:12px 0}
.card{background:#f7f9fc;border:1px solid #dde3ea;border-radius:6px;padding:10px 16px;min-width:190px}
.card .v{font-size:22px;font-weight:700;color:#17324d}.card .k{color:#555;font-size:12px}
.card .s{color:#7a8594;font-size:12px}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
figure{margin:8px 0;display:inline-block}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#666;font-size:12px;text-align:center}
img{max-width:100%}
details{margin:8px 0}summary{cursor:pointer;font-weight:600;color:#17324d}
pre{background:#f7f9fc;border:1px solid #dde3ea;padding:10px;overflow:auto;max-height:420px;font-size:12px}
code{font-size:12px;background:#f0f3f7;padding:1px 4px;border-radius:3px}
.pb{display:flex;align-items:center;gap:6px;font-size:12px;white-space:nowrap}
.pl{width:62px;color:#555}.pv{width:32px;text-align:right;color:#555}
.pbar{display:inline-block;width:110px;height:9px;background:#e8edf3;border-radius:2px}
.pbar span{display:block;height:9px;background:#9fb3c8;border-radius:2px}
.pb.top .pl,.pb.top .pv{color:#17324d;font-weight:700}.pb.top .pbar span{background:#2f6db0}
footer{color:#7a8594;font-size:12px;padding:0 40px 30px}
"""

_NAV = (("answers", "Answers"), ("overview", "Overview"), ("dataset", "Dataset"), ("training", "Training"), ("metrics", "Metrics"),
        ("diagnostics", "Confusion & calibration"), ("examples", "Examples"), ("analyze", "New headlines"),
        ("backtest", "Backtest"), ("manifests", "Manifests"))


def _card(value: str, key: str, sub: str = "") -> str:
    return (f"<div class='card'><div class='v'>{value}</div><div class='k'>{S.esc(key)}</div>"
            f"<div class='s'>{sub}</div></div>")


def overview_cards(runs: Sequence[Run]) -> str:
    """Headline numbers: the fine-tuned model's scores, the best baseline, calibration and the backtest."""
    evals = S.ordered_evals([r for r in runs if r.kind == "eval" and r.metrics.get("classification")])
    cards = []
    main = next((r for r in evals if not is_baseline(r)), None)
    if main is not None:
        m = main.metrics
        ci = (m.get("classification") or {}).get("ci95") or {}
        f1ci = ci.get("f1_weighted")
        cards.append(_card(S.fmt(m.get("f1_weighted")), f"weighted F1, {eval_label(main)}",
                           f"95% CI [{f1ci[0]:.3f}, {f1ci[1]:.3f}], n={m.get('n')}" if f1ci else f"n={m.get('n')}"))
        cards.append(_card(S.fmt(m.get("accuracy")), "accuracy"))
        cal = m.get("calibration") or {}
        if cal.get("fitted_on"):
            cards.append(_card(S.fmt(cal.get("ece_after")), "ECE after temperature scaling",
                               f"before {S.fmt(cal.get('ece_before'))}, T={S.fmt(cal.get('temperature'), 2)}"))
    baselines = [r for r in evals if is_baseline(r)]
    if baselines:
        best = max(baselines, key=lambda r: r.metrics.get("f1_weighted") or 0.0)
        cards.append(_card(S.fmt(best.metrics.get("f1_weighted")), f"best baseline F1: {eval_label(best)}"))
    for run in (r for r in runs if r.kind == "backtest"):
        strat = run.metrics.get("strategy") or {}
        bench = next(iter((run.metrics.get("benchmarks") or {}).values()), {})
        cards.append(_card(S.fmt(strat.get("total_return"), pct=True), f"backtest total return ({run.name})",
                           f"Sharpe {S.fmt(strat.get('sharpe'), 2)}; buy-and-hold "
                           f"{S.fmt(bench.get('total_return'), pct=True)}"))
    inventory = S.table(["kind", "run", "path"], [[S.esc(r.kind), f"<code>{S.esc(r.name)}</code>",
                                                   f"<code>{S.esc(str(r.path))}</code>"] for r in runs])
    return f"<div class='cards'>{''.join(cards)}</div><h4>Runs in this report</h4>{inventory}"


def render_report(runs: Sequence[Run], title: str = "fintune report", bootstrap_samples: int = 1000,
                  commands: Sequence[str] | None = None, banner: str | None = None) -> str:
    """The whole HTML page for already discovered runs (``commands``: how to reproduce it; ``banner``: a notice
    shown first, e.g. that the data is synthetic)."""
    by = {kind: [r for r in runs if r.kind == kind] for kind in ("synth", "data", "train", "eval", "analyze",
                                                                   "backtest")}
    body = {
        "answers": answers_section(runs, commands, bootstrap_samples, banner),
        "overview": overview_cards(runs),
        "dataset": S.dataset_section(by["data"], by["synth"]),
        "training": S.training_section(by["train"]),
        "metrics": S.metrics_section(by["eval"], bootstrap_samples),
        "diagnostics": S.diagnostics_section(by["eval"]),
        "examples": S.examples_section(by["eval"]),
        "analyze": S.analyze_section(by["analyze"]),
        "backtest": S.backtest_section(by["backtest"]),
        "manifests": S.manifests_section(runs),
    }
    intros = {
        "metrics": "Held-out test split. Intervals are 95% percentile bootstrap over examples; ECE uses 15 bins; "
                   "the temperature T is fitted on the validation split only.",
        "examples": "Texts are read back from the prepared dataset the eval names.",
        "backtest": "Signals trade at the bar after their signal day (no look-ahead); benchmarks are buy-and-hold.",
    }
    present = [(a, t) for a, t in _NAV if body[a]]
    nav = "".join(f"<a href='#{a}'>{S.esc(t)}</a>" for a, t in present)
    content = "".join(S.section(a, t, body[a], intros.get(a, "")) for a, t in present)
    created = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{S.esc(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head>"
            f"<body><header><h1>{S.esc(title)}</h1><p>{len(runs)} run(s), generated {S.esc(created)}</p></header>"
            f"<nav>{nav}</nav><main>{content}</main><footer>fintune report - self-contained page: plots embedded, "
            f"no scripts, no external resources.</footer></body></html>\n")


def build_report(paths: Sequence[str | Path], out: str | Path, title: str = "fintune report",
                 bootstrap_samples: int = 1000, commands: Sequence[str] | None = None,
                 banner: str | None = None, overwrite: bool = False) -> Path:
    """``fintune report``: discover runs under ``paths`` and write ``out/report.html`` and ``out/manifest.json``.

    Args:
        paths: run directories (or directories holding runs, such as ``runs/demo``).
        out: output directory, replaced atomically.
        title: page title.
        bootstrap_samples: resamples for the paired differences between models (0 = skip them).
        commands: the commands that reproduce the runs (shown in the first section).
        banner: a notice shown at the top (the demo says so when its data is synthetic).

    Returns:
        The path of ``report.html``.
    """
    check_output_dir(out, overwrite, runs=paths)
    runs = discover_runs(list(paths))
    out = Path(out)
    inside = [r.name for r in runs if out.resolve() == r.path.resolve()]
    if inside:
        raise FintuneError(f"--out {out} is one of the runs being reported ({inside[0]})", "choose another --out")
    page = render_report(runs, title, bootstrap_samples, commands, banner)
    hashes: dict[str, Any] = {}
    for run in runs:
        for name in ("manifest.json", "metrics.json", "predictions.jsonl", "metrics.jsonl"):
            if run.file(name).is_file():
                hashes[str(run.file(name))] = sha256_file(run.file(name))
    with atomic_output_dir(out, overwrite, runs=paths) as staging:
        atomic_write_text(staging / "report.html", page)
        write_manifest(staging, "report", recipe={"runs": [str(p) for p in paths], "title": title,
                                                  "bootstrap_samples": bootstrap_samples},
                       data_hashes=hashes, runs=[{"kind": r.kind, "name": r.name, "path": str(r.path)} for r in runs])
    return out / "report.html"
