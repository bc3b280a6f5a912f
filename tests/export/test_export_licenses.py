"""Licenses that travel: every shared data source states its license, a train run inherits it, and the exported
model's card and warning carry it (real PhraseBank rows, a tiny Llama trained two LoRA steps)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.tiny import make_tiny_model_dir

from fintune.artifacts import find_licenses
from fintune.cli import main
from fintune.modelcard import license_id, non_commercial
from fintune.run import read_run

EXPECTED = {  # folder -> (license id, non-commercial), as ../shared/data/README.md states them
    "financial_phrasebank": ("cc-by-nc-sa-3.0", True),
    "financebench_sec_excerpts": ("cc-by-nc-4.0", True),
    "finlora_instruction_test_sets": ("cc-by-nc-sa-3.0", True),  # the stricter FPB term, stated on line 2
    "twitter_financial_news_sentiment": ("mit", False),
    "stocknet": ("mit", False),
    "fin_ner_sec_filings": ("cc-by-3.0", False),
    "fiqa_2018_task1": ("other", False),  # none stated (the repo's MIT covers code only)
    "semeval2017_task5_headlines": ("other", False),
    "gold_commodity_news_headlines": ("other", False),
}


def test_every_shared_source_states_its_license(shared_data: Path):
    folders = sorted(p for p in shared_data.iterdir() if p.is_dir())
    found = find_licenses([str(p) for p in folders])
    assert {Path(k).name for k in found} == {p.name for p in folders}  # none without a license section
    for folder, text in found.items():
        want_id, want_nc = EXPECTED[Path(folder).name]
        assert text and license_id(text) == want_id, (folder, text)
        assert bool(non_commercial({folder: text})) == want_nc, (folder, text)


@pytest.mark.slow
def test_phrasebank_license_travels_from_data_to_exported_card(shared_data, tmp_path, capsys):
    model = make_tiny_model_dir(tmp_path, "llama")
    raw = {"name": "tiny-fpb", "model_name_or_path": str(model), "dtype": "float32", "method": "lora", "lora_r": 4,
           "lora_alpha": 8, "per_device_train_batch_size": 4, "learning_rate": 5e-3, "max_steps": 2,
           "save_steps": 2, "eval_steps": 2, "max_seq_length": 128, "logging_steps": 1, "bf16": False, "seed": 3,
           "data": {"task": "sentiment", "format": "label", "template": "auto",
                    "sources": [{"name": "phrasebank", "path": str(shared_data / "financial_phrasebank"),
                                 "agreement": "all", "limit": 40}],
                    "split": {"method": "stratified", "test_size": 0.25, "val_size": 0.1, "seed": 3}}}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(run)]) == 0
    licenses = read_run(run).licenses
    assert [license_id(t) for t in licenses.values()] == ["cc-by-nc-sa-3.0"]
    assert read_run(run / "data").licenses == licenses  # the data stage found it, the train run inherited it
    capsys.readouterr()
    out = tmp_path / "export"
    assert main(["export", str(run), "--quant", "f32", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^warning: .*non-commercial data: financial_phrasebank \(cc-by-nc-sa-3\.0\)", err, re.M)
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "cc-by-nc-sa-3.0" and meta["datasets"] == ["financial_phrasebank"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["licenses"] == licenses
    # and the trained weights survive: the GGUF scores the run's test rows as fintune does
    import torch
    from transformers import AutoModelForCausalLM

    from fintune.data.prepare import read_prepared
    from fintune.predict.predictor import Predictor

    ours = Predictor.load(str(run))
    rows = read_prepared(run / "data")["test"][:4]
    gguf_model = AutoModelForCausalLM.from_pretrained(str(out), gguf_file=manifest["gguf"], dtype=torch.float32)
    theirs = Predictor(ours.spec, gguf_model.eval(), ours.tokenizer)
    assert np.abs(np.asarray(theirs.score_rows(rows)) - np.asarray(ours.score_rows(rows))).max() < 1e-4


@pytest.mark.parametrize("text,want", [("MIT.", "mit"), ("No license file ships (the repo's MIT covers code)",
                                                         "other"), ("CC BY-NC 4.0. Non-commercial.", "cc-by-nc-4.0")])
def test_license_id(text, want):
    assert license_id(text) == want
