"""Leakage between splits: exact, normalised and near-duplicate texts.

* exact: identical text (after stripping outer whitespace);
* normalised: equal after lower-casing and collapsing every run of whitespace/punctuation to one space;
* near: character ``n``-gram (shingle) Jaccard similarity >= ``threshold`` on the normalised texts, computed exactly
  on candidate pairs. Candidates come from prefix filtering (shingles ordered rare-first; two sets with Jaccard
  >= t must share one of the first ``|s| - ceil(t*|s|) + 1`` shingles of each), so no pair above the threshold is
  missed and frequent shingles never make the search quadratic.

Each held-out example is counted once, under its strongest kind (exact > normalised > near).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from fintune.records import Example

PAIRS = (("validation", "train"), ("test", "train"), ("test", "validation"))
"""(held-out split, reference split) pairs that are checked."""

KINDS = ("exact", "normalized", "near")
SHINGLE = 5
MAX_SAMPLES = 20

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalize_text(text: str) -> str:
    """Lower-case; every run of whitespace/punctuation becomes one space; stripped."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def shingles(normalized: str, n: int = SHINGLE) -> frozenset[str]:
    """Character ``n``-grams of a normalised text (the whole text when shorter than ``n``)."""
    if len(normalized) <= n:
        return frozenset([normalized])
    return frozenset(normalized[i:i + n] for i in range(len(normalized) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a & b| / |a | b| (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


class ShingleIndex:
    """Shingle sets of many texts plus the global shingle frequencies that order them for prefix filtering."""

    def __init__(self, texts: Sequence[str], threshold: float, n: int = SHINGLE) -> None:
        self.threshold = threshold
        self.sets = [shingles(normalize_text(t), n) for t in texts]
        freq: Counter[str] = Counter()
        for s in self.sets:
            freq.update(s)
        # One global order, rare shingles first (ties in first-seen order: the sort is stable), as integer ranks:
        # prefixes are then short, selective and cheap to sort.
        rank = {g: r for r, g in enumerate(sorted(freq, key=freq.__getitem__))}
        self.prefixes = [sorted(map(rank.__getitem__, s))[: len(s) - math.ceil(threshold * len(s)) + 1]
                         for s in self.sets]

    def pairs(self, queries: Sequence[int], corpus: Sequence[int]) -> list[tuple[int, int, float]]:
        """``(query, corpus_item, jaccard)`` for the best corpus match >= threshold of each query (positions
        are indices into the texts given to the constructor)."""
        t = self.threshold
        index: dict[int, list[int]] = defaultdict(list)
        for j in corpus:
            for g in self.prefixes[j]:
                index[g].append(j)
        out = []
        for i in queries:
            s = self.sets[i]
            candidates = {j for g in self.prefixes[i] for j in index.get(g, ())}
            best: tuple[int, float] | None = None
            for j in sorted(candidates):
                other = self.sets[j]
                if not (t * len(s) <= len(other) <= len(s) / t):
                    continue
                sim = jaccard(s, other)
                if sim >= t and (best is None or sim > best[1]):
                    best = (j, sim)
            if best is not None:
                out.append((i, best[0], best[1]))
        return out


def near_duplicate_pairs(queries: Sequence[str], corpus: Sequence[str], threshold: float,
                         n: int = SHINGLE) -> list[tuple[int, int, float]]:
    """All ``(query_index, corpus_index, jaccard)`` with shingle Jaccard >= ``threshold``, best match per query.

    Texts are normalised first. Exact via prefix filtering + size filtering + verification (see module doc).
    """
    index = ShingleIndex([*queries, *corpus], threshold, n)
    offset = len(queries)
    return [(i, j - offset, sim)
            for i, j, sim in index.pairs(range(offset), range(offset, offset + len(corpus)))]


def find_leaks(held: Sequence[Example], reference: Sequence[Example], threshold: float,
               index: ShingleIndex | None = None, positions: dict[str, int] | None = None,
               ) -> dict[str, tuple[str, str, float]]:
    """Held-out example id -> (kind, id of the matching reference example, similarity).

    ``index``/``positions`` (example id -> position in the index) reuse shingles computed once for all splits.
    """
    leaks: dict[str, tuple[str, str, float]] = {}
    if not held or not reference:
        return leaks
    exact = {ex.text.strip(): ex.id for ex in reversed(reference)}
    normal = {normalize_text(ex.text): ex.id for ex in reversed(reference)}
    rest = []
    for ex in held:
        if ex.text.strip() in exact:
            leaks[ex.id] = ("exact", exact[ex.text.strip()], 1.0)
        elif normalize_text(ex.text) in normal:
            leaks[ex.id] = ("normalized", normal[normalize_text(ex.text)], 1.0)
        else:
            rest.append(ex)
    if index is None or positions is None:
        index = ShingleIndex([ex.text for ex in (*rest, *reference)], threshold)
        positions = {ex.id: k for k, ex in enumerate((*rest, *reference))}
    by_position = {positions[ex.id]: ex for ex in (*rest, *reference)}
    found = index.pairs([positions[ex.id] for ex in rest], [positions[ex.id] for ex in reference])
    for i, j, sim in found:
        leaks[by_position[i].id] = ("near", by_position[j].id, round(sim, 4))
    return leaks


def within_split_duplicates(examples: Sequence[Example]) -> dict[str, int]:
    """Exact (normalised) duplicate texts inside one split, and how many of them carry conflicting labels.

    Examples of one ``group_id`` (the same headline asked several questions) are not counted as duplicates.
    """
    by_text: dict[str, list[Example]] = defaultdict(list)
    seen_groups: set[tuple[str, Any]] = set()
    for ex in examples:
        key = normalize_text(ex.text)
        group = ex.extra.get("group_id") if isinstance(ex.extra, dict) else None
        if group is not None:
            if (key, group) in seen_groups:
                continue
            seen_groups.add((key, group))
        by_text[key].append(ex)
    dupes = [exs for exs in by_text.values() if len(exs) > 1]
    return {
        "duplicate_texts": len(dupes),
        "extra_copies": sum(len(exs) - 1 for exs in dupes),
        "conflicting_labels": sum(1 for exs in dupes if len({e.label for e in exs}) > 1),
    }


def leakage_report(splits: dict[str, list[Example]], threshold: float = 0.9) -> dict[str, Any]:
    """Count exact / normalised / near-duplicate texts across splits (and duplicates within each split).

    Returns a JSON-ready dict: ``{"threshold", "shingle_size", "within": {split: counts},
    "across": {"test_vs_train": {"exact", "normalized", "near", "total", "conflicting_labels", "cross_source",
    "samples": [...]}, ...},
    "leaked_ids": {split: [ids]}}``; ``leaked_ids`` lists every held-out id that duplicates an earlier split.
    """
    report: dict[str, Any] = {"threshold": threshold, "shingle_size": SHINGLE, "within": {}, "across": {},
                              "leaked_ids": {}}
    for name, exs in splits.items():
        if exs:
            report["within"][name] = within_split_duplicates(exs)
    leaked: dict[str, set[str]] = defaultdict(set)
    everything = [ex for name in splits for ex in splits[name]]
    index = ShingleIndex([ex.text for ex in everything], threshold)
    positions = {ex.id: k for k, ex in enumerate(everything)}
    for held_name, ref_name in PAIRS:
        held, ref = splits.get(held_name) or [], splits.get(ref_name) or []
        if not held or not ref:
            continue
        leaks = find_leaks(held, ref, threshold, index, positions)
        counts = Counter(kind for kind, _, _ in leaks.values())
        label_of = {ex.id: ex.label for ex in (*held, *ref)}
        conflicting = sum(1 for i, (_, other, _) in leaks.items() if label_of[i] != label_of[other])
        # a held-out text found in another data set (a mix's cross-set leak; within one set it is that set's own
        # repeated sentences, e.g. FPB's)
        source_of = {ex.id: ex.source for ex in (*held, *ref)}
        cross_source = sum(1 for i, (_, other, _) in leaks.items() if source_of[i] != source_of[other])
        samples = [{"id": i, "matches": other, "kind": kind, "similarity": sim}
                   for i, (kind, other, sim) in list(leaks.items())[:MAX_SAMPLES]]
        report["across"][f"{held_name}_vs_{ref_name}"] = {
            **{k: counts.get(k, 0) for k in KINDS}, "total": len(leaks), "conflicting_labels": conflicting,
            "cross_source": cross_source, "samples": samples}
        leaked[held_name].update(leaks)
    report["leaked_ids"] = {name: sorted(ids) for name, ids in leaked.items()}
    return report


def drop_leaked(splits: dict[str, list[Example]], report: dict[str, Any]) -> dict[str, list[Example]]:
    """New splits without the held-out examples listed in ``report["leaked_ids"]`` (train is never touched)."""
    out = {}
    for name, exs in splits.items():
        ids = set(report.get("leaked_ids", {}).get(name, ())) if name != "train" else set()
        out[name] = [ex for ex in exs if ex.id not in ids]
    return out
