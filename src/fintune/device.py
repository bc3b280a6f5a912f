"""Which device training and inference use, and the dtypes that go with it.

``auto`` (the default of the recipe's ``device:`` key) picks a CUDA GPU, else Apple-silicon MPS, else the CPU;
``cuda``, ``mps`` and ``cpu`` force one (an unavailable one is a one-line error). Per device:

- CUDA: inference in the checkpoint's dtype; training with bf16 autocast where the GPU has it.
- MPS: inference in bfloat16 (macOS 14+, what transformers also checks) else float16; training keeps float32
  master weights with bf16 autocast on macOS 14+ (no fp16 autocast: its gradient scaler is unreliable on MPS).
  bitsandbytes has no MPS kernels, so ``method: qlora`` there is an error that suggests LoRA.
- CPU: float32 weights (half-precision weights are slow and train badly there); bf16 autocast on a CPU with
  AVX512-BF16/AMX.

How the process was launched (:func:`world_size`, :func:`launch_kind`: single, DDP, DeepSpeed ZeRO, FSDP) lives
here too, with the QLoRA storage dtype that follows from it (:func:`quant_storage_dtype_for`: sharding 4-bit weights
under FSDP / ZeRO-3 needs them stored in the model dtype, as FSDP flattens all parameters of a unit into one tensor
and ZeRO-3 partitions them the same way); ``models`` reads it without importing ``train``.

Only the resolution logic is tested here (by monkeypatching torch's availability checks): the MPS path has not
been run on Apple hardware.
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fintune.errors import FintuneError

DEVICES = ("auto", "cuda", "mps", "cpu")
_REPO = Path(__file__).resolve().parents[2]
_STORAGE_DTYPES = ("bfloat16", "float16", "float32")


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


def bf16_supported() -> bool:
    """True when bf16 autocast is fast here: a CUDA GPU with bf16, or a CPU with AVX512-BF16/AMX."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def training_bf16(device: str, setting: bool | str = "auto") -> bool:
    """The recipe's ``bf16`` (``auto`` resolved for ``device``): whether the trainer autocasts to bfloat16."""
    if setting != "auto":
        return bool(setting)
    if device == "mps":
        return mps_bf16_supported()
    return bf16_supported() if device in ("cuda", "cpu") else False


def move_to(model: Any, device: str) -> Any:
    """Put a loaded model on ``device`` (4-bit/8-bit bitsandbytes models stay where they were loaded)."""
    if device == "cpu" or getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        return model
    return model.to(device)


# ---------------------------------------------------------------- how this process was launched


def world_size(env: Mapping[str, str] | None = None) -> int:
    """How many processes this run has (``WORLD_SIZE``; 1 when not launched by a distributed launcher)."""
    env = os.environ if env is None else env
    return max(1, int(env.get("WORLD_SIZE", "1") or 1))


def _truthy(value: str | None) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def deepspeed_zero_stage(env: Mapping[str, str]) -> int | None:
    """The ZeRO stage of a DeepSpeed launch (from accelerate's env, or the DeepSpeed JSON it names), else None."""
    if not _truthy(env.get("ACCELERATE_USE_DEEPSPEED")):
        return None
    if env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE"):
        return int(env["ACCELERATE_DEEPSPEED_ZERO_STAGE"])
    config_file = env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    if config_file:
        path = Path(config_file)
        if not path.exists() and not path.is_absolute():
            path = _REPO / config_file
        if path.exists():
            try:
                stage = json.loads(path.read_text(encoding="utf-8")).get("zero_optimization", {})
            except json.JSONDecodeError as exc:
                raise FintuneError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
            return int(stage.get("stage", 0))
    # ZeRO-3 init is only ever switched on for stage 3
    return 3 if _truthy(env.get("ACCELERATE_DEEPSPEED_ZERO3_INIT")) else 0


def launch_kind(env: Mapping[str, str] | None = None) -> str:
    """How this process was launched: 'fsdp', 'zero3', 'deepspeed' (ZeRO 0-2), 'ddp' or 'single'."""
    env = os.environ if env is None else env
    if _truthy(env.get("ACCELERATE_USE_FSDP")):
        return "fsdp"
    stage = deepspeed_zero_stage(env)
    if stage is not None:
        return "zero3" if stage == 3 else "deepspeed"
    if world_size(env) > 1:
        return "ddp"
    return "single"


def quant_storage_dtype_for(launch_env: Mapping[str, str] | str | None, dtype: str) -> str:
    """``bnb_4bit_quant_storage`` for QLoRA: the model dtype under FSDP / ZeRO-3, else ``uint8``.

    Args:
        launch_env: the process environment (``os.environ``; None reads it), or a :func:`launch_kind` name.
        dtype: the model's load dtype (``bfloat16``, ``float16``, ``float32``; ``auto`` counts as bfloat16).
    """
    kind = launch_env if isinstance(launch_env, str) else launch_kind(launch_env)
    if kind not in ("fsdp", "zero3"):
        return "uint8"
    dtype = "bfloat16" if dtype == "auto" else str(dtype).removeprefix("torch.")
    if dtype not in _STORAGE_DTYPES:
        raise FintuneError(f"dtype {dtype!r}: QLoRA under {kind} stores 4-bit weights in the model dtype",
                           f"set dtype to one of {', '.join(_STORAGE_DTYPES)}")
    return dtype
