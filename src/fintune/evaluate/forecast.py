"""Forecaster metrics: direction accuracy, MAE / MSE of the % move, ROUGE per section, and naive baselines.

Predictions carry a bin label (``U3``, ``D5+``, ... or ``invalid``) and ``expected_move`` (the bin's FinGPT
midpoint, signed). Errors are measured twice: against the actual % move when prices are known, and against the
gold bin's midpoint (what FinGPT-Forecaster reports). An invalid output is a wrong direction and is left out of
MAE / MSE (its count is shown as the parse rate).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from fintune.prompts.parse import bin_midpoint
from fintune.records import INVALID

SECTIONS = ("positive_developments", "potential_concerns", "analysis")


def _direction(bin_label: str | None) -> str | None:
    if not bin_label or bin_label == INVALID:
        return None
    return "up" if bin_label.startswith("U") else "down"


def _errors(pred: Sequence[float | None], truth: Sequence[float | None]) -> dict[str, Any]:
    import numpy as np

    pairs = [(p, t) for p, t in zip(pred, truth, strict=True) if p is not None and t is not None]
    if not pairs:
        return {"n": 0, "mae": None, "mse": None}
    d = np.array([p - t for p, t in pairs], dtype=np.float64)
    return {"n": len(pairs), "mae": float(np.abs(d).mean()), "mse": float((d ** 2).mean())}


def rouge_by_section(pred_sections: Sequence[dict[str, str | None] | None],
                     ref_sections: Sequence[dict[str, str | None] | None]) -> dict[str, Any]:
    """Mean ROUGE-1/2/L F1 per section over the examples where both prediction and reference have it.

    A prediction that did not parse (``None``) or lacks a section the reference has scores 0 for that section,
    so unparsable outputs cannot flatter the average.
    """
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    out: dict[str, Any] = {}
    for sec in SECTIONS:
        vals: dict[str, list[float]] = {"rouge1": [], "rouge2": [], "rougeL": []}
        for pred, ref in zip(pred_sections, ref_sections, strict=True):
            ref_text = (ref or {}).get(sec)
            if not ref_text:
                continue
            pred_text = (pred or {}).get(sec)
            scores = scorer.score(ref_text, pred_text) if pred_text else None
            for k in vals:
                vals[k].append(scores[k].fmeasure if scores else 0.0)
        n = len(vals["rouge1"])
        out[sec] = {"n": n, **{k: (sum(v) / n if n else None) for k, v in vals.items()}}
    return out


def example_rouge(pred_sections: Sequence[dict[str, str | None] | None],
                  ref_sections: Sequence[dict[str, str | None] | None]) -> list[dict[str, float] | None]:
    """Per example: ROUGE-1/2/L F1 averaged over the written sections its reference has (``None`` when the
    reference has none). Scored like :func:`rouge_by_section`: a missing or unparsed section scores 0."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    out: list[dict[str, float] | None] = []
    for pred, ref in zip(pred_sections, ref_sections, strict=True):
        secs = [s for s in SECTIONS if (ref or {}).get(s)]
        if not secs:
            out.append(None)
            continue
        sums = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
        for sec in secs:
            pred_text = (pred or {}).get(sec)
            if pred_text:
                scores = scorer.score(str((ref or {})[sec]), pred_text)
                for k in sums:
                    sums[k] += scores[k].fmeasure
        out.append({k: v / len(secs) for k, v in sums.items()})
    return out


def thinking_summary(preds: Sequence[Any], unit: str = "tokens") -> dict[str, Any]:
    """How much the model reasoned before answering (``<think>`` blocks, see ``prompts.parse.split_thinking``):
    outputs with a block, and the mean length per output over ALL outputs, in ``unit`` (``tokens`` of the model's
    tokenizer or ``chars``; the blocks' own unit wins when they have one)."""
    blocks = [p.extra["thinking"] for p in preds if isinstance(p.extra.get("thinking"), dict)]
    if blocks:
        unit = "tokens" if any("tokens" in b for b in blocks) else "chars"
    total = sum(int(b.get(unit, 0)) for b in blocks)
    return {"outputs": len(preds), "with_thinking": len(blocks), "unit": unit, "total": total,
            "mean_per_output": total / len(preds) if preds else None}


def forecast_metrics(gold_bins: Sequence[str], pred_bins: Sequence[str],
                     pred_moves: Sequence[float | None], actual_moves: Sequence[float | None] | None = None,
                     pred_sections: Sequence[dict[str, str | None] | None] | None = None,
                     ref_sections: Sequence[dict[str, str | None] | None] | None = None) -> dict[str, Any]:
    """Direction accuracy, bin accuracy, MAE/MSE (vs actual move and vs gold-bin midpoint), parse rate, ROUGE.

    Args:
        gold_bins: gold bin per example.
        pred_bins: predicted bin or ``invalid``.
        pred_moves: predicted signed % move (``None`` when invalid).
        actual_moves: actual signed % move per example when prices are known (``None`` entries allowed).
        pred_sections / ref_sections: parsed sections of the generated and the reference answers.
    """
    n = len(gold_bins)
    valid = [p != INVALID for p in pred_bins]
    hits = [_direction(p) == _direction(g) for p, g in zip(pred_bins, gold_bins, strict=True)]
    out: dict[str, Any] = {
        "n": n,
        "parse_rate": sum(valid) / n if n else 0.0,
        "invalid": n - sum(valid),
        "direction_accuracy": sum(hits) / n if n else None,
        "direction_accuracy_parsed": (sum(h for h, v in zip(hits, valid, strict=True) if v) / sum(valid)
                                      if any(valid) else None),
        "bin_accuracy": sum(p == g for p, g in zip(pred_bins, gold_bins, strict=True)) / n if n else None,
        "vs_bin_midpoint": _errors(pred_moves, [bin_midpoint(g) for g in gold_bins]),
    }
    if actual_moves is not None and any(m is not None for m in actual_moves):
        out["vs_actual_move"] = _errors(pred_moves, actual_moves)
        # the naive reference on the same examples: forecast a 0% move every week
        out["vs_actual_move"]["zero_forecast"] = _errors([None if p is None else 0.0 for p in pred_moves],
                                                         actual_moves)
    else:
        out["vs_actual_move"] = {"n": 0, "mae": None, "mse": None, "note": "no actual moves (prices unknown)"}
    if pred_sections is not None and ref_sections is not None:
        out["rouge"] = rouge_by_section(pred_sections, ref_sections)
    return out


def bootstrap_rate(hits: Sequence[bool], samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Rate of ``hits`` with a percentile bootstrap 95% CI over examples (``ci`` is None when ``samples`` is 0)."""
    import numpy as np

    h = np.asarray(hits, dtype=np.float64)
    if not len(h):
        return {"n": 0, "value": None, "ci": None}
    out: dict[str, Any] = {"n": len(h), "value": float(h.mean()), "ci": None}
    if samples > 0:
        rng = np.random.default_rng(seed)
        means = h[rng.integers(0, len(h), size=(samples, len(h)))].mean(axis=1)
        out["ci"] = [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
    return out


def paired_difference(a: Sequence[bool], b: Sequence[bool], samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Mean of ``a - b`` (two hit lists on the same examples) with a paired bootstrap 95% CI and the share of
    resamples where it is <= 0 (a one-sided bootstrap p-value for "a beats b")."""
    import numpy as np

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if not len(d):
        return {"n": 0, "difference": None, "ci": None, "p_not_better": None}
    out: dict[str, Any] = {"n": len(d), "difference": float(d.mean()), "ci": None, "p_not_better": None}
    if samples > 0:
        rng = np.random.default_rng(seed)
        means = d[rng.integers(0, len(d), size=(samples, len(d)))].mean(axis=1)
        out["ci"] = [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
        out["p_not_better"] = float((means <= 0).mean())
    return out


def direction_intervals(gold_bins: Sequence[str], pred_bins: Sequence[str],
                        previous_moves: Sequence[float | None] | None = None,
                        p_up: Sequence[float | None] | None = None, samples: int = 1000,
                        seed: int = 0) -> dict[str, Any]:
    """Bootstrap CIs of direction accuracy for the model and the naive baselines, and the model's paired
    differences against each (momentum only on the examples that have a previous move).

    ``p_up`` (score mode: the summed probability of the up bins) adds the accuracy of predicting up when
    ``p_up >= 0.5``, a second reading of the same scores.
    """
    gold_dir = [_direction(g) for g in gold_bins]
    model = [_direction(p) == d for p, d in zip(pred_bins, gold_dir, strict=True)]
    up = [d == "up" for d in gold_dir]
    out: dict[str, Any] = {"model": bootstrap_rate(model, samples, seed),
                           "always_up": bootstrap_rate(up, samples, seed),
                           "model_minus_always_up": paired_difference(model, up, samples, seed)}
    if previous_moves is not None:
        keep = [i for i, m in enumerate(previous_moves) if m is not None]
        mom = [("up" if previous_moves[i] >= 0 else "down") == gold_dir[i] for i in keep]  # type: ignore[operator]
        out["momentum"] = bootstrap_rate(mom, samples, seed)
        out["model_minus_momentum"] = paired_difference([model[i] for i in keep], mom, samples, seed)
    if p_up is not None and all(p is not None for p in p_up):
        by_p = [("up" if float(p) >= 0.5 else "down") == d for p, d in zip(p_up, gold_dir, strict=True)]  # type: ignore[arg-type]
        out["model_p_up"] = bootstrap_rate(by_p, samples, seed)
        out["model_p_up_minus_always_up"] = paired_difference(by_p, up, samples, seed)
    return out


def forecast_baselines(gold_bins: Sequence[str], train_bins: Sequence[str],
                       previous_moves: Sequence[float | None] | None = None) -> dict[str, Any]:
    """Direction accuracy of always-up, last-period momentum and the train split's majority bin.

    ``previous_moves`` is each example's previous-period % move; momentum predicts its sign (examples without
    one are left out and counted).
    """
    n = len(gold_bins)
    gold_dir = [_direction(g) for g in gold_bins]
    out: dict[str, Any] = {"always_up": {"direction_accuracy": sum(d == "up" for d in gold_dir) / n if n else None}}
    if previous_moves is not None and any(m is not None for m in previous_moves):
        pairs = [("up" if m >= 0 else "down", d) for m, d in zip(previous_moves, gold_dir, strict=True)
                 if m is not None]
        out["momentum"] = {"direction_accuracy": sum(p == d for p, d in pairs) / len(pairs), "n": len(pairs)}
    else:
        out["momentum"] = {"direction_accuracy": None, "n": 0, "note": "no previous-period moves in the data"}
    if train_bins:
        major = Counter(train_bins).most_common(1)[0][0]
        out["majority"] = {"bin": major,
                           "bin_accuracy": sum(g == major for g in gold_bins) / n if n else None,
                           "direction_accuracy": sum(d == _direction(major) for d in gold_dir) / n if n else None}
    else:
        out["majority"] = {"bin": None, "note": "no labelled train split"}
    return out
