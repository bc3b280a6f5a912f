"""The report's first section: a newcomer's four questions answered from the runs, in plain words.

1. Did fine-tuning help? (vs the zero-shot base model and vs TF-IDF, paired bootstrap CI of the F1 difference)
2. Is it calibrated? (ECE, and whether temperature scaling was applied and why)
3. Would it have made money? (vs buy-and-hold, the gold-label oracle, the flipped oracle and random signals)
4. What to run next? (the commands that reproduce every number, then the commands for your own data and the
   reference recipes)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fintune.report import sections as S
from fintune.report.runs import Run, eval_label, is_baseline
from fintune.run import DataManifest

NEXT_STEPS = (
    ("your own labelled CSV (text,label)", "fintune recipes cp smollm2-135m/fpb_lora mine.yaml   # edit sources: "
     "[{name: csv, path: my.csv}]\nfintune data mine.yaml --out runs/mine-data\nfintune train mine.yaml\n"
     "fintune eval runs/<run> --data runs/mine-data --out runs/mine-eval"),
    ("your own data through the demo", "fintune demo --data DIR   # DIR laid out like ../shared/data"),
    ("a reference recipe (FPB, TFNS, FiQA on the embedded default)",
     "fintune recipes ls\nfintune train recipes/smollm2-135m/tfns_lora.yaml"),
)


def _paired(first: Run, other: Run, samples: int) -> dict[str, Any] | None:
    from fintune.evaluate.compare import load_run, paired_bootstrap

    if samples <= 0:
        return None
    d = paired_bootstrap(load_run(other.path), load_run(first.path), samples).get("f1_weighted")
    return d if isinstance(d, dict) else None


def _helped(evals: Sequence[Run], samples: int) -> str:
    main = next((r for r in evals if not is_baseline(r)), None)
    if main is None:
        return ""
    f1 = main.metrics.get("f1_weighted")
    parts = [f"The fine-tuned model scores weighted F1 <b>{S.fmt(f1)}</b> on {S.fmt(main.metrics.get('n'))} "
             "held-out examples."]
    for label in ("zero-shot base model", "TF-IDF + logistic regression"):
        other = next((r for r in evals if eval_label(r) == label), None)
        if other is None:
            continue
        d = _paired(main, other, samples)
        if d is None:
            parts.append(f"{S.esc(label)}: {S.fmt(other.metrics.get('f1_weighted'))}.")
            continue
        lo, hi = d["ci95"]
        verdict = ("better" if lo > 0 else "worse" if hi < 0 else "not distinguishable (the interval includes 0)")
        parts.append(f"Versus the {S.esc(label)} ({S.fmt(other.metrics.get('f1_weighted'))}): difference "
                     f"<b>{d['delta']:+.3f}</b> <span class='ci'>[{lo:+.3f}, {hi:+.3f}]</span>, {verdict}.")
    return " ".join(parts)


def _hard_cases(evals: Sequence[Run], synth: Sequence[Run]) -> str:
    """Accuracy on the synthetic set's hard items (tricky wording, mixed news) per model, when the eval scored them."""
    import json

    if not synth or not synth[0].file("examples.jsonl").is_file():
        return ""
    kinds = {}
    for line in synth[0].file("examples.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        scenario = str((row.get("extra") or {}).get("scenario", ""))
        if scenario.startswith("tricky") or scenario == "mixed":
            kinds[row["id"]] = scenario
    parts = []
    for run in evals:
        if eval_label(run) == "majority class" or not run.file("predictions.jsonl").is_file():
            continue
        hits = [json.loads(x) for x in run.file("predictions.jsonl").read_text(encoding="utf-8").splitlines()]
        hard = [p for p in hits if p["id"] in kinds and p.get("gold")]
        if hard:
            acc = sum(p["label"] == p["gold"] for p in hard) / len(hard)
            parts.append(f"{S.esc(eval_label(run))} {100 * acc:.0f}%")
    if not parts:
        return ""
    n = sum(1 for p in hits if p["id"] in kinds)
    return (f" On the {n} hard test items (negation, hedges, entity swaps, numbers that decide the label, mixed "
            f"news) the share right is: {', '.join(parts)}.")


def _calibrated(evals: Sequence[Run]) -> str:
    main = next((r for r in evals if not is_baseline(r)), None)
    cal = (main.metrics.get("calibration") or {}) if main else {}
    if not cal.get("before"):
        return ""
    ece = cal["ece_after"] if cal.get("fitted_on") else cal["ece_before"]
    note = str(cal.get("note") or "").rstrip(".")
    quality = "well calibrated" if ece < 0.05 else "roughly calibrated" if ece < 0.1 else "not well calibrated"
    return (f"Expected calibration error <b>{S.fmt(ece)}</b> ({quality}; ECE is the average gap between stated "
            f"confidence and accuracy, 15 bins). {S.esc(note[:1].upper() + note[1:])}.")


def _money(backtests: Sequence[Run], refs: Sequence[Run]) -> str:
    if not backtests:
        return "No backtest in these runs (no prices)."
    m = backtests[0].metrics
    strat = m.get("strategy") or {}
    bench = next(iter((m.get("benchmarks") or {}).values()), {})
    out = (f"Trading its signals (long positive, short negative news at the next open, costs included) returned "
           f"<b>{S.fmt(strat.get('total_return'), pct=True)}</b> (Sharpe {S.fmt(strat.get('sharpe'), 2)}) vs "
           f"buy-and-hold {S.fmt(bench.get('total_return'), pct=True)} (Sharpe {S.fmt(bench.get('sharpe'), 2)}).")
    if refs:
        r = refs[0].metrics
        rnd = r["random"]
        out += (f" On the same news and settings a reader who knew every gold label (oracle) would have earned "
                f"Sharpe <b>{S.fmt(r['oracle']['sharpe'], 2)}</b> ({S.fmt(r['oracle']['total_return'], pct=True)}), "
                f"one who read every item backwards (flipped) <b>{S.fmt(r['flipped']['sharpe'], 2)}</b>, and "
                f"random labels a median of <b>{S.fmt(rnd['sharpe_median'], 2)}</b> (90% of {rnd['n']} draws "
                f"between {S.fmt(rnd['sharpe_p05'], 2)} and {S.fmt(rnd['sharpe_p95'], 2)}). A model's Sharpe "
                f"inside the random band is indistinguishable from luck over this short period.")
        sharpe = strat.get("sharpe")
        if isinstance(sharpe, (int, float)):
            where = ("above the random band: more than luck" if sharpe > rnd["sharpe_p95"] else
                     "below the random band: worse than luck" if sharpe < rnd["sharpe_p05"] else
                     "inside the random band: not distinguishable from luck")
            out += f" This model's Sharpe {S.fmt(sharpe, 2)} is <b>{where}</b>."
    return out


def answers_section(runs: Sequence[Run], commands: Sequence[str] | None, samples: int,
                    banner: str | None = None) -> str:
    """The four answers (see the module docstring) as HTML; "" when there is no classification eval."""
    evals = S.ordered_evals([r for r in runs if r.kind == "eval" and r.metrics.get("classification")])
    if not evals:
        return ""
    synth = [r for r in runs if r.kind == "synth"]
    helped = _helped(evals, samples)
    if helped and any(isinstance(r.manifest, DataManifest) and any(s.name == "synth" for s in r.manifest.sources)
                      for r in runs):
        helped += _hard_cases(evals, synth)
    items = [("Did fine-tuning help?", helped), ("Is it calibrated?", _calibrated(evals)),
             ("Would it have made money?", _money([r for r in runs if r.kind == "backtest"],
                                                  [r for r in runs if r.kind == "references"]))]
    html = f"<p class='banner'><b>{S.esc(banner)}</b></p>" if banner else ""
    html += "<dl class='answers'>" + "".join(f"<dt>{S.esc(q)}</dt><dd>{a}</dd>" for q, a in items if a) + "</dl>"
    html += "<h4>What to run next</h4>"
    if commands:
        html += ("<p>Every number on this page comes from these commands (the first reruns everything):</p>"
                 f"<pre>{S.esc(chr(10).join(commands))}</pre>")
    html += "".join(f"<p>{S.esc(what)}:</p><pre>{S.esc(cmd)}</pre>" for what, cmd in NEXT_STEPS)
    return html
