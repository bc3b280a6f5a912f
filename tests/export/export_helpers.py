"""Builders of the export tests: a run directory as `fintune train` writes it, with chosen data licenses."""

from __future__ import annotations

from pathlib import Path


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
