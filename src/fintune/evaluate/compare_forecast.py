"""The forecaster comparison of ``fintune compare``: the six metrics the Llama-3.1-8B vs DeepSeek-R1-Distill-Llama-8B
study reported, one row each, runs side by side, each later run's difference from the first with a paired CI.

1. training loss    Trainer's ``train_loss`` (mean over the run) from the run's ``metrics.jsonl``.
2. evaluation loss  the last ``eval_loss`` the Trainer logged (needs ``eval_steps`` in the recipe).
3. evaluation speed ``fintune eval``'s generation speed: examples/s and tokens/s. Tokens are every generated
                    token, a ``<think>`` block included; the thinking length per output is a row of its own.
4. direction accuracy  up/down hit rate (an invalid output is a miss), bootstrap 95% CI.
5. MSE of the % move  predicted move (the bin's FinGPT midpoint) against the real % move when the data has it,
                    else against the gold bin's midpoint (FinGPT-Forecaster's own measure; the table says which);
                    over parsed outputs.
6. ROUGE-1/2/L      of the written sections (positive developments, potential concerns, analysis), per example
                    the mean over the sections its reference has; a missing section scores 0.

Rows 1-3 are one number per run (no per-example values, so no interval). Rows 4-6 have a bootstrap CI per run and
a paired-bootstrap CI of the difference on the example ids both runs share (5: ids both runs parsed).
"""

from __future__ import annotations

from typing import Any

from fintune.evaluate.forecast import _direction, bootstrap_rate, paired_difference
from fintune.prompts.parse import bin_midpoint
from fintune.records import INVALID

ROUGE_KEYS = (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"))


def is_forecaster(run: Any) -> bool:
    """True when a loaded run was evaluated on forecaster data."""
    return run.metrics.get("format") == "forecaster"


def _last(log: list[dict[str, Any]], key: str) -> tuple[float | None, int | None]:
    for row in reversed(log):
        if row.get(key) is not None:
            return float(row[key]), row.get("step")
    return None, None


def _truth(pred: Any) -> float | None:
    if pred.extra.get("actual_move") is not None:
        return float(pred.extra["actual_move"])
    return bin_midpoint(pred.gold) if pred.gold and pred.gold != INVALID else None


def _per_example(run: Any) -> dict[str, dict[str, Any]]:
    """id -> direction hit, squared error (parsed outputs only) and ROUGE scores (when eval stored them)."""
    out: dict[str, dict[str, Any]] = {}
    for p in run.predictions:
        if not p.gold:
            continue
        row: dict[str, Any] = {"hit": float(_direction(p.label) == _direction(p.gold))}
        truth = _truth(p)
        if p.label != INVALID and p.expected_move is not None and truth is not None:
            row["sq_err"] = (float(p.expected_move) - truth) ** 2
        rouge = p.extra.get("rouge")
        if isinstance(rouge, dict):
            row.update({k: float(rouge[k]) for k, _ in ROUGE_KEYS if rouge.get(k) is not None})
        out[p.id] = row
    return out


def _metric_values(per: dict[str, dict[str, Any]], key: str, samples: int, seed: int) -> dict[str, Any]:
    vals = [r[key] for r in per.values() if key in r]
    return bootstrap_rate(vals, samples, seed)


def _paired(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], key: str, samples: int,
            seed: int) -> dict[str, Any]:
    ids = sorted(i for i in set(a) & set(b) if key in a[i] and key in b[i])
    return paired_difference([b[i][key] for i in ids], [a[i][key] for i in ids], samples, seed)


def forecast_comparison(runs: list[Any], samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The six metrics for every run and the paired differences of each later run against the first."""
    per = [_per_example(r) for r in runs]
    actual = all(any(p.extra.get("actual_move") is not None for p in r.predictions) for r in runs)
    table: list[dict[str, Any]] = []
    for run, ex in zip(runs, per, strict=True):
        m = run.metrics
        train_loss, _ = _last(run.train_log, "train_loss")
        if train_loss is None:
            train_loss, _ = _last(run.train_log, "loss")
        eval_loss, eval_step = _last(run.train_log, "eval_loss")
        speed = m.get("speed") or {}
        thinking = m.get("thinking") or {}
        row = {"run": run.name, "n": m.get("n"), "parse_rate": (m.get("forecast") or {}).get("parse_rate"),
               "train_loss": train_loss, "eval_loss": eval_loss, "eval_loss_step": eval_step,
               "examples_per_s": speed.get("examples_per_s"), "tokens_per_s": speed.get("tokens_per_s"),
               "speed_includes_thinking": bool(speed.get("includes_thinking_tokens")),
               "thinking": thinking or None,
               "direction_accuracy": _metric_values(ex, "hit", samples, seed),
               "mse": _metric_values(ex, "sq_err", samples, seed)}
        for key, _ in ROUGE_KEYS:
            row[key] = _metric_values(ex, key, samples, seed)
        table.append(row)
    deltas = {}
    for run, ex in zip(runs[1:], per[1:], strict=True):
        deltas[run.name] = {key: _paired(per[0], ex, key, samples, seed)
                            for key in ("hit", "sq_err", *(k for k, _ in ROUGE_KEYS))}
    return {"runs": table, "deltas": deltas, "vs": runs[0].name,
            "mse_against": "actual % move" if actual else "gold bin midpoint (the real move is known only as a bin)"}


def _num(v: Any, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _with_ci(stat: dict[str, Any]) -> str:
    if not stat or stat.get("value") is None:
        return "- (n=0)"
    ci = stat.get("ci")
    return f"{stat['value']:.4f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{stat['value']:.4f}"


def _delta(d: dict[str, Any] | None) -> str:
    if not d or d.get("difference") is None:
        return "- (no shared ids)"
    ci = d.get("ci")
    return (f"{d['difference']:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else f"{d['difference']:+.4f}") + \
        f" (n={d['n']})"


def _plain_delta(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{b - a:+.4f}"


def _speed(row: dict[str, Any]) -> str:
    if row.get("examples_per_s") is None:
        return "-"
    tok = f", {row['tokens_per_s']:.1f} tok/s" if row.get("tokens_per_s") is not None else ""
    return f"{row['examples_per_s']:.3f} ex/s{tok}"


def _thinking(row: dict[str, Any]) -> str:
    t = row.get("thinking")
    if not t:
        return "-"
    mean = t.get("mean_per_output")
    return f"{_num(mean, 1)} {t.get('unit')}/output ({t.get('with_thinking')}/{t.get('outputs')} with <think>)"


def render_forecast_markdown(result: dict[str, Any]) -> str:
    """The six-metric table (markdown), one column per run and one per later run's difference from the first."""
    rows = result["runs"]
    first = rows[0]
    others = rows[1:]
    head = ["metric", *[f"`{r['run']}`" for r in rows], *[f"`{r['run']}` - `{first['run']}` [95% paired CI]"
                                                          for r in others]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def add(name: str, cells: list[str], deltas: list[str]) -> None:
        lines.append("| " + " | ".join([name, *cells, *deltas]) + " |")

    add("1. training loss", [_num(r["train_loss"]) for r in rows],
        [_plain_delta(first["train_loss"], r["train_loss"]) for r in others])
    add("2. evaluation loss (last logged)",
        [_num(r["eval_loss"]) + (f" (step {r['eval_loss_step']})" if r.get("eval_loss_step") is not None else "")
         for r in rows], [_plain_delta(first["eval_loss"], r["eval_loss"]) for r in others])
    add("3. evaluation speed (generation, thinking tokens counted)", [_speed(r) for r in rows],
        [_plain_delta(first["examples_per_s"], r["examples_per_s"]) + " ex/s" for r in others])
    deltas = [result["deltas"].get(r["run"], {}) for r in others]
    add("4. direction accuracy [95% CI]", [_with_ci(r["direction_accuracy"]) for r in rows],
        [_delta(d.get("hit")) for d in deltas])
    add(f"5. MSE of predicted vs {result['mse_against'].split(' (')[0]} % move [95% CI]",
        [_with_ci(r["mse"]) for r in rows], [_delta(d.get("sq_err")) for d in deltas])
    for key, title in ROUGE_KEYS:
        add(f"6. {title} of the written analysis [95% CI]", [_with_ci(r[key]) for r in rows],
            [_delta(d.get(key)) for d in deltas])
    lines.append("| thinking before the answer | " + " | ".join(_thinking(r) for r in rows)
                 + " |" + " |" * len(others))
    notes = [
        "",
        "Rows 1-2 come from each run's training log (metrics.jsonl), row 3 from `fintune eval` (generate mode; its "
        "token rate counts every generated token, `<think>` reasoning included). Rows 4-6: per-run bootstrap CI; "
        "the difference column pairs the same example ids (row 5: ids both runs parsed).",
        f"MSE is measured against the {result['mse_against']}; invalid outputs are misses in row 4 and are left "
        "out of row 5. Parse rate: " + ", ".join(f"`{r['run']}` {_num(r['parse_rate'], 3)} (n={r['n']})"
                                                 for r in rows) + ".",
    ]
    return "\n".join(lines + notes) + "\n"
