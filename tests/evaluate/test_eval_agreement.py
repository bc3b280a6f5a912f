"""FPB metrics by annotator agreement on a fake PhraseBank release (four nested files) and a real prepared split."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fintune.artifacts import write_manifest
from fintune.data.prepare import read_prepared
from fintune.errors import FintuneError
from fintune.evaluate import EvalData, compute_metrics, run_eval, write_eval_outputs
from fintune.evaluate.agreement import (
    AGREEMENT_BUCKETS,
    agreement_levels,
    eval_by_agreement,
    metrics_by_agreement,
    phrasebank_by_agreement,
)
from fintune.predict.rows import predictions_from_scores
from fintune.records import Prediction, read_predictions
from fintune.run import TaskSpec

LABELS = ("negative", "neutral", "positive")
# sentence -> (label, highest agreement file); "Sales were flat" is in 50Agree twice with conflicting labels
SENTENCES = {
    "Profit rose sharply": ("positive", "all"), "Shares fell 5 percent": ("negative", "all"),
    "The board will meet": ("neutral", "all"), "Orders grew in March": ("positive", "75"),
    "The company cut jobs": ("negative", "75"), "The filing was made": ("neutral", "75"),
    "Margins improved": ("positive", "66"), "Loss widened": ("negative", "66"), "The plan was announced": ("neutral", "66"),
    "Sales were flat": ("neutral", "50"), "Revenue may recover": ("positive", "50"), "Costs could rise": ("negative", "50"),
}
BUCKET = {"all": "100%", "75": "75-99%", "66": "66-74%", "50": "50-65%"}


def _release(tmp_path: Path) -> Path:
    folder = tmp_path / "FinancialPhraseBank-v1.0"
    folder.mkdir()
    order = ("50", "66", "75", "all")
    files = {lvl: [] for lvl in order}
    for text, (label, top) in SENTENCES.items():
        for lvl in order[: order.index(top) + 1]:
            files[lvl].append(f"{text} .@{label}")
    files["50"].append("Sales were flat .@positive")  # the conflicting duplicate stays at 50-65%
    names = {"50": "Sentences_50Agree.txt", "66": "Sentences_66Agree.txt", "75": "Sentences_75Agree.txt",
             "all": "Sentences_AllAgree.txt"}
    for lvl, lines in files.items():
        (folder / names[lvl]).write_bytes(("\r\n".join(lines) + "\r\n").encode("latin-1"))
    return folder


def test_levels_come_from_membership_in_the_higher_files(tmp_path):
    levels = agreement_levels(_release(tmp_path))
    for text, (label, top) in SENTENCES.items():
        assert levels[(f"{text} .", label)] == BUCKET[top], text
    assert levels[("Sales were flat .", "positive")] == "50-65%"
    assert len(levels) == len(SENTENCES) + 1


def test_metrics_by_agreement_per_bucket_on_hand_counts():
    gold = ["positive", "negative", "neutral", "positive"]
    pred = ["positive", "negative", "positive", "negative"]
    preds = [Prediction(id=str(i), label=p, gold=g) for i, (g, p) in enumerate(zip(gold, pred, strict=True))]
    out = metrics_by_agreement(preds, ["100%", "100%", "50-65%", "50-65%"], LABELS, bootstrap_samples=20)
    assert list(out) == list(AGREEMENT_BUCKETS)
    assert out["100%"]["n"] == 2 and out["100%"]["accuracy"] == 1.0 and out["100%"]["f1_weighted"] == 1.0
    assert out["50-65%"]["n"] == 2 and out["50-65%"]["accuracy"] == 0.0
    assert out["66-74%"] == {"n": 0} and out["75-99%"] == {"n": 0}
    assert set(out["100%"]["ci95"]) == {"accuracy", "f1_weighted", "f1_macro", "mcc"}


@pytest.fixture
def fpb_prepared(tmp_path):
    """A fake release and `fintune data` on it."""
    from fintune.data.prepare import prepare_data
    from fintune.recipe import validate_recipe_dict

    release = _release(tmp_path)
    recipe = validate_recipe_dict({
        "model_name_or_path": "unused", "data": {
            "task": "sentiment", "format": "label", "template": "chatml",
            "sources": [{"name": "phrasebank", "path": str(release), "agreement": "50"}],
            "split": {"method": "stratified", "test_size": 0.5, "val_size": 0.0, "seed": 0}}})
    return release, prepare_data(recipe, tmp_path / "prep")


@pytest.fixture
def fpb_eval(tmp_path, fpb_prepared):
    """An eval directory of the prepared test split (written by the eval writer)."""
    release, prep = fpb_prepared
    rows = read_prepared(prep)["test"]
    # the model is right on every sentence but the second one of each bucket it sees
    seen: dict[str, int] = {}
    probs = []
    for r in rows:
        text = r["text"].removesuffix(" .")
        bucket = "50-65%" if r["text"] == "Sales were flat ." else BUCKET[SENTENCES[text][1]]
        seen[bucket] = seen.get(bucket, 0) + 1
        right = LABELS.index(r["label"])
        p = np.full(3, 0.1)
        p[right if seen[bucket] != 2 else (right + 1) % 3] = 0.8
        probs.append(p)
    preds = predictions_from_scores(rows, list(LABELS), np.log(np.array(probs)), 1.0)
    data = EvalData(splits={}, task="sentiment", fmt="label", template="chatml", labels=LABELS, source=str(prep))
    metrics = compute_metrics(preds, data, "test", "score", 0, 0)
    metrics["data"] = str(prep)
    ev = tmp_path / "eval"
    ev.mkdir()
    write_eval_outputs(ev, preds, metrics)
    write_manifest(ev, "eval", recipe={"data": str(prep)}, seed=0, data_hashes={}, model="m", mode="score",
                   labels=list(LABELS), task_spec=TaskSpec(labels=list(LABELS)).model_dump(mode="json"))
    return release, prep, ev, rows, seen


def test_an_eval_directory_by_agreement(fpb_eval):
    release, prep, ev, rows, seen = fpb_eval
    res = eval_by_agreement(ev, release, bootstrap_samples=10)
    assert res["n"] == len(rows) and res["texts_from"].endswith("test.parquet")
    got = res["buckets"]
    assert sum(got[b]["n"] for b in AGREEMENT_BUCKETS) == len(rows)
    for bucket in AGREEMENT_BUCKETS:
        n = seen.get(bucket, 0)
        assert got[bucket]["n"] == n
        if n:
            assert got[bucket]["accuracy"] == pytest.approx((n - (n >= 2)) / n), bucket
    # without the prepared directory the texts come from Sentences_50Agree by the fpb50-NNNNN row index
    shutil.rmtree(prep)
    again = eval_by_agreement(ev, release, bootstrap_samples=10)
    assert "by fpb50 row index" in again["texts_from"]
    assert {b: m["n"] for b, m in again["buckets"].items()} == {b: m["n"] for b, m in got.items()}


def test_a_sentence_that_is_not_in_the_release_is_a_one_line_error(fpb_eval):
    release, _, ev, _, _ = fpb_eval
    lines = (ev / "predictions.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["gold"] = next(lab for lab in LABELS if lab != row["gold"])  # the same text with another gold label
    lines[0] = json.dumps(row)
    (ev / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(FintuneError) as exc:
        eval_by_agreement(ev, release, bootstrap_samples=0)
    msg = exc.value.one_line()
    assert f"id '{row['id']}'" in msg and "not a Sentences_50Agree sentence" in msg and "\n" not in msg


def test_the_benchmark_script_prints_tables_and_a_final_json_line(fpb_eval, capsys):
    release, _, ev, rows, _ = fpb_eval
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fpb_by_agreement.py"
    spec = importlib.util.spec_from_file_location("fpb_by_agreement", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--eval", str(ev), "--data", str(release), "--bootstrap-samples", "10"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "| 100% |" in "\n".join(out)
    final = json.loads(out[-1])
    assert final["evals"][str(ev)]["n"] == len(rows)
    assert bench.main(["--eval", str(ev), "--data", str(release / "nope")]) == 2


def test_fintune_eval_adds_the_breakdown_for_phrasebank_data(fpb_prepared, tmp_path):
    release, prep = fpb_prepared
    metrics = run_eval(None, prep, tmp_path / "maj", baseline="majority", bootstrap_samples=10)
    got = metrics["by_agreement"]
    assert got["folder"] == str(release)
    n_test = len(read_prepared(prep)["test"])
    assert sum(got["buckets"][b]["n"] for b in AGREEMENT_BUCKETS) == n_test == metrics["n"]
    # the same numbers as the benchmark script's path from the written eval directory
    again = eval_by_agreement(tmp_path / "maj", release, bootstrap_samples=10)
    for bucket in AGREEMENT_BUCKETS:
        assert again["buckets"][bucket] == got["buckets"][bucket], bucket
    # the release moved away: the eval still succeeds and says why there is no breakdown
    release.rename(tmp_path / "moved")
    moved = run_eval(None, prep, tmp_path / "maj2", baseline="majority", bootstrap_samples=0)
    assert "not found: no agreement breakdown" in moved["by_agreement"]["note"]
    # other data: no breakdown at all
    rows = [{**r, "source": "jsonl"} for r in read_prepared(prep)["test"]]
    assert phrasebank_by_agreement(read_predictions(tmp_path / "maj" / "predictions.jsonl"), rows, prep,
                                   list(LABELS)) is None
