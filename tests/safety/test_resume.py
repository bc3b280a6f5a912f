"""Class 8: `analyze --file` resume checks content per row, and inputs are checked before any model loads."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from safety_helpers import one_line_error
from tests.tiny import make_tiny_model_dir

from fintune.analyze import ROW_HASH, AnalyzeItem, analyze_file
from fintune.errors import FintuneError

ROWS = [{"id": f"r{k}", "text": t, "ticker": "ACME"} for k, t in
        enumerate(["profit rose", "sales fell", "guidance unchanged", "dividend raised"])]


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory):
    import torch

    from fintune.analyze import Analyzer

    torch.set_num_threads(1)
    return Analyzer.load(str(make_tiny_model_dir(tmp_path_factory.mktemp("safety-resume"))), dtype="float32")


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _lines(path: Path) -> dict[str, dict]:
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_changed_text_under_the_same_id_is_recomputed(analyzer, tmp_path: Path, capsys) -> None:
    src, out = _write(tmp_path / "in.jsonl", ROWS), tmp_path / "out.jsonl"
    first = analyze_file(analyzer, src, out, progress=False)
    assert first["predicted"] == 4 and first["recomputed_changed"] == 0
    again = analyze_file(analyzer, src, out, progress=False)
    assert again["predicted"] == 0 and again["skipped_already_done"] == 4
    changed = [dict(r) for r in ROWS]
    changed[1]["text"] = "sales collapsed after the profit warning"
    _write(src, changed)
    third = analyze_file(analyzer, src, out, progress=False)
    assert third["recomputed_changed"] == 1 and third["predicted"] == 1 and third["skipped_already_done"] == 3
    assert "1 row(s) changed" in capsys.readouterr().err
    rows = _lines(out)
    assert len(rows) == 4  # replaced, not appended next to the stale one
    fresh = analyzer.predict([AnalyzeItem(text=changed[1]["text"], id="r1", ticker="ACME")])[0]
    assert rows["r1"]["probabilities"] == pytest.approx(fresh.probabilities, abs=1e-6)
    assert rows["r0"] == _lines(out)["r0"]


def test_ticker_or_date_change_counts_as_changed(analyzer, tmp_path: Path) -> None:
    src, out = _write(tmp_path / "in.jsonl", ROWS), tmp_path / "out.jsonl"
    analyze_file(analyzer, src, out, progress=False)
    changed = [dict(r) for r in ROWS]
    changed[0]["ticker"], changed[3]["date"] = "BORB", "2024-01-02"
    _write(src, changed)
    summary = analyze_file(analyzer, src, out, progress=False)
    assert summary["recomputed_changed"] == 2
    rows = _lines(out)
    assert rows["r0"]["ticker"] == "BORB" and rows["r3"]["date"] == "2024-01-02"


def test_rows_written_without_a_hash_are_recomputed(analyzer, tmp_path: Path) -> None:
    src, out = _write(tmp_path / "in.jsonl", ROWS), tmp_path / "out.jsonl"
    analyze_file(analyzer, src, out, progress=False)
    legacy = []
    for row in _lines(out).values():
        row["extra"].pop(ROW_HASH)
        legacy.append(row)
    _write(out, legacy)
    summary = analyze_file(analyzer, src, out, progress=False)
    assert summary["recomputed_changed"] == 4 and all(ROW_HASH in r["extra"] for r in _lines(out).values())


def test_truncated_last_line_and_foreign_ids(analyzer, tmp_path: Path) -> None:
    src, out = _write(tmp_path / "in.jsonl", ROWS), tmp_path / "out.jsonl"
    analyze_file(analyzer, src, out, progress=False)
    text = out.read_text()
    out.write_text(text[: len(text) - 20])  # killed mid-write
    summary = analyze_file(analyzer, src, out, progress=False)
    assert summary["predicted"] == 1 and len(_lines(out)) == 4
    _write(src, ROWS[:2])
    with pytest.raises(FintuneError, match="holds id 'r2' that is not in"):
        analyze_file(analyzer, src, out, progress=False)


def test_inputs_are_checked_before_the_model_loads(tmp_path: Path, cli) -> None:
    bogus_model = str(tmp_path / "no-such-model")  # loading it would fail with a model error instead
    t0 = time.perf_counter()
    line = one_line_error(cli("analyze", "--file", str(tmp_path / "missing.jsonl"), "--out",
                              str(tmp_path / "o.jsonl"), "--model", bogus_model))
    assert "missing.jsonl: file not found" in line
    bad = _write(tmp_path / "bad.jsonl", [{"text": "ok"}, {"text": ""}])
    line = one_line_error(cli("analyze", "--file", str(bad), "--out", str(tmp_path / "o.jsonl"), "--model",
                              bogus_model))
    assert "bad.jsonl:2: field 'text' is missing or empty" in line
    line = one_line_error(cli("analyze", "hi", "--model", bogus_model, "--calibration", str(tmp_path / "c.json")))
    assert "--calibration" in line and "not found" in line
    line = one_line_error(cli("eval", bogus_model, "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "e")))
    assert "--data" in line and "not found" in line
    assert time.perf_counter() - t0 < 10


def test_eval_validates_a_recipe_data_argument_before_the_model(tmp_path: Path, cli) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nmodel_name_or_path: m\nlora_r: 8\nlora_r: 9\n")
    line = one_line_error(cli("eval", str(tmp_path / "no-such-model"), "--data", str(recipe), "--out",
                              str(tmp_path / "e")))
    assert "r.yaml:4: duplicate key 'lora_r'" in line
