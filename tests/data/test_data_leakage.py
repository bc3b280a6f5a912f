"""Leakage report: planted exact / normalised / near duplicates, drop_leaked, and the candidate search vs brute force."""

from __future__ import annotations

import random
import string
import time

from fintune.data.leakage import (
    drop_leaked,
    jaccard,
    leakage_report,
    near_duplicate_pairs,
    normalize_text,
    shingles,
)
from fintune.records import Example


def _ex(i: str, text: str, label: str = "neutral") -> Example:
    return Example(id=i, text=text, label=label)


def test_normalize_text():
    assert normalize_text("  Nokia's PROFIT rose,  10 % !") == "nokia s profit rose 10"


def test_planted_duplicates_are_reported_and_dropped():
    train = [_ex("t1", "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn ."),
             _ex("t2", "The company will cut 50 jobs in Finland .", "negative"),
             _ex("t3", "Sales in Finland decreased by 10.5 % in January , while sales outside Finland dropped by "
                       "17 % .", "negative"),
             _ex("t4", "Completely unrelated sentence about dividends .")]
    test = [_ex("x1", "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn ."),          # exact
            _ex("x2", "the company will CUT 50 jobs in finland", "positive"),              # normalised
            _ex("x3", "Sales in Finland decreased by 10.5 % in January , while sales outside Finland dropped by "
                      "18 % .", "negative"),                                                 # near
            _ex("x4", "A new sentence nobody has seen before .")]
    report = leakage_report({"train": train, "validation": [], "test": test}, threshold=0.8)
    pair = report["across"]["test_vs_train"]
    assert (pair["exact"], pair["normalized"], pair["near"], pair["total"]) == (1, 1, 1, 3)
    assert pair["conflicting_labels"] == 1 and pair["cross_source"] == 0  # every row from one source
    assert report["leaked_ids"] == {"test": ["x1", "x2", "x3"]}
    near = next(s for s in pair["samples"] if s["kind"] == "near")
    assert near["id"] == "x3" and near["matches"] == "t3" and 0.8 <= near["similarity"] < 1
    kept = drop_leaked({"train": train, "validation": [], "test": test}, report)
    assert [e.id for e in kept["test"]] == ["x4"] and len(kept["train"]) == 4


def test_a_test_text_found_in_another_source_counts_as_cross_source():
    """A multi-source mix: FPB's own repeated sentence across its split is not a cross-set leak; the same text
    arriving through another data set is."""
    train = [Example(id="fpb-1", text="Net sales rose 5 % to EUR 20 mn .", label="positive", source="phrasebank"),
             Example(id="tw-1", text="Shares of Nokia fell 3 % after the report .", label="negative", source="tfns")]
    test = [Example(id="fpb-2", text="Net sales rose 5 % to EUR 20 mn .", label="positive", source="phrasebank"),
            Example(id="fpb-3", text="shares of nokia FELL 3 % after the report", label="negative",
                    source="phrasebank")]
    pair = leakage_report({"train": train, "validation": [], "test": test})["across"]["test_vs_train"]
    assert (pair["total"], pair["cross_source"]) == (2, 1)


def test_within_split_duplicates():
    train = [_ex("a", "Same text ."), _ex("b", "same text", "positive"), _ex("c", "Other .")]
    report = leakage_report({"train": train, "test": [_ex("z", "Fresh .")]})
    assert report["within"]["train"] == {"duplicate_texts": 1, "extra_copies": 1, "conflicting_labels": 1}


def test_prefix_filter_matches_brute_force():
    rng = random.Random(0)
    words = ["profit", "sales", "rose", "fell", "eur", "mn", "quarter", "nokia", "finland", "shares", "net", "q3"]
    base = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) for _ in range(150)]
    queries = [t if rng.random() < 0.5 else t + " " + rng.choice(words) for t in base[:80]]
    queries += [" ".join(rng.choice(words) for _ in range(8)) for _ in range(40)]
    for threshold in (0.6, 0.8, 0.9):
        found = {(i, j) for i, j, _ in near_duplicate_pairs(queries, base, threshold)}
        sets_q = [shingles(normalize_text(t)) for t in queries]
        sets_c = [shingles(normalize_text(t)) for t in base]
        expected_queries = {i for i, q in enumerate(sets_q) if any(jaccard(q, c) >= threshold for c in sets_c)}
        assert {i for i, _ in found} == expected_queries
        for i, j in found:
            best = max(jaccard(sets_q[i], c) for c in sets_c)
            assert jaccard(sets_q[i], sets_c[j]) == best


def test_fast_enough_for_12k_rows():
    rng = random.Random(1)
    vocab = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9))) for _ in range(20000)]
    texts = [" ".join(rng.choice(vocab) for _ in range(15)) for _ in range(12000)]
    splits = {"train": [_ex(f"a{i}", t) for i, t in enumerate(texts[:9000])],
              "validation": [], "test": [_ex(f"b{i}", t) for i, t in enumerate(texts[9000:])]}
    splits["test"][0].text = splits["train"][5].text
    # CPU time, not wall time: the test machine is shared
    start = time.process_time()
    report = leakage_report(splits, 0.9)
    assert time.process_time() - start < 8
    assert report["across"]["test_vs_train"]["exact"] == 1
