"""Reference system S3: Pythia-1.4B two-stage adaptation, end to end on a tiny random GPT-NeoX.

The shipped recipes run unchanged except for the model (``--set model_name_or_path=<tiny GPT-NeoX>``) and
size-reducing overrides (steps, batch, sequence length, per-source caps, float32 on CPU). The recipes have no
``deepspeed`` key (multi-GPU comes from ``accelerate launch --config_file ...``), so nothing is removed: this is the
single-process path. Chain: ``fintune pretrain`` stage 1 (full weights, best checkpoint by eval loss) ->
``fintune data`` stage 2 (the FPB / FiQA-SA / headlines / NER mix) -> ``fintune train`` stage 2 (full weights from
stage 1's best, best checkpoint by validation weighted F1) -> ``fintune eval --suite flare`` (the four tasks).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.tiny import make_tiny_model_dir

from fintune.cli import main

ROOT = Path(__file__).resolve().parents[2]
STAGE1 = str(ROOT / "recipes" / "pythia-1.4b" / "stage1_pretrain.yaml")
STAGE2 = str(ROOT / "recipes" / "pythia-1.4b" / "stage2_instruct.yaml")
CPU = ["dtype=float32", "bf16=false", "per_device_train_batch_size=4", "per_device_eval_batch_size=8",
       "gradient_accumulation_steps=1", "logging_steps=1", "max_steps=2", "eval_steps=1", "save_steps=1",
       "learning_rate=1.0e-3", "warmup_ratio=0.0"]


def _sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.shared
@pytest.mark.slow  # ~26 s CPU: four real data sets loaded, three tiny trainings/evaluations
def test_reference_system_s3_pythia_two_stage_full_weights_to_flare_suite(
        tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("FINTUNE_DATA", str(shared_data))
    tiny = make_tiny_model_dir(tmp_path, "gpt_neox")
    s1, data, s2, suite = tmp_path / "stage1", tmp_path / "stage2-data", tmp_path / "stage2", tmp_path / "flare"

    # stage 1: full-weight continued pretraining; RUN/ keeps the best (lowest eval loss) checkpoint
    assert main(["pretrain", STAGE1, "--out", str(s1), *_sets([
        f"model_name_or_path={tiny}", *CPU, "max_seq_length=64", "data.sources.0.limit=3",
        "data.sources.1.limit=300"])]) == 0
    m1 = _manifest(s1)
    assert m1["stage"] == "pretrain" and m1["recipe"]["method"] == "full" and m1["base_model"] == str(tiny)
    t1 = m1["training"]
    assert t1["saved_weights"] == "best" and t1["metric_for_best_model"] == "eval_loss"
    best1 = _weights(Path(t1["best_model_checkpoint"]))
    run1 = _weights(s1)
    assert all(run1[k].equal(best1[k]) for k in run1)
    assert not all(run1[k].equal(v) for k, v in _weights(tiny).items())  # stage 1 trained the weights

    # stage 2 data: the recipe's four sources, capped; the realised mix is in the manifest
    assert main(["data", STAGE2, "--out", str(data), *_sets([
        f"model_name_or_path={tiny}", "data.sources.0.max_examples=80", "data.sources.1.max_examples=40",
        "data.sources.2.max_examples=60", "data.sources.3.max_examples=20"])]) == 0
    md = _manifest(data)
    kept = {s["name"]: s["examples"] for s in md["sources"]}
    assert kept == {"phrasebank": 80, "fiqa": 40, "gold": 60, "finner": 20}
    assert md["sources"][2]["mix"]["loaded"] > 10000  # every headline question was loaded, then sampled
    assert {src for split in md["mix"].values() for src in split} == set(kept)
    assert md["tokenizer"] and all(r["completion"].endswith("<|im_end|>") for r in
                                   _prepared_train(data))  # answers end with the model's EOS

    # stage 2: full-weight SFT from stage 1's best weights, best checkpoint by validation weighted F1
    assert main(["train", STAGE2, "--out", str(s2), *_sets([
        f"model_name_or_path={tiny}", f"init_from={s1}", f"data.prepared={data}", *CPU,
        "max_seq_length=256"])]) == 0
    m2 = _manifest(s2)
    assert m2["parent_run"] == str(s1) and m2["base_model"] == str(s1) and m2["data_dir"] == str(data)
    t2 = m2["training"]
    assert t2["metric_for_best_model"] == "f1_weighted" and t2["saved_weights"] == "best"
    logged = [json.loads(line) for line in (s2 / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "eval_f1_weighted" in r] == [1, 2]
    assert t2["best_metric"] == max(r["eval_f1_weighted"] for r in logged if "eval_f1_weighted" in r)
    run2 = _weights(s2)
    assert all(run2[k].equal(v) for k, v in _weights(Path(t2["best_model_checkpoint"])).items())
    assert not all(run2[k].equal(run1[k]) for k in run2)

    # the FLARE suite on the stage-2 run: FPB, FiQA-SA, headlines and NER in one command
    capsys.readouterr()
    assert main(["eval", str(s2), "--suite", "flare", "--tasks", "fpb", "fiqa_sa", "headlines", "ner",
                 "--limit", "3", "--out", str(suite), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((suite / "suite.json").read_text())
    assert set(result["tasks"]) == {"fpb", "fiqa_sa", "headlines", "ner"}
    assert all(t["n"] == 3 for t in result["tasks"].values()) and result["template"] == "none"
    for row in ("| FPB | Acc |", "| FPB | F1 (weighted) |", "| FiQA-SA | F1 (weighted) |", "| Headlines | Avg F1 |",
                "| NER (FinNER) | Entity F1 |"):
        assert row in printed, row
    assert _manifest(suite)["parent_run"] == str(s2)


def _prepared_train(data: Path) -> list[dict]:
    from fintune.data.prepare import read_prepared

    return read_prepared(data)["train"]
