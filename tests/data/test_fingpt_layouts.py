"""The FinGPT-Forecaster Dow30 set loads in every form users have it, under the shipped S1 recipe's split.

Forms: the Hub id (``datasets.load_dataset`` is attempted; offline it is a one-line error), a local snapshot of the
Hub repo (``data/train-*.parquet`` + ``data/test-*.parquet``), a ``save_to_disk`` folder, one JSONL/parquet export
with a ``split`` column, and one file per split. Every form gives the same examples in the same splits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.reference.reference_rows import fingpt_rows

from fintune.cli import main
from fintune.data.fingpt import read_fingpt_rows
from fintune.errors import FintuneError

RECIPE = "qwen2.5-1.5b/forecaster_lora"


def _split_rows() -> dict[str, list[dict]]:
    rows = fingpt_rows(weeks=4)
    # the published split is by time: the last week of each symbol is test
    test = [r for i, r in enumerate(rows) if i % 4 == 3]
    return {"train": [r for r in rows if r not in test], "test": test}


def _write(tmp_path: Path, form: str) -> Path:
    import datasets
    import pandas as pd

    splits = _split_rows()
    if form == "snapshot":  # what `hf download ID --repo-type dataset --local-dir DIR` leaves
        root = tmp_path / "fingpt-forecaster-dow30-202305-202405"
        (root / "data").mkdir(parents=True)
        for name, rows in splits.items():
            pd.DataFrame(rows).to_parquet(root / "data" / f"{name}-00000-of-00001.parquet")
        (root / "README.md").write_text("---\nlicense: mit\n---\n", encoding="utf-8")
        return root
    if form == "save_to_disk":
        root = tmp_path / "saved"
        datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(str(root))
        return root
    tagged = [{**r, "split": name} for name, rows in splits.items() for r in rows]
    if form == "jsonl_split_column":
        path = tmp_path / "dow30.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in tagged), encoding="utf-8")
        return path
    if form == "parquet_split_column":
        path = tmp_path / "dow30.parquet"
        pd.DataFrame(tagged).to_parquet(path)
        return path
    if form == "file_per_split":
        root = tmp_path / "export"
        root.mkdir()
        for name, rows in splits.items():
            (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return root
    raise AssertionError(form)


FORMS = ["snapshot", "save_to_disk", "jsonl_split_column", "parquet_split_column", "file_per_split"]


@pytest.mark.parametrize("form", FORMS)
def test_every_form_loads_under_the_shipped_recipe_split(tmp_path: Path, form: str) -> None:
    path = _write(tmp_path, form)
    out = tmp_path / "data"
    rc = main(["data", RECIPE, "--out", str(out), "--set", f"data.sources.0.path={path}",
               "--set", "data.template=chatml"])
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split_method"] == "predefined"
    splits = _split_rows()
    assert manifest["counts"]["test"] == len(splits["test"])
    # val_size 0.05 carves validation out of train; nothing is lost or moved to test
    assert manifest["counts"]["train"] + manifest["counts"]["validation"] == len(splits["train"])
    import pyarrow.parquet as pq

    test_ids = sorted(pq.read_table(out / "test.parquet").column("id").to_pylist())
    assert test_ids == sorted(f"fingpt-{r['symbol']}-{r['period'][:10]}" for r in splits["test"])


def test_rows_from_every_form_are_identical(tmp_path: Path) -> None:
    def key(rows: list[dict]) -> list[tuple]:
        return sorted((r["_split"], r["symbol"], r["period"], r["prompt"], r["answer"]) for r in rows)

    loaded = {}
    for form in FORMS:
        (tmp_path / form).mkdir()
        loaded[form] = key(read_fingpt_rows(_write(tmp_path / form, form)))
    assert all(rows == loaded["snapshot"] for rows in loaded.values())


def test_bad_split_value_and_hub_id_offline_are_one_line_errors(tmp_path: Path, capsys) -> None:
    path = tmp_path / "dow30.jsonl"
    path.write_text(json.dumps({**fingpt_rows(1)[0], "split": "holdout"}) + "\n", encoding="utf-8")
    with pytest.raises(FintuneError, match=r"dow30.jsonl row 1: field 'split' 'holdout'"):
        read_fingpt_rows(path)
    # the shipped recipe's default path is the Hub id: offline (HF_HUB_OFFLINE=1) the real load_dataset is tried
    rc = main(["data", RECIPE, "--out", str(tmp_path / "hub"), "--set", "data.template=chatml"])
    err = capsys.readouterr().err
    assert rc != 0 and "FinGPT/fingpt-forecaster-dow30-202305-202405: cannot load the Hub dataset" in err
    assert err.strip().count("\n") == 0
