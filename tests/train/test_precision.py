"""fp32 matmul precision scoping and the float32 LoRA sum under bf16 autocast (train/precision.py)."""

from __future__ import annotations

import pytest
import torch

from fintune.train.precision import (
    bf16_supported,
    fp32_matmul_precision,
    keep_lora_sum_fp32,
    resolve_fp32_matmul_precision,
)


def test_ieee_changes_nothing_and_auto_resolves_to_a_known_setting() -> None:
    before = torch.backends.mkldnn.matmul.fp32_precision
    with fp32_matmul_precision("ieee") as used:
        assert used == "ieee"
        assert torch.backends.mkldnn.matmul.fp32_precision == before
    assert resolve_fp32_matmul_precision("auto") in ("ieee", "bf16", "tf32")


def test_tf32_on_a_cpu_falls_back_to_ieee() -> None:
    if torch.cuda.is_available():
        pytest.skip("CPU-only check")
    with fp32_matmul_precision("tf32") as used:
        assert used == "ieee"


@pytest.mark.skipif(not bf16_supported() or torch.cuda.is_available(), reason="needs a CPU with bf16 units")
def test_bf16_matmul_precision_is_scoped_and_keeps_float32_outputs() -> None:
    before = torch.backends.mkldnn.matmul.fp32_precision
    # oneDNN dispatches small fp32 products to exact kernels on some CPUs (AMD Zen 4 at 64x96): use a size that
    # reaches the bf16 GEMM on every CPU with bf16 units
    a, w = torch.randn(512, 512), torch.randn(512, 512)
    exact = torch.nn.functional.linear(a, w)
    with fp32_matmul_precision("bf16") as used:
        assert used == "bf16"
        fast = torch.nn.functional.linear(a, w)
    assert torch.backends.mkldnn.matmul.fp32_precision == before  # restored
    assert fast.dtype == torch.float32
    assert not torch.equal(fast, exact)  # the products really were rounded...
    assert torch.allclose(fast, exact, rtol=0.05, atol=1.0)  # ...but only to bf16 product precision


def _lora_linear(b_scale: float) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(64, 64))
    base[0].weight.data.normal_(0, 1.0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=4, target_modules=["0"], lora_dropout=0.0))
    layer = model.base_model.model[0]
    layer.lora_B["default"].weight.data.fill_(b_scale)
    return model


def test_float32_lora_sum_keeps_a_small_update_that_bf16_autocast_rounds_away() -> None:
    x = torch.randn(8, 64)
    ref = _lora_linear(0.0)
    model = _lora_linear(1e-4)
    layer = model.base_model.model[0]
    delta = layer.lora_B["default"](layer.lora_A["default"](x)) * layer.scaling["default"]  # float32, exact
    with torch.autocast("cpu", dtype=torch.bfloat16):
        seen_plain = (model(x).float() - ref(x).float())
    assert keep_lora_sum_fp32(model) == 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        seen_fp32 = model(x).float() - ref(x).float()
    # plain autocast: base + tiny update is rounded back to base in bf16, so most of the update is lost
    assert (seen_plain == 0).float().mean() > 0.5
    # float32 sum: every element carries the update, within the bf16 error of computing the LoRA branch itself
    assert (seen_fp32 != 0).all()
    assert torch.allclose(seen_fp32, delta, rtol=0.1, atol=1e-5)
