"""Per-source caps and weights of a multi-source mix, and the realised mix in the data manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fintune.data.mix import apply_mix, sample_in_order, weighted_sizes
from fintune.errors import FintuneError
from fintune.recipe import validate_recipe_dict
from fintune.records import Example


def _examples(prefix: str, n: int) -> list[Example]:
    return [Example(id=f"{prefix}{i}", text=f"{prefix} text {i}", label="positive", source=prefix)
            for i in range(n)]


def test_weighted_sizes_fill_the_largest_mix_without_repeating() -> None:
    assert weighted_sizes([100, 10, 1000], [2, 1, 1]) == [20, 10, 10]  # the small source bounds the mix
    assert weighted_sizes([100, 100], [1, 1]) == [100, 100]
    kept = sample_in_order(_examples("a", 50), 10, seed=3)
    assert len(kept) == 10 and [int(e.id[1:]) for e in kept] == sorted(int(e.id[1:]) for e in kept)
    assert kept == sample_in_order(_examples("a", 50), 10, seed=3)  # seeded


def test_caps_then_weights() -> None:
    per = [_examples("a", 40), _examples("b", 30), _examples("c", 500)]
    kept, info = apply_mix(per, [None, None, 100], [2.0, 1.0, 1.0], seed=0)
    assert [len(k) for k in kept] == [40, 20, 20]
    assert info[2] == {"loaded": 500, "max_examples": 100, "after_cap": 100, "weight": 1.0, "kept": 20}
    kept, _ = apply_mix(per, [None, 5, 100], [None, None, None], seed=0)
    assert [len(k) for k in kept] == [40, 5, 100]


def test_weights_are_all_or_none_in_a_recipe() -> None:
    data = {"sources": [{"name": "csv", "path": "a.csv", "weight": 1}, {"name": "csv", "path": "b.csv"}]}
    with pytest.raises(FintuneError, match="sources.1.weight is missing"):
        validate_recipe_dict({"model_name_or_path": "m", "data": data})
    data["sources"][1]["weight"] = 0
    with pytest.raises(FintuneError, match="sources.1.weight"):
        validate_recipe_dict({"model_name_or_path": "m", "data": data})


def test_prepared_manifest_reports_the_realised_mix(tmp_path: Path) -> None:
    from fintune.data.prepare import prepare_data

    paths = []
    for name, n in (("big", 60), ("small", 12)):
        p = tmp_path / f"{name}.csv"
        p.write_text("text,label\n" + "".join(f"{name} news item number {i},{('positive', 'negative')[i % 2]}\n"
                                               for i in range(n)))
        paths.append(p)
    data = {"task": "sentiment", "format": "label", "template": "chatml", "labels": ["negative", "positive"],
            "sources": [{"name": "csv", "path": str(paths[0]), "text_column": "text", "label_column": "label",
                         "max_examples": 30, "weight": 1},
                        {"name": "csv", "path": str(paths[1]), "text_column": "text", "label_column": "label",
                         "weight": 1}],
            "split": {"method": "random", "test_size": 0.25, "seed": 0}}
    recipe = validate_recipe_dict({"model_name_or_path": "m", "data": data})
    out = prepare_data(recipe, tmp_path / "prep")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["examples"] for s in manifest["sources"]] == [12, 12]
    assert manifest["sources"][0]["mix"] == {"loaded": 60, "max_examples": 30, "after_cap": 30, "weight": 1.0,
                                             "kept": 12}
    mix = manifest["mix"]
    total = sum(v["examples"] for split in mix.values() for v in split.values())
    assert total == 24 and set(mix["train"]) == {"csv[0]", "csv[1]"}
    assert sum(v["examples"] for v in mix["train"].values()) == manifest["counts"]["train"]
