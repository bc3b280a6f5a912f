"""QLoRA under FSDP / ZeRO-3 stores the packed 4-bit weights in the model dtype; elsewhere in uint8."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.tiny import make_tiny_model_dir


@pytest.mark.parametrize(("env", "expected"), [({}, "uint8"), ({"ACCELERATE_USE_FSDP": "true"}, "float32")])
def test_quant_storage_follows_the_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            env: dict[str, str], expected: str) -> None:
    pytest.importorskip("bitsandbytes")
    import torch

    from fintune.models import load_model_and_tokenizer

    for key in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_ZERO_STAGE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    model, _ = load_model_and_tokenizer(str(make_tiny_model_dir(tmp_path)), dtype="float32", method="qlora")
    weight = model.model.layers[0].self_attn.q_proj.weight
    assert type(weight).__name__ == "Params4bit"
    assert weight.quant_storage == getattr(torch, expected)


def test_prequantized_checkpoint_round_trip(tmp_path: Path) -> None:
    """``fintune models quantize`` writes a 4-bit checkpoint that QLoRA loads as is (same dequantized weights),
    that LoRA refuses, and that is never overwritten."""
    pytest.importorskip("bitsandbytes")
    import bitsandbytes.functional as bnbf
    import torch

    from fintune.cli import main
    from fintune.errors import FintuneError
    from fintune.models import load_model_and_tokenizer

    src, out = make_tiny_model_dir(tmp_path), tmp_path / "nf4"
    assert main(["models", "quantize", str(src), "--out", str(out)]) == 0
    on_load, _ = load_model_and_tokenizer(str(src), dtype="float32", method="qlora")
    stored, _ = load_model_and_tokenizer(str(out), dtype="float32", method="qlora")
    a = on_load.model.layers[0].mlp.up_proj.weight
    b = stored.model.layers[0].mlp.up_proj.weight
    assert type(b).__name__ == "Params4bit" and b.quant_state.quant_type == "nf4"
    assert torch.equal(bnbf.dequantize_4bit(a.data, a.quant_state), bnbf.dequantize_4bit(b.data, b.quant_state))
    assert sum(f.stat().st_size for f in out.glob("*.safetensors")) < sum(
        f.stat().st_size for f in src.glob("*.safetensors"))
    with pytest.raises(FintuneError, match="4-bit bitsandbytes checkpoint"):
        load_model_and_tokenizer(str(out), dtype="float32", method="lora")
    assert main(["models", "quantize", str(src), "--out", str(out)]) != 0  # refuses to overwrite
