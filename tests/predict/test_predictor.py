"""The Predictor: one entry point for every front; merged adapters, the process-wide prefix cache and the vLLM
backend's refusals and prediction schema (with a stand-in for vLLM's engine, since vLLM is not installed here)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from tests.tiny import make_tiny_model_dir

from fintune.errors import FintuneError

TEXTS = ["Revenue rose 12% to EUR 3.4 mn.", "Shares fell 5.2 percent on Monday.", "The board meets in March."]
LABELS = ["negative", "neutral", "positive"]


def _run(tmp: Path, base: Path, **lora) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fintune.artifacts import write_manifest

    run = tmp / ("run-" + "-".join(sorted(lora)) if lora else tmp / "run")
    torch.manual_seed(3)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base)), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False,
        **lora))
    model.save_pretrained(str(run))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(run))
    recipe = {"model_name_or_path": str(base), "data": {"task": "sentiment", "format": "label",
                                                         "template": "chatml", "system_prompt": "You are an analyst."}}
    write_manifest(run, "train", recipe=recipe, seed=0, base_model=str(base), merged_adapters=[], labels=LABELS,
                   template="chatml")
    return run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pred")
    base = make_tiny_model_dir(tmp, "llama", seed=2)
    return base, _run(tmp, base)


def _rows(texts):
    from fintune.prompts.tasks import build_messages
    from fintune.records import Example

    return [{"id": str(i), "messages": build_messages(Example(id=str(i), text=t), "label", LABELS,
                                                      "You are an analyst.", with_answer=False)}
            for i, t in enumerate(texts)]


def test_merged_adapter_and_prefix_cache_score_like_the_unmerged_run(tiny):
    from fintune.predict.predictor import Predictor

    _, run = tiny
    merged = Predictor.load(str(run), batch_size=2)
    plain = Predictor.load(str(run), batch_size=3, merge=False)
    assert merged.spec.template == "chatml" and merged.spec.system_prompt == "You are an analyst."
    assert not hasattr(merged.model, "peft_config") and hasattr(plain.model, "peft_config")
    a = merged.score_rows(_rows(TEXTS))
    b = plain.score_rows(_rows(TEXTS))
    np.testing.assert_allclose(a, b, atol=1e-4)
    cache = merged.backend.prefix_cache
    assert cache.ids and cache.misses == 1 and cache.hits >= 1  # the system prompt's KV was computed once
    again = merged.score_rows(_rows(TEXTS[::-1]))
    np.testing.assert_allclose(again, a[::-1], atol=1e-5)
    assert cache.misses == 1
    preds = merged.predict_rows(_rows(TEXTS))
    assert [p.label for p in preds] == [LABELS[i] for i in a.argmax(1)] and preds[0].label_logprobs


def _fake_vllm(monkeypatch, model, calls):
    """A stand-in for vllm's engine: prompt log-probs from a full forward of the same torch model."""
    import torch

    class LLM:
        def __init__(self, model: str, **kw):
            calls.append(("LLM", model, kw))

        def generate(self, requests, params, lora_request=None, use_tqdm=False):
            calls.append(("generate", lora_request))
            outs = []
            for req in requests:
                ids = req["prompt_token_ids"]
                with torch.no_grad():
                    logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
                plp = [None] + [{ids[k]: types.SimpleNamespace(logprob=float(logp[k - 1, ids[k]]))}
                                for k in range(1, len(ids))]
                outs.append(types.SimpleNamespace(prompt_logprobs=plp, outputs=[types.SimpleNamespace(text="")]))
            return outs

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, lambda **kw: kw
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = lambda name, i, path: ("lora", name, i, path)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora)


def test_vllm_backend_serves_the_adapter_as_an_adapter_with_the_same_schema(tiny, monkeypatch):
    from fintune.predict.predictor import Predictor

    _, run = tiny
    torch_pred = Predictor.load(str(run))
    calls: list = []
    _fake_vllm(monkeypatch, torch_pred.model, calls)
    vp = Predictor.load(str(run), backend="vllm")
    assert vp.backend.name == "vllm" and calls[0][2]["enable_lora"] and vp.backend.lora[-1] == str(run)
    got = vp.predict_rows(_rows(TEXTS))
    want = torch_pred.predict_rows(_rows(TEXTS))
    assert [p.to_dict().keys() for p in got] == [p.to_dict().keys() for p in want]
    assert [p.label for p in got] == [p.label for p in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(list(g.label_logprobs.values()), list(w.label_logprobs.values()), atol=1e-4)


def test_vllm_refuses_dora_and_modules_to_save_and_says_when_not_installed(tiny, tmp_path):
    from fintune.cli import main
    from fintune.predict.vllm_backend import check_vllm_run

    base, run = tiny
    dora = _run(tmp_path, base, use_dora=True)
    saved = _run(tmp_path, base, modules_to_save=["lm_head"])
    with pytest.raises(FintuneError, match="DoRA"):
        check_vllm_run(dora)
    with pytest.raises(FintuneError, match="modules_to_save"):
        check_vllm_run(saved)
    if "vllm" not in sys.modules:
        with pytest.raises(FintuneError, match="vLLM is not installed"):
            check_vllm_run(run)
        src = tmp_path / "in.jsonl"
        src.write_text(json.dumps({"text": TEXTS[0]}) + "\n")
        assert main(["analyze", "--file", str(src), "--out", str(tmp_path / "o.jsonl"), "--model", str(run),
                     "--backend", "vllm"]) != 0
        assert not (tmp_path / "o.jsonl").exists()


def test_inference_threads_default_to_the_cores_this_process_may_use(monkeypatch):
    import os

    import torch

    from fintune.predict.predictor import default_threads, set_inference_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert default_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == len(os.sched_getaffinity(0))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert set_inference_threads() == 1  # a lower count set on purpose (serve --threads) is kept
    finally:
        torch.set_num_threads(before)
