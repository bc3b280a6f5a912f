"""Multi-source mixes: per-source caps (``max_examples``) and shares (``weight``), and the realised mix.

Both act on each source's rows before the split, so train, validation and test have the same mix. Sampling is a
seeded random subset kept in the source's own order (chronological sources stay in time order); nothing is ever
repeated. With weights, the mix is the largest one every source can fill: total ``T = min_i n_i * W / w_i`` (``n_i``
rows after the cap, ``W`` the sum of weights) and source ``i`` keeps ``round(T * w_i / W)`` rows.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from fintune.records import Example


def sample_in_order(examples: list[Example], n: int, seed: int) -> list[Example]:
    """A seeded random subset of ``n`` examples in their original order (all of them when ``n >= len``)."""
    if n >= len(examples):
        return list(examples)
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def weighted_sizes(counts: Sequence[int], weights: Sequence[float]) -> list[int]:
    """Rows each source keeps so the mix follows ``weights`` without repeating any row (see the module doc)."""
    total_w = float(sum(weights))
    if not counts or total_w <= 0:
        return list(counts)
    total = min(n * total_w / w for n, w in zip(counts, weights, strict=True))
    return [min(n, round(total * w / total_w)) for n, w in zip(counts, weights, strict=True)]


def apply_mix(per_source: list[list[Example]], caps: Sequence[int | None], weights: Sequence[float | None],
              seed: int) -> tuple[list[list[Example]], list[dict[str, Any]]]:
    """Cap then weight each source's rows; returns the kept rows per source and, per source, what was done."""
    capped = [sample_in_order(ex, cap, seed + k) if cap else list(ex)
              for k, (ex, cap) in enumerate(zip(per_source, caps, strict=True))]
    info = [{"loaded": len(ex), "max_examples": cap, "after_cap": len(c), "weight": w}
            for ex, cap, c, w in zip(per_source, caps, capped, weights, strict=True)]
    if weights and all(w is not None for w in weights):
        sizes = weighted_sizes([len(c) for c in capped], [float(w) for w in weights])  # type: ignore[arg-type]
        capped = [sample_in_order(c, n, seed + 1000 + k) for k, (c, n) in enumerate(zip(capped, sizes, strict=True))]
    for entry, kept in zip(info, capped, strict=True):
        entry["kept"] = len(kept)
    return capped, info


def source_labels(examples: Sequence[Example], sources: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Example id -> the recipe source it came from (``examples`` hold each source's rows as one block, in order;
    ``sources`` are the per-source summaries with their ``examples`` count). A name used twice gets its index."""
    names = [str(s["name"]) for s in sources]
    labels = [n if names.count(n) == 1 else f"{n}[{k}]" for k, n in enumerate(names)]
    out: dict[str, str] = {}
    start = 0
    for label, entry in zip(labels, sources, strict=True):
        for ex in examples[start:start + int(entry["examples"])]:
            out[ex.id] = label
        start += int(entry["examples"])
    return out


def realised_mix(splits: dict[str, list[Example]], labels: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per split: rows and share of each recipe source (``labels``: id -> source, see :func:`source_labels`)."""
    out: dict[str, dict[str, Any]] = {}
    for name, rows in splits.items():
        counts = Counter(labels.get(ex.id, ex.source) for ex in rows)
        n = len(rows)
        out[name] = {src: {"examples": c, "share": round(c / n, 4)} for src, c in sorted(counts.items())}
    return out
