"""Which device training and inference use, and the dtypes that go with it.

``auto`` (the default of the recipe's ``device:`` key) picks a CUDA GPU, else Apple-silicon MPS, else the CPU;
``cuda``, ``mps`` and ``cpu`` force one (an unavailable one is a one-line error). Per device:

- CUDA: inference in the checkpoint's dtype; training with bf16 autocast where the GPU has it.
- MPS: inference in bfloat16 (macOS 14+, what transformers also checks) else float16; training keeps float32
  master weights with bf16 autocast on macOS 14+ (no fp16 autocast: its gradient scaler is unreliable on MPS).
  bitsandbytes has no MPS kernels, so ``method: qlora`` there is an error that suggests LoRA.
- CPU: float32 weights (half-precision weights are slow and train badly there); bf16 autocast on a CPU with
  AVX512-BF16/AMX.

Only the resolution logic is tested here (by monkeypatching torch's availability checks): the MPS path has not
been run on Apple hardware.
"""

from typing import Any

from fintune.errors import FintuneError

DEVICES = ("auto", "cuda", "mps", "cpu")


def cuda_available() -> bool:
    """True when torch sees a CUDA GPU."""
    import torch

    return bool(torch.cuda.is_available())


def mps_available() -> bool:
    """True when torch sees Apple-silicon MPS (a torch without the MPS backend counts as not available)."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def mps_bf16_supported() -> bool:
    """bfloat16 on MPS needs macOS 14 or newer (the same test transformers uses)."""
    import torch

    check = getattr(torch.backends.mps, "is_macos_or_newer", None)
    return bool(check is not None and check(14, 0))


def resolve_device(requested: str = "auto") -> str:
    """``auto`` -> ``cuda``, else ``mps``, else ``cpu``; an explicit device must be available here."""
    if requested not in DEVICES:
        raise FintuneError(f"device: {requested!r} is not one of {list(DEVICES)}", "use auto, cuda, mps or cpu")
    if requested == "auto":
        return "cuda" if cuda_available() else "mps" if mps_available() else "cpu"
    if requested == "cuda" and not cuda_available():
        raise FintuneError("device: cuda, but torch sees no CUDA GPU here", "set device: auto (or mps / cpu)")
    if requested == "mps" and not mps_available():
        raise FintuneError("device: mps, but torch sees no Apple-silicon MPS here", "set device: auto (or cpu)")
    return requested


def check_method(method: str, device: str) -> None:
    """Refuse what a device cannot run: QLoRA's 4-bit kernels (bitsandbytes) do not exist for MPS."""
    if method == "qlora" and device == "mps":
        raise FintuneError("method: qlora needs bitsandbytes, which has no Apple MPS kernels",
                           "use method: lora on a Mac (or set device: cpu to run QLoRA slowly on the CPU)")


def inference_dtype(device: str, dtype: str = "auto") -> str:
    """The dtype name models are loaded in for inference on ``device`` (an explicit ``dtype`` is kept)."""
    if dtype != "auto":
        return dtype
    if device == "mps":
        return "bfloat16" if mps_bf16_supported() else "float16"
    if device == "cpu":
        return "float32"
    return "auto"  # CUDA: the checkpoint's own dtype


def training_bf16(device: str, setting: bool | str = "auto") -> bool:
    """The recipe's ``bf16`` (``auto`` resolved for ``device``): whether the trainer autocasts to bfloat16."""
    if setting != "auto":
        return bool(setting)
    if device == "mps":
        return mps_bf16_supported()
    from fintune.train.precision import bf16_supported

    return bf16_supported() if device in ("cuda", "cpu") else False


def move_to(model: Any, device: str) -> Any:
    """Put a loaded model on ``device`` (4-bit/8-bit bitsandbytes models stay where they were loaded)."""
    if device == "cpu" or getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        return model
    return model.to(device)
