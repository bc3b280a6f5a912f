"""Fixtures of the serve tests: a tiny random model and a tiny LoRA "run" with a fitted temperature."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serve_http_helpers import TOKEN
from tests.tiny import make_tiny_model_dir

RUN_TEMPERATURE = 2.5


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """In-process model tests use one torch thread: on a shared 2-core CI box, torch's spinning worker threads
    make tiny forwards many times slower than one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random tiny Llama saved with its tokenizer."""
    return make_tiny_model_dir(tmp_path_factory.mktemp("serve-model"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model) -> Path:
    """A run directory as `fintune train` writes it (adapter + tokenizer + manifest) and an eval directory inside
    it whose calibration.json holds a fitted temperature, as `fintune eval --out RUN/eval` writes it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fintune.artifacts import atomic_write_json, write_manifest

    run = tmp_path_factory.mktemp("serve-run") / "run"
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM",
                                            init_lora_weights=False))
    model.save_pretrained(str(run))
    AutoTokenizer.from_pretrained(str(tiny_model)).save_pretrained(str(run))
    labels = ["negative", "neutral", "positive"]
    recipe = {"model_name_or_path": str(tiny_model), "lora_r": 4,
              "data": {"task": "sentiment", "format": "label", "template": "auto", "labels": None,
                       "system_prompt": "You are a financial analyst."}}
    write_manifest(run, "train", recipe=recipe, seed=0, base_model=str(tiny_model), merged_adapters=[],
                   labels=labels, template="auto")
    ev = run / "eval"
    ev.mkdir()
    atomic_write_json(ev / "calibration.json", {"temperature": RUN_TEMPERATURE, "fitted_on": "validation",
                                                "n_validation": 50, "labels": labels})
    (ev / "manifest.json").write_text(json.dumps({"stage": "eval", "model": str(run), "parent_run": str(run)}))
    return run


@pytest.fixture(scope="session")
def server(tiny_run, tmp_path_factory):
    """``fintune serve RUN`` in a subprocess on loopback with a bearer token: ``(url, process, log_path)``."""
    from serve_http_helpers import running_server

    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    with running_server(str(tiny_run), max_batch=32, wait_ms=5, env={"FINTUNE_API_TOKEN": TOKEN},
                        extra_args=["--threads", "1"], log_path=log) as (url, proc, log_file):
        yield url, proc, log_file
