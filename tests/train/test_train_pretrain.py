"""Stage-1 continued pretraining on raw text, then stage 2 from it (merge and continue handoffs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers_train import encoded_rows, tiny_recipe
from tests.tiny import make_tiny_model_dir

from fintune.train.collate import IGNORE
from fintune.train.pretrain import pack_documents, pretrain
from fintune.train.sft import prepare_model, run_training

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_pack_documents_restarts_positions_and_masks_boundaries() -> None:
    rows = pack_documents([[10, 11, 12], [20, 21], [30, 31, 32, 33]], eos_id=2, block=5)
    flat = [t for r in rows for t in r["input_ids"]]
    assert flat == [10, 11, 12, 2, 20, 21, 2, 30, 31, 32, 33, 2]
    assert rows[0]["position_ids"] == [0, 1, 2, 3, 0]
    assert rows[1]["position_ids"] == [0, 1, 0, 1, 2]  # doc 2 cut at the edge restarts; doc 3 starts at 0
    assert rows[0]["labels"] == [IGNORE, 11, 12, 2, IGNORE]
    assert rows[2]["input_ids"] == [33, 2] and rows[2]["labels"] == [IGNORE, 2]


def test_pretrain_then_sft_merge_and_continue(tmp_path: Path) -> None:
    from fintune.models import load_for_inference

    pytest.importorskip("fintune.data.text")
    model_dir = make_tiny_model_dir(tmp_path, "llama")
    corpus = tmp_path / "licensed" / "corpus"  # PROVENANCE.md one level up, as in ../shared/data
    corpus.mkdir(parents=True)
    for i in range(4):
        (corpus / f"doc{i}.txt").write_text("Revenue rose 12 percent in the quarter and shares gained. " * (3 + i))
    (corpus.parent / "PROVENANCE.md").write_text("# test corpus\n\n## License\nCC BY-NC 4.0 (test corpus).\n")
    data = {"task": "pretrain", "format": "text", "sources": [{"name": "text", "path": str(corpus)}],
            "split": {"method": "random", "test_size": 0.25, "seed": 1}}
    recipe = tiny_recipe(model_dir, stage="pretrain", max_steps=2, save_steps=2, eval_steps=2,
                         max_seq_length=32, data=data)
    summary = pretrain(recipe, out=tmp_path / "stage1")
    assert summary["global_step"] == 2
    assert summary["eval_examples"] > 0 and any("eval_loss" in r for r in summary["history"])
    m1 = json.loads((tmp_path / "stage1" / "manifest.json").read_text())
    assert m1["stage"] == "pretrain" and m1["documents"] == 4 and m1["blocks"] >= 2
    assert {Path(k).name: v for k, v in m1["licenses"].items()} == {"licensed": "CC BY-NC 4.0 (test corpus)."}

    for handoff in ("merge", "continue"):
        r2 = tiny_recipe(model_dir, init_from=str(tmp_path / "stage1"), stage1_handoff=handoff, max_steps=2,
                         save_steps=2)
        model, tok, lineage = prepare_model(r2)
        run_training(r2, model, tok, encoded_rows(tok), None, tmp_path / handoff, False, "train", dict(lineage))
        m2 = json.loads((tmp_path / handoff / "manifest.json").read_text())
        assert m2["parent_run"] == str(tmp_path / "stage1") and m2["base_model"] == str(model_dir)
        assert m2["merged_adapters"] == ([str((tmp_path / "stage1").resolve())] if handoff == "merge" else [])
        assert m2["licenses"] == m1["licenses"]  # stage-1 data licenses travel into the stage-2 run
        _, _, info = load_for_inference(str(tmp_path / handoff))
        assert info.kind == "adapter"
