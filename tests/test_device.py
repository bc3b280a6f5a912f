"""Device resolution (CUDA, else Apple MPS, else CPU; the recipe's ``device:`` overrides) and what it implies for
dtypes, QLoRA and the trainer's ``use_cpu``. torch's availability checks are monkeypatched: no GPU or Mac here."""

from __future__ import annotations

import pytest
import torch
from tests.tiny import make_tiny_model_dir

from fintune import device as dev
from fintune.errors import FintuneError
from fintune.recipe import Recipe


def _machine(monkeypatch, cuda: bool, mps: bool, macos14: bool = True) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: macos14 and major <= 14,
                        raising=False)


@pytest.mark.parametrize(("cuda", "mps", "expected"), [(True, True, "cuda"), (True, False, "cuda"),
                                                       (False, True, "mps"), (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _machine(monkeypatch, cuda, mps)
    assert dev.resolve_device("auto") == expected
    assert dev.resolve_device("cpu") == "cpu"  # the CPU can always be forced


def test_an_unavailable_or_unknown_device_is_a_one_line_error(monkeypatch):
    _machine(monkeypatch, cuda=False, mps=False)
    with pytest.raises(FintuneError, match="device: cuda, but torch sees no CUDA GPU"):
        dev.resolve_device("cuda")
    with pytest.raises(FintuneError, match="device: mps, but torch sees no Apple-silicon MPS"):
        dev.resolve_device("mps")
    with pytest.raises(FintuneError, match="not one of"):
        dev.resolve_device("tpu")
    _machine(monkeypatch, cuda=False, mps=True)
    assert dev.resolve_device("mps") == "mps"


def test_dtypes_per_device(monkeypatch):
    _machine(monkeypatch, cuda=False, mps=True, macos14=True)
    assert dev.inference_dtype("mps") == "bfloat16" and dev.training_bf16("mps") is True
    _machine(monkeypatch, cuda=False, mps=True, macos14=False)
    assert dev.inference_dtype("mps") == "float16" and dev.training_bf16("mps") is False
    assert dev.training_bf16("mps", True) is True and dev.training_bf16("cpu", False) is False
    assert dev.inference_dtype("cpu") == "float32" and dev.inference_dtype("cuda") == "auto"
    assert dev.inference_dtype("mps", "float32") == "float32"  # an explicit dtype is kept


def test_qlora_on_mps_suggests_lora_before_loading_weights(monkeypatch, tmp_path):
    from fintune.models import load_model_and_tokenizer

    _machine(monkeypatch, cuda=False, mps=True)
    model_dir = make_tiny_model_dir(tmp_path)
    recipe = Recipe(model_name_or_path=str(model_dir), method="qlora")
    with pytest.raises(FintuneError) as err:
        load_model_and_tokenizer(str(model_dir), method="qlora", recipe=recipe)
    assert "no Apple MPS kernels" in str(err.value) and "method: lora" in err.value.one_line()
    dev.check_method("qlora", "cuda")  # fine elsewhere
    dev.check_method("lora", "mps")


@pytest.mark.parametrize(("cuda", "mps", "key", "use_cpu"), [(False, False, "auto", True), (False, True, "auto", False),
                                                             (True, False, "cpu", True), (True, False, "auto", False)])
def test_training_arguments_follow_the_device(monkeypatch, tmp_path, cuda, mps, key, use_cpu):
    import transformers

    from fintune.train import sft

    _machine(monkeypatch, cuda, mps)
    seen = {}
    monkeypatch.setattr(transformers, "TrainingArguments", lambda **kw: seen.update(kw) or kw)
    sft.build_training_arguments(Recipe(model_name_or_path="x", device=key, bf16=False), tmp_path, has_eval=False)
    assert seen["use_cpu"] is use_cpu and "no_cuda" not in seen


def test_recipe_device_key_is_validated():
    assert Recipe(model_name_or_path="x").device == "auto"
    with pytest.raises(Exception, match="device"):
        Recipe(model_name_or_path="x", device="gpu")


def test_inference_loads_on_the_resolved_device(tmp_path):
    from fintune.predict.predictor import Predictor

    model_dir = make_tiny_model_dir(tmp_path)
    pred = Predictor.load(str(model_dir), device="cpu")
    param = next(pred.model.parameters())
    assert param.device.type == "cpu" and param.dtype == torch.float32
    if not dev.mps_available():  # this machine: asking for MPS is a one-line error, not a silent CPU run
        with pytest.raises(FintuneError, match="device: mps"):
            Predictor.load(str(model_dir), device="mps")
