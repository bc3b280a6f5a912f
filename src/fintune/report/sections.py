"""HTML fragments, one per report section, built from recognised runs (see :mod:`fintune.report.runs`).

Every piece of text that comes from a file is escaped here; images are embedded as base64 ``data:`` URIs, so the
page needs nothing but itself.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fintune.data.prepare import read_prepared
from fintune.records import iter_jsonl, read_predictions
from fintune.report import plots
from fintune.report.runs import Run, eval_label, is_baseline
from fintune.run import AnalyzeManifest, DataManifest, SynthManifest, TrainManifest, read_run

esc = html.escape


def fmt(value: Any, digits: int = 3, pct: bool = False) -> str:
    """A number for a table cell (``-`` for missing, percentages with ``pct``), escaped."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{100 * value:.{max(digits - 2, 1)}f}%" if pct else f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,d}"
    return esc(str(value))


def fmt_ci(value: Any, ci: Sequence[float] | None, digits: int = 3) -> str:
    """``0.812 [0.771, 0.850]`` (interval in a smaller grey span)."""
    if value is None:
        return "-"
    if not ci or len(ci) != 2 or any(c is None for c in ci):
        return fmt(value, digits)
    return f"{fmt(value, digits)} <span class='ci'>[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]</span>"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """An HTML table; ``header`` is escaped here, cells must already be safe HTML."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'>{thead}<tbody>{body}</tbody></table>"


def img_bytes(png: bytes, alt: str) -> str:
    """An ``<img>`` with the PNG embedded as base64."""
    data = base64.b64encode(png).decode("ascii")
    return f"<img alt='{esc(alt)}' src='data:image/png;base64,{data}'>"


def img_file(path: Path, alt: str) -> str:
    """An embedded ``<img>`` of a PNG file, or "" when the file is absent."""
    return img_bytes(path.read_bytes(), alt) if path.is_file() else ""


def figure(inner: str, caption: str) -> str:
    """A captioned figure, or "" when there is no image."""
    return f"<figure>{inner}<figcaption>{esc(caption)}</figcaption></figure>" if inner else ""


def prob_bars(probabilities: dict[str, float], highlight: str | None = None) -> str:
    """Label probabilities as small CSS bars (no script), the predicted label in bold."""
    parts = []
    for label, p in probabilities.items():
        width = max(0.0, min(1.0, float(p))) * 100
        strong = " top" if label == highlight else ""
        parts.append(f"<div class='pb{strong}'><span class='pl'>{esc(label)}</span><span class='pbar'>"
                     f"<span style='width:{width:.1f}%'></span></span><span class='pv'>{float(p):.2f}</span></div>")
    return "".join(parts)


def section(anchor: str, title: str, body: str, intro: str = "") -> str:
    """A report section with an anchor for the table of contents; "" when the body is empty."""
    if not body:
        return ""
    lead = f"<p class='intro'>{esc(intro)}</p>" if intro else ""
    return f"<section id='{esc(anchor)}'><h2>{esc(title)}</h2>{lead}{body}</section>"


# ---------------------------------------------------------------- dataset


def dataset_section(data_runs: Sequence[Run], synth_runs: Sequence[Run]) -> str:
    """Sources, split sizes and label balance, date ranges and the leakage check of each prepared dataset."""
    parts = []
    for run in synth_runs:
        s = run.manifest
        assert isinstance(s, SynthManifest)  # classify() parsed a synth manifest into its type
        prices = s.prices or {}
        rows = [["examples", fmt(s.n)], ["labels", fmt(json.dumps(s.summary.labels))],
                ["hard (mixed-news) cases", fmt(s.summary.hard)],
                ["scenarios", fmt(json.dumps(s.summary.scenarios))],
                ["distinct 3-grams", fmt(s.summary.distinct_3)],
                ["prices", fmt(f"{len(prices.get('tickers') or [])} tickers, {prices.get('first_date')} to "
                               f"{prices.get('last_date')}" if prices else "none")],
                ["note", fmt(s.note)]]
        parts.append(f"<h3>Synthetic source <code>{esc(run.name)}</code></h3>" + table(["", ""], rows, "kv"))
    for run in data_runs:
        m = run.manifest
        assert isinstance(m, DataManifest)
        head = (f"<h3>Prepared dataset <code>{esc(run.name)}</code></h3><p>task <b>{esc(str(m.task))}</b>, "
                f"format <b>{esc(str(m.format))}</b>, template <b>{esc(str(m.template))}</b>, "
                f"split <b>{esc(str(m.split_method))}</b>, labels {esc(', '.join(m.labels))}</p>")
        extra_labels = sorted({k for lc in m.label_counts.values() for k in lc} - set(m.labels))
        cols = m.labels + extra_labels
        rows = []
        for split, n in m.counts.items():
            lc = m.label_counts.get(split) or {}
            dr = m.date_range.get(split) or []
            rows.append([esc(split), fmt(n)] + [fmt(lc.get(c, 0)) for c in cols]
                        + [esc(" to ".join(str(d) for d in dr if d) or "-")])
        splits = table(["split", "examples", *cols, "dates"], rows)
        sources = table(["source", "path", "examples"],
                        [[esc(s.name), f"<code>{esc(s.path or '-')}</code>", fmt(s.examples)] for s in m.sources])
        leak_rows = [[esc(pair), fmt(c.exact), fmt(c.normalized), fmt(c.near)]
                     for pair, c in m.leakage.across.items()]
        leakage = ("<h4>Leakage between splits</h4>" + table(["splits", "exact", "normalized", "near-duplicate"],
                                                              leak_rows)) if leak_rows else ""
        parts.append(head + splits + "<h4>Sources</h4>" + sources + leakage)
    return "".join(parts)


# ---------------------------------------------------------------- training


def read_log(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.jsonl`` training log (a broken line is a one-line error)."""
    return [row for _, row in iter_jsonl(path) if isinstance(row, dict)] if path.is_file() else []


def training_section(train_runs: Sequence[Run]) -> str:
    """Training summary and loss curves of each training run."""
    parts = []
    for run in train_runs:
        m = run.manifest
        assert isinstance(m, TrainManifest)
        recipe, tr = m.recipe or {}, m.training
        log = read_log(run.file("metrics.jsonl"))
        runtime = next((r["train_runtime"] for r in reversed(log) if r.get("train_runtime") is not None), None)
        rows = [["base model", fmt(m.base_model or recipe.get("model_name_or_path"))],
                ["method", fmt(f"{recipe.get('method')} r={recipe.get('lora_r')} alpha={recipe.get('lora_alpha')} "
                               f"targets={recipe.get('target_modules')}")],
                ["trainable parameters", fmt(f"{tr.get('trainable_params', 0):,d} of {tr.get('all_params', 0):,d}")
                 if tr.get("all_params") else "-"],
                ["steps", fmt(tr.get("global_step"))], ["train examples", fmt(tr.get("train_examples"))],
                ["batch x grad. accumulation", fmt(f"{recipe.get('per_device_train_batch_size')} x "
                                                   f"{recipe.get('gradient_accumulation_steps')}")],
                ["learning rate", fmt(recipe.get("learning_rate"), 5)],
                ["max_seq_length / packing", fmt(f"{recipe.get('max_seq_length')} / {recipe.get('packing')}")],
                ["mean train loss", fmt(tr.get("train_loss"))], ["last logged loss", fmt(tr.get("final_logged_loss"))],
                ["bf16", fmt(tr.get("bf16"))], ["runtime", f"{runtime:.1f} s" if runtime is not None else "-"]]
        png = plots.training_curves_png(log, f"{run.name}: loss per step")
        curve = img_bytes(png, "training curves") if png else img_file(run.file("loss_curve.png"), "loss curve")
        parts.append(f"<h3>Run <code>{esc(run.name)}</code></h3><div class='row'><div>"
                     + table(["", ""], rows, "kv") + "</div><div>"
                     + figure(curve, "train loss (and eval loss) per optimizer step") + "</div></div>")
    return "".join(parts)


# ---------------------------------------------------------------- metrics vs baselines


def ordered_evals(eval_runs: Sequence[Run]) -> list[Run]:
    """Fine-tuned models first, then zero-shot, TF-IDF and majority baselines."""
    rank = {"zero-shot base model": 1, "TF-IDF + logistic regression": 2, "majority class": 3}
    return sorted(eval_runs, key=lambda r: (is_baseline(r), rank.get(eval_label(r), 0)))


def metrics_section(eval_runs: Sequence[Run], bootstrap_samples: int = 1000) -> str:
    """One row per evaluated model (95% bootstrap intervals), a bar chart, and paired differences vs the first."""
    from fintune.evaluate.compare import load_run, paired_bootstrap

    runs = [r for r in ordered_evals(eval_runs) if r.metrics.get("classification")]
    if not runs:
        return ""
    rows, names, f1s, cis = [], [], [], []
    for run in runs:
        m = run.metrics
        ci = (m.get("classification") or {}).get("ci95") or {}
        cal = m.get("calibration") or {}
        rows.append([esc(eval_label(run)), fmt(m.get("n")), esc(str(m.get("mode"))),
                     fmt_ci(m.get("accuracy"), ci.get("accuracy")), fmt_ci(m.get("f1_weighted"), ci.get("f1_weighted")),
                     fmt(m.get("f1_macro")), fmt_ci(m.get("mcc"), ci.get("mcc")), fmt(m.get("invalid_rate")),
                     fmt(cal.get("ece_before")), fmt(cal.get("ece_after") if cal.get("fitted_on") else None),
                     fmt(cal.get("temperature") if cal.get("fitted_on") else None)])
        names.append(eval_label(run))
        f1s.append(m.get("f1_weighted"))
        cis.append(ci.get("f1_weighted"))
    out = table(["model", "n", "mode", "accuracy [95% CI]", "F1 weighted [95% CI]", "F1 macro", "MCC [95% CI]",
                 "invalid", "ECE", "ECE (T-scaled)", "T"], rows, "metrics")
    png = plots.metric_bars_png(names, f1s, cis, "weighted F1")
    out += figure(img_bytes(png, "F1 by model") if png else "", "weighted F1 per model with 95% bootstrap interval")
    if len(runs) > 1 and bootstrap_samples > 0:
        first = load_run(runs[0].path)
        delta_rows = []
        for run in runs[1:]:
            # paired_bootstrap gives (second - first): pass the other model first so the row reads "top minus it"
            d = paired_bootstrap(load_run(run.path), first, bootstrap_samples)
            for metric in ("accuracy", "f1_weighted"):
                v = d.get(metric)
                if isinstance(v, dict):
                    delta_rows.append([esc(eval_label(runs[0])), esc(eval_label(run)), esc(metric),
                                       f"{v['delta']:+.3f} <span class='ci'>[{v['ci95'][0]:+.3f}, "
                                       f"{v['ci95'][1]:+.3f}]</span>", "yes" if v["significant"] else "no",
                                       fmt(d.get("n_shared"))])
        if delta_rows:
            out += ("<h4>Paired differences (same examples resampled for both models)</h4>"
                    + table(["model", "minus", "metric", "difference [95% CI]", "CI excludes 0", "shared n"],
                            [[r[0], r[1], r[2], r[3], r[4], r[5]] for r in delta_rows]))
    return out


def diagnostics_section(eval_runs: Sequence[Run]) -> str:
    """Confusion matrix, reliability diagram and accuracy-vs-coverage of each eval (baselines folded away)."""
    parts = []
    for run in ordered_evals(eval_runs):
        imgs = [figure(img_file(run.file("confusion_matrix.png"), "confusion matrix"), "confusion matrix (rows: gold)"),
                figure(img_file(run.file("reliability.png"), "reliability diagram"),
                       "reliability diagram, before and after temperature scaling"),
                figure(img_file(run.file("accuracy_vs_coverage.png"), "accuracy vs coverage"),
                       "accuracy when answering only the most confident share")]
        body = "<div class='row'>" + "".join(i for i in imgs if i) + "</div>"
        if not any(imgs):
            continue
        title = f"{esc(eval_label(run))} <code>{esc(run.name)}</code>"
        parts.append(f"<details><summary>{title}</summary>{body}</details>" if is_baseline(run)
                     else f"<h3>{title}</h3>{body}")
    return "".join(parts)


# ---------------------------------------------------------------- example predictions


def texts_for(run: Run) -> dict[str, str]:
    """id -> text of the examples an eval scored, read back from the prepared dataset it names."""
    data = run.metrics.get("data")
    if not data or not (Path(data) / "manifest.json").is_file():
        return {}

    rows = read_prepared(data).get(str(run.metrics.get("split") or "test")) or []
    return {str(r["id"]): str(r["text"]) for r in rows}


def examples_section(eval_runs: Sequence[Run], k: int = 6) -> str:
    """The most confident right and wrong predictions of each fine-tuned model, with label probabilities."""
    parts = []
    for run in [r for r in ordered_evals(eval_runs) if not is_baseline(r)]:
        preds = [p for p in read_predictions(run.file("predictions.jsonl")) if p.gold]
        if not preds:
            continue
        texts = texts_for(run)
        conf = lambda p: p.confidence if p.confidence is not None else 0.0  # noqa: E731
        right = sorted((p for p in preds if p.label == p.gold), key=conf, reverse=True)[:k]
        wrong = sorted((p for p in preds if p.label != p.gold), key=conf, reverse=True)[:k]
        for title, chosen in (("right, most confident", right), ("wrong, most confident", wrong)):
            rows = [[f"<code>{esc(p.id)}</code>", esc(texts.get(p.id, "(text not found)")), esc(p.gold or "-"),
                     f"<b>{esc(p.label)}</b>", prob_bars(p.probabilities, p.label) if p.probabilities
                     else fmt(p.confidence)] for p in chosen]
            body = table(["id", "text", "gold", "predicted", "probabilities"], rows, "examples") if rows \
                else "<p>none</p>"
            parts.append(f"<h3>{esc(eval_label(run))}: {esc(title)} ({len(chosen)})</h3>{body}")
    return "".join(parts)


# ---------------------------------------------------------------- analyze


def _analyze_inputs(run: Run) -> dict[str, str]:
    from fintune.analyze import read_input_rows

    candidates = [run.path / str((run.manifest.recipe or {}).get("input") or "")]
    for side in run.path.glob("*.manifest.json"):
        candidates += [Path(p) for p in read_run(side).data_sha256]
    for cand in candidates:
        if cand.is_file():
            return {item.id: item.text for item in read_input_rows(cand)}
    return {}


def analyze_section(analyze_runs: Sequence[Run], max_rows: int = 25) -> str:
    """New texts analysed by a run: predicted label, calibrated confidence and probabilities (first rows)."""
    parts = []
    for run in analyze_runs:
        texts = _analyze_inputs(run)
        preds = read_predictions(run.file("predictions.jsonl"))
        rows = [[esc(texts.get(p.id, p.id)), esc(p.ticker or "-"), esc(p.date or "-"), f"<b>{esc(p.label)}</b>",
                 fmt(p.confidence), prob_bars(p.probabilities, p.label) if p.probabilities else "-"]
                for p in preds[:max_rows]]
        m = run.manifest
        assert isinstance(m, AnalyzeManifest)
        model = m.model.get("model") or "-" if isinstance(m.model, dict) else m.model or m.parent_run or "-"
        more = f"<p>first {max_rows} of {len(preds)} rows shown</p>" if len(preds) > max_rows else ""
        parts.append(f"<h3><code>{esc(run.name)}</code> with <code>{esc(str(model))}</code></h3>"
                     + table(["text", "ticker", "date", "label", "confidence", "probabilities"], rows, "examples")
                     + more)
    return "".join(parts)


# ---------------------------------------------------------------- backtest

_BT_KEYS = (("total_return", "total return", True), ("annual_return", "annual return", True),
            ("annual_volatility", "annual volatility", True), ("sharpe", "Sharpe", False),
            ("max_drawdown", "max drawdown", True), ("calmar", "Calmar", False), ("n_trades", "trades", False),
            ("hit_rate", "hit rate", True), ("exposure", "exposure", True), ("turnover_annual", "turnover / yr", False))


def backtest_section(bt_runs: Sequence[Run]) -> str:
    """Strategy against buy-and-hold benchmarks: metrics table, equity and drawdown curves."""
    parts = []
    for run in bt_runs:
        m = run.metrics
        cols = {"strategy": m.get("strategy") or {}, **(m.get("benchmarks") or {})}
        rows = []
        for key, label, pct in _BT_KEYS:
            if not any(key in c for c in cols.values()):
                continue
            cells = []
            for c in cols.values():
                if key == "sharpe" and c.get("sharpe_ci95"):
                    cells.append(fmt_ci(c.get(key), c.get("sharpe_ci95"), 2))
                else:
                    cells.append(fmt(c.get(key), 3, pct=pct))
            rows.append([esc(label), *cells])
        period = m.get("period") or {}
        settings = m.get("settings") or {}
        signals = m.get("signals") or {}
        intro = (f"<p>{esc(str(period.get('start')))} to {esc(str(period.get('end')))} ({fmt(period.get('bars'))} "
                 f"bars), {len(m.get('tickers') or [])} tickers; strategy {esc(str(settings.get('mode')))}, sizing "
                 f"{esc(str(settings.get('sizing')))}, fill {esc(str(settings.get('fill')))}, costs "
                 f"{fmt(settings.get('commission_bps'))}+{fmt(settings.get('slippage_bps'))} bps; signals used "
                 f"{fmt(signals.get('used'))}, invalid {fmt(signals.get('invalid'))}.</p>")
        imgs = [figure(img_file(run.file("equity.png"), "equity curve"), "growth of 1: strategy vs buy-and-hold"),
                figure(img_file(run.file("drawdown.png"), "drawdown"), "strategy drawdown")]
        more = [figure(img_file(run.file("monthly_returns.png"), "monthly returns"), "monthly returns"),
                figure(img_file(run.file("exposure.png"), "exposure"), "exposure")]
        extra = "".join(more)
        parts.append(f"<h3><code>{esc(run.name)}</code></h3>{intro}"
                     + table(["metric", *cols], rows, "metrics") + "".join(imgs)
                     + (f"<details><summary>monthly returns and exposure</summary>{extra}</details>" if extra else ""))
    return "".join(parts)


# ---------------------------------------------------------------- manifests


def manifests_section(runs: Sequence[Run]) -> str:
    """Every run's manifest (resolved recipe, versions, git SHA, data hashes, seed), folded."""
    parts = []
    for run in runs:
        m = run.manifest
        summary = (f"{esc(run.kind)} <code>{esc(run.name)}</code> - created {esc(str(m.created))}, git "
                   f"{esc(str(m.fintune_git_sha))}, seed {esc(str(m.seed))}")
        body = esc(json.dumps(m.model_dump(mode="json", exclude_unset=True), indent=2, ensure_ascii=False))
        parts.append(f"<details><summary>{summary}</summary><p><code>{esc(str(run.path))}</code></p>"
                     f"<pre>{body}</pre></details>")
    return "".join(parts)
