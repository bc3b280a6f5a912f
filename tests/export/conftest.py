"""Fixtures of the export tests: a tiny random Llama and a LoRA run on it (nonzero B, so merging changes weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.tiny import make_tiny_model_dir

PHRASEBANK_LICENSE = "Creative Commons Attribution-NonCommercial-ShareAlike 3.0 Unported (CC BY-NC-SA 3.0)."


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One torch thread: tiny forwards on a shared 2-core box are faster without spinning workers."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random tiny Llama saved with its tokenizer."""
    return make_tiny_model_dir(tmp_path_factory.mktemp("export-model"), seed=3)


def make_run(root: Path, base: Path, licenses: dict[str, str]) -> Path:
    """A run directory as `fintune train` writes it (adapter + tokenizer + manifest with ``licenses``)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fintune.artifacts import write_manifest
    from fintune.run import TaskSpec

    run = root / "run"
    torch.manual_seed(5)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM",
                                      init_lora_weights=False))
    model.save_pretrained(str(run))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(run))
    recipe = {"model_name_or_path": str(base), "lora_r": 4,
              "data": {"task": "sentiment", "format": "label", "template": "auto", "labels": None,
                       "system_prompt": "You are a financial analyst."}}
    spec = TaskSpec.from_recipe(recipe)
    write_manifest(run, "train", recipe=recipe, seed=0, base_model=str(base), merged_adapters=[],
                   labels=spec.labels, template="auto", task_spec=spec.model_dump(mode="json"), licenses=licenses)
    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model) -> Path:
    """A LoRA run whose data carried PhraseBank's non-commercial license and TFNS's MIT license."""
    return make_run(tmp_path_factory.mktemp("export-run"), tiny_model,
                    {"/data/financial_phrasebank": PHRASEBANK_LICENSE, "/data/twitter_financial_news_sentiment": "MIT."})
