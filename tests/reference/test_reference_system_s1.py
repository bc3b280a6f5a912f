"""S1, Qwen2.5-1.5B-Instruct LoRA on the FinGPT-Forecaster Dow30 rows, end to end on a tiny random Qwen2.

The shipped recipe ``qwen2.5-1.5b/forecaster_lora`` runs unchanged but for the model, the data path (a JSONL export
of rows shaped like the published ones, with a ``split`` column: the recipe's ``split: predefined``) and sizes:
``fintune data`` -> ``fintune train`` (LoRA) -> ``fintune eval`` (generate, strict FinGPT parsing, forecaster
metrics). The row's own system prompt must reach the model (Qwen's default system prompt must not replace it),
and each stage's manifest must point at the previous stage's output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.reference.reference_chain import jsonl, manifest, run_verb, sets
from tests.reference.reference_models import make_reference_model_dir
from tests.reference.reference_rows import fingpt_rows

from fintune.artifacts import sha256_file
from fintune.data.fingpt import split_llama2_prompt

RECIPE = "qwen2.5-1.5b/forecaster_lora"


def test_reference_system_s1_qwen25_lora_fingpt_forecaster(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    model = make_reference_model_dir(tmp_path, "qwen2", "chatml", seed=11)
    rows = fingpt_rows(weeks=4)
    export = tmp_path / "fingpt-forecaster-dow30.jsonl"
    export.write_text("".join(json.dumps({**r, "split": "test" if i % 4 == 3 else "train"}) + "\n"
                              for i, r in enumerate(rows)), encoding="utf-8")
    size = [f"model_name_or_path={model}", "dtype=float32", "bf16=false", "max_seq_length=1024",
            f"data.sources.0.path={export}"]
    data, run, ev = tmp_path / "data", tmp_path / "run", tmp_path / "eval"

    # 1. data: the published rows, re-rendered with Qwen's template, keeping each row's system prompt
    run_verb(capsys, "data", RECIPE, "--out", str(data), *sets(*size))
    dm = manifest(data)
    assert dm["split_method"] == "predefined" and dm["sources"][0]["path"] == str(export)
    assert dm["counts"]["test"] == 3 and dm["counts"]["train"] + dm["counts"]["validation"] == 9
    assert dm["data_sha256"] == {str(export): sha256_file(export)}
    from fintune.data.prepare import read_prepared

    prepared = [r for split in read_prepared(data).values() for r in split]
    by_id = {f"fingpt-{r['symbol']}-{r['period'][:10]}": r for r in rows}
    for r in prepared:
        system, user = split_llama2_prompt(by_id[r["id"]]["prompt"], r["id"])
        assert r["prompt"] == (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
                               "<|im_start|>assistant\n")
        assert r["completion"] == by_id[r["id"]]["answer"] + "<|im_end|>\n"

    # 2. train: LoRA r=8 on all seven projections, on the prepared rows
    run_verb(capsys, "train", RECIPE, "--out", str(run), *sets(
        *size, f"data.prepared={data}", "max_steps=2", "per_device_train_batch_size=1",
        "gradient_accumulation_steps=1", "logging_steps=1"))
    tm = manifest(run)
    assert tm["data_dir"] == str(data) and tm["base_model"] == str(model) and tm["training"]["global_step"] == 2
    adapter = json.loads((run / "adapter_config.json").read_text())
    assert adapter["r"] == 8 and set(adapter["target_modules"]) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

    # 3. eval: generate, parse strictly, forecaster metrics (direction accuracy, move errors, ROUGE, baselines)
    run_verb(capsys, "eval", str(run), "--data", str(data), "--out", str(ev), "--mode", "generate",
             "--max-new-tokens", "16", "--bootstrap-samples", "0", "--no-progress")
    em = manifest(ev)
    assert em["parent_run"] == str(run) and em["recipe"]["data"] == str(data)
    assert em["data_sha256"][str(data / "test.parquet")] == sha256_file(data / "test.parquet")
    preds = jsonl(ev / "predictions.jsonl")
    assert sorted(p["id"] for p in preds) == sorted(r["id"] for r in read_prepared(data)["test"])
    assert all(p["raw_output"] and p["gold"] for p in preds)
    metrics = json.loads((ev / "metrics.json").read_text())
    forecast = metrics["forecast"]
    assert forecast["n"] == 3 and "direction_accuracy" in forecast and "baselines" in forecast
