"""Class 1: no verb deletes or overwrites data the user did not ask to replace, and never one of its inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safety_helpers import one_line_error

from fintune.artifacts import atomic_output_dir, check_output_dir, clean_stale_staging
from fintune.errors import FintuneError

RECIPE = """\
name: outputs
model_name_or_path: none
data:
  task: sentiment
  format: label
  template: chatml
  sources: [{name: jsonl, path: DATA}]
  split: {method: random, test_size: 0.3, val_size: 0.0, seed: 0}
"""


@pytest.fixture
def prepared(tmp_path: Path, cli) -> Path:
    """A real `fintune data` directory from a small JSONL file."""
    rows = [{"text": f"revenue {w} item {i}", "label": lab}
            for i, (w, lab) in enumerate([("rose", "positive"), ("fell", "negative"), ("flat", "neutral")] * 10)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.replace("DATA", str(data)))
    res = cli("data", str(recipe), "--out", str(tmp_path / "prepared"))
    assert res.code == 0, res.err
    return tmp_path / "prepared"


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_eval_refuses_its_own_data_dir_as_out_even_with_overwrite(prepared: Path, cli) -> None:
    before = _snapshot(prepared)
    for extra in ([], ["--overwrite"]):
        line = one_line_error(cli("eval", "--baseline", "majority", "--data", str(prepared), "--out", str(prepared),
                                  *extra))
        assert "is the input" in line and str(prepared) in line
    assert _snapshot(prepared) == before  # the parquet files are intact


def test_eval_out_inside_or_holding_the_data_is_refused(prepared: Path, cli) -> None:
    line = one_line_error(cli("eval", "--baseline", "majority", "--data", str(prepared), "--out",
                              str(prepared / "eval"), "--overwrite"))
    assert "inside the input" in line
    line = one_line_error(cli("eval", "--baseline", "majority", "--data", str(prepared), "--out",
                              str(prepared.parent), "--overwrite"))
    assert "holds the input" in line
    assert (prepared / "train.parquet").is_file()


def test_eval_needs_overwrite_for_a_non_empty_out(prepared: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "ev"
    assert cli("eval", "--baseline", "majority", "--data", str(prepared), "--out", str(out)).code == 0
    (out / "notes.txt").write_text("mine")
    line = one_line_error(cli("eval", "--baseline", "majority", "--data", str(prepared), "--out", str(out)))
    assert "not empty" in line and "--overwrite" in line
    assert (out / "notes.txt").read_text() == "mine"
    assert cli("eval", "--baseline", "majority", "--data", str(prepared), "--out", str(out), "--overwrite").code == 0
    assert not (out / "notes.txt").exists() and (out / "metrics.json").is_file()


def test_compare_refuses_to_replace_a_compared_run(prepared: Path, tmp_path: Path, cli) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for run, base in ((a, "majority"), (b, "tfidf")):
        assert cli("eval", "--baseline", base, "--data", str(prepared), "--out", str(run),
                   "--bootstrap-samples", "0").code == 0
    before = _snapshot(b)
    line = one_line_error(cli("compare", str(a), str(b), "--out", str(b), "--overwrite"))
    assert "is the input" in line
    assert "inside the input" in one_line_error(cli("compare", str(a), str(b), "--out", str(a / "cmp")))
    assert _snapshot(b) == before
    assert cli("compare", str(a), str(b), "--out", str(tmp_path / "cmp"), "--bootstrap-samples", "10").code == 0


def test_data_report_and_synth_refuse_non_empty_out(prepared: Path, tmp_path: Path, cli) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious.txt").write_text("do not delete")
    recipe = tmp_path / "r.yaml"
    assert "not empty" in one_line_error(cli("data", str(recipe), "--out", str(keep)))
    assert "not empty" in one_line_error(cli("synth", "--n", "30", "--out", str(keep)))
    assert "not empty" in one_line_error(cli("report", str(prepared), "--out", str(keep)))
    assert "is the run" in one_line_error(cli("report", str(prepared), "--out", str(prepared), "--overwrite"))
    assert (keep / "precious.txt").read_text() == "do not delete"


def test_data_out_that_is_its_source_file_or_a_file(tmp_path: Path, prepared: Path, cli) -> None:
    recipe = tmp_path / "r.yaml"
    data = tmp_path / "rows.jsonl"
    line = one_line_error(cli("data", str(recipe), "--out", str(data), "--overwrite"))
    assert "not a directory" in line
    line = one_line_error(cli("data", str(recipe), "--out", str(tmp_path), "--overwrite"))
    assert "holds the input" in line
    assert data.is_file() and recipe.is_file()


def test_train_refuses_a_non_empty_run_dir_and_its_data(tmp_path: Path, cli) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "profit rose", "label": "positive"}) + "\n")
    recipe = tmp_path / "t.yaml"
    recipe.write_text(RECIPE.replace("DATA", str(data)))
    run = tmp_path / "run"
    run.mkdir()
    (run / "x.txt").write_text("x")
    line = one_line_error(cli("train", str(recipe), "--out", str(run)))
    assert "not empty" in line and "--resume" in line and "--overwrite" in line
    (run / "manifest.json").write_text("{}")  # a finished run: nothing to resume
    assert "no checkpoint to resume" in one_line_error(cli("train", str(recipe), "--out", str(run), "--resume"))
    assert "holds the input" in one_line_error(cli("train", str(recipe), "--out", str(tmp_path), "--overwrite"))
    assert (run / "x.txt").exists() and data.exists()


def test_stale_staging_of_a_killed_run_is_cleaned(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # a process that made a staging dir and was killed before renaming it
    code = ("import os, sys, tempfile; tempfile.mkdtemp(prefix=f'.out.{os.getpid()}.', suffix='.partial', "
            "dir=sys.argv[1]); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    live = tmp_path / f".out.{os.getpid()}.abc.partial"  # a staging dir of a live process (this one) stays
    live.mkdir()
    other = tmp_path / ".other.1.abc.partial"  # not ours
    other.mkdir()
    stale = [p for p in tmp_path.iterdir() if p.name.endswith(".partial") and p not in (live, other)]
    assert len(stale) == 1
    with atomic_output_dir(out) as staging:
        (staging / "a").write_text("a")
    assert not stale[0].exists() and live.exists() and other.exists()
    assert clean_stale_staging(out) == []


def test_check_output_dir_rules(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "adapter.bin").write_text("w")
    check_output_dir(run / "eval", runs=[run])  # `fintune eval RUN --out RUN/eval` stays allowed
    with pytest.raises(FintuneError, match="is the run"):
        check_output_dir(run, overwrite=True, runs=[run])
    with pytest.raises(FintuneError, match="holds the run"):
        check_output_dir(tmp_path, overwrite=True, runs=[run])
    with pytest.raises(FintuneError, match="inside the input"):
        check_output_dir(run / "x", inputs=[run])
    check_output_dir(tmp_path / "new", inputs=["smollm2-135m", None, "hf:org/name"])  # not local paths
    link = tmp_path / "link"
    link.symlink_to(run)
    with pytest.raises(FintuneError, match="is the input"):
        check_output_dir(link, overwrite=True, inputs=[run])  # a symlink to an input is that input


def test_backtest_out_follows_the_same_rules(tmp_path: Path, cli) -> None:
    assert cli("synth", "--n", "60", "--tickers", "3", "--prices", "--out", str(tmp_path / "s")).code == 0
    rows = [json.loads(x) for x in (tmp_path / "s" / "examples.jsonl").read_text().splitlines()]
    preds = tmp_path / "preds" / "p.jsonl"
    preds.parent.mkdir()
    preds.write_text("".join(json.dumps({"id": r["id"], "label": r["label"], "ticker": r["ticker"],
                                         "date": r["date"]}) + "\n" for r in rows if r.get("ticker")))
    prices = tmp_path / "s" / "prices"
    base = ["backtest", "--predictions", str(preds), "--prices", str(prices), "--bootstrap-samples", "0"]
    assert "is inside the input" in one_line_error(cli(*base, "--out", str(prices / "bt"), "--overwrite"))
    assert "holds the input" in one_line_error(cli(*base, "--out", str(preds.parent), "--overwrite"))
    out = tmp_path / "bt"
    assert cli(*base, "--out", str(out)).code == 0
    assert "not empty" in one_line_error(cli(*base, "--out", str(out)))
    assert cli(*base, "--out", str(out), "--overwrite").code == 0
