"""Split methods: the FinGPT FPB split, stratified/random, chronological (per ticker), predefined, determinism."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fintune.data.phrasebank import load_phrasebank
from fintune.data.splits import split_examples
from fintune.errors import FintuneError
from fintune.recipe import SplitConfig
from fintune.records import Example


def _examples(n: int = 200, dated: bool = False) -> list[Example]:
    labels = ["negative", "neutral", "positive", "neutral"]
    return [Example(id=f"e{i}", text=f"text {i}", label=labels[i % 4],
                    date=f"2020-{1 + i % 12:02d}-{1 + i % 28:02d}" if dated else None,
                    ticker=["AAA", "BBB"][i % 2] if dated else None) for i in range(n)]


def _ids(split: dict[str, list[Example]]) -> dict[str, list[str]]:
    return {k: [e.id for e in v] for k, v in split.items()}


@pytest.mark.shared
def test_fingpt_split_reproduces_finlora_fpb_test(shared_data):
    """3634/1212, and the test part is FinLoRA's fpb_test.jsonl: same sentences, same order, same labels."""
    examples = load_phrasebank(shared_data / "financial_phrasebank", "50")
    split = split_examples(examples, SplitConfig(method="fingpt", test_size=0.25, seed=42))
    assert (len(split["train"]), len(split["validation"]), len(split["test"])) == (3634, 0, 1212)
    rows = [json.loads(line) for line in
            (shared_data / "finlora_instruction_test_sets" / "fpb_test.jsonl").open(encoding="utf-8")]
    texts = [r["context"].split("Input: ", 1)[1].rsplit("\nAnswer: ", 1)[0] for r in rows]
    assert texts == [e.text for e in split["test"]]
    assert [r["target"] for r in rows] == [e.label for e in split["test"]]
    assert Counter(e.label for e in split["test"]) == {"neutral": 729, "positive": 338, "negative": 145}


def test_stratified_split_counts_proportions_and_determinism():
    examples = _examples(400)
    cfg = SplitConfig(method="stratified", test_size=0.25, val_size=0.2, seed=7)
    a, b = split_examples(examples, cfg), split_examples(examples, cfg)
    assert _ids(a) == _ids(b)
    assert (len(a["train"]), len(a["validation"]), len(a["test"])) == (240, 60, 100)
    assert Counter(e.label for e in a["test"]) == {"neutral": 50, "negative": 25, "positive": 25}
    all_ids = [i for v in _ids(a).values() for i in v]
    assert sorted(all_ids) == sorted(e.id for e in examples)
    other = split_examples(examples, SplitConfig(method="stratified", test_size=0.25, seed=8))
    assert _ids(other)["test"] != _ids(a)["test"]


def test_groups_stay_together():
    examples = [Example(id=f"g{i}-{q}", text=f"headline {i}", label=["no", "yes"][(i + q) % 2],
                        extra={"group_id": f"g{i}"}) for i in range(50) for q in range(6)]
    split = split_examples(examples, SplitConfig(method="random", test_size=0.2, seed=1))
    train_groups = {e.extra["group_id"] for e in split["train"]}
    test_groups = {e.extra["group_id"] for e in split["test"]}
    assert not train_groups & test_groups and len(test_groups) == 10


def test_stratified_needs_two_per_class():
    examples = [*_examples(20), Example(id="rare", text="x", label="positive")]
    examples[-1].label = "weird"
    with pytest.raises(FintuneError, match="fewer than 2"):
        split_examples(examples, SplitConfig(method="stratified"))


def test_chronological_no_test_before_train():
    examples = _examples(300, dated=True)
    split = split_examples(examples, SplitConfig(method="chronological", test_size=0.3, val_size=0.2))
    train, val, test = split["train"], split["validation"], split["test"]
    assert train and val and test
    assert max(e.date for e in train) < min(e.date for e in val)
    assert max(e.date for e in val) < min(e.date for e in test)
    cut = split_examples(examples, SplitConfig(method="chronological", cutoff_date="2020-10-01"))
    assert min(e.date for e in cut["test"]) >= "2020-10-01" > max(e.date for e in cut["train"])


def test_chronological_per_ticker():
    examples = [Example(id=f"{t}{d}", text=f"{t} news {d}", date=f"2021-01-{d:02d}", ticker=t)
                for t, days in (("AAA", range(1, 21)), ("BBB", range(10, 31))) for d in days]
    split = split_examples(examples, SplitConfig(method="chronological_per_ticker", test_size=0.25))
    for ticker in ("AAA", "BBB"):
        train = [e.date for e in split["train"] if e.ticker == ticker]
        test = [e.date for e in split["test"] if e.ticker == ticker]
        assert train and test and max(train) < min(test)


def test_chronological_requires_dates():
    with pytest.raises(FintuneError, match="example 'e0' .* has no date"):
        split_examples(_examples(10), SplitConfig(method="chronological"))


def test_predefined_split():
    examples = _examples(10)
    for i, e in enumerate(examples):
        e.extra["split"] = "train" if i < 7 else "test"
    split = split_examples(examples, SplitConfig(method="predefined"))
    assert [len(split[k]) for k in ("train", "validation", "test")] == [7, 0, 3]
    forced = split_examples(examples, SplitConfig(method="predefined"), {"e0": "validation"})
    assert [e.id for e in forced["validation"]] == ["e0"]
    examples[0].extra.pop("split")
    with pytest.raises(FintuneError, match="has no split"):
        split_examples(examples, SplitConfig(method="predefined"))


def test_a_training_only_source_leaves_the_method_split_of_the_others_unchanged():
    """A source with its own `split: train` joins train whole; the fingpt/stratified split of the rest is the
    same as without it (the FPB test set stays FinGPT's whatever the mix)."""
    base = _examples(200)
    extra = [Example(id=f"x{i}", text=f"extra {i}", label="positive") for i in range(30)]
    for method in ("fingpt", "stratified"):
        cfg = SplitConfig(method=method, test_size=0.25, val_size=0.1, seed=3)
        alone = _ids(split_examples(base, cfg))
        mixed = _ids(split_examples(base + extra, cfg, {e.id: "train" for e in extra}))
        assert mixed["test"] == alone["test"] and mixed["validation"] == alone["validation"]
        assert mixed["train"] == alone["train"] + [e.id for e in extra]
    with pytest.raises(FintuneError, match="nothing left to split"):
        split_examples(extra, SplitConfig(method="fingpt"), {e.id: "train" for e in extra})
