"""Fast CPU/GPU arithmetic for training that does not change what the model learns.

Three pieces, measured in ``benchmarks/train_throughput.py`` and ``benchmarks/train_step_profile.py``:

* :func:`fp32_matmul_precision` lets float32 matrix multiplies run on bfloat16 (CPU AMX / AVX512-BF16) or TF32
  (Ampere+ GPU) units with float32 accumulation and float32 outputs: weights, activations, sums and the optimizer
  stay float32, only the products inside a matmul are rounded. On the 2-core dev CPU the linear layers run ~4x faster
  and a LoRA run logs the same losses as plain float32 to 2-3 digits.
* :func:`keep_lora_sum_fp32` fixes bf16 *autocast* for LoRA on float32 weights. Under autocast the frozen base
  layer returns bfloat16 and peft adds the LoRA branch to it in bfloat16; early in training the LoRA branch is ~1e-3
  of the base output, below half a bf16 ulp of it, so the update is rounded away and the first steps learn almost
  nothing (measured: loss after step 1 1.97 vs 1.44 in float32). Returning the base output in float32 keeps the sum
  exact; the next layer's matmul still runs in bf16.
* :func:`compile_decoder_layers` compiles each transformer block with ``torch.compile`` (recipe key
  ``torch_compile``), fusing the elementwise work (RMSNorm, rotary, SiLU, the LoRA scale-and-add) that is about a
  quarter of a CPU step (1.22x faster steps on the FPB recipe). The blocks share one compiled graph, so
  compiling costs about a minute, not one per layer; the LM head stays eager because its answer-only
  ``logits_to_keep`` changes size every batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fintune.device import bf16_supported
from fintune.errors import FintuneError

PRECISIONS = ("auto", "ieee", "bf16", "tf32")


def resolve_fp32_matmul_precision(setting: str) -> str:
    """``auto`` -> ``bf16`` on a CPU with AMX/AVX512-BF16, ``tf32`` on an Ampere+ GPU, else ``ieee`` (exact)."""
    import torch

    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "tf32" if torch.cuda.get_device_capability()[0] >= 8 else "ieee"
    return "bf16" if bf16_supported() else "ieee"


def _backend() -> Any:
    import torch

    return torch.backends.cuda.matmul if torch.cuda.is_available() else torch.backends.mkldnn.matmul


@contextmanager
def fp32_matmul_precision(setting: str) -> Iterator[str]:
    """Run the body with float32 matmuls at ``setting`` (see :func:`resolve_fp32_matmul_precision`); restore after.

    Yields the resolved precision. ``tf32`` on a CPU or ``bf16`` on a GPU is not available and falls back to
    ``ieee`` (reported in the yielded value), so a recipe written for one machine still runs on another.
    """
    import torch

    resolved = resolve_fp32_matmul_precision(setting)
    on_gpu = torch.cuda.is_available()
    if resolved == "ieee" or (resolved == "tf32") != on_gpu:
        yield "ieee"
        return
    backend = _backend()
    previous = backend.fp32_precision
    backend.fp32_precision = resolved
    try:
        yield resolved
    finally:
        backend.fp32_precision = previous


def keep_lora_sum_fp32(model: Any) -> int:
    """Make every LoRA layer's frozen base output float32 so ``base + lora`` is summed in float32 under autocast.

    Only needed (and only applied by the trainer) when bf16 autocast runs over float32 base weights. Returns how
    many layers were hooked.
    """
    from peft.tuners.lora import LoraLayer

    def _to_fp32(_module: Any, _inputs: Any, output: Any) -> Any:
        return output.float() if output.is_floating_point() else output

    hooked = 0
    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.get_base_layer().register_forward_hook(_to_fp32)
            hooked += 1
    return hooked


def decoder_layers(model: Any) -> Any:
    """The model's stack of transformer blocks: the longest ``nn.ModuleList`` (``model.layers``, ``h``, ...)."""
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    return max(lists, key=len, default=None)


def compile_decoder_layers(model: Any) -> int:
    """Compile every decoder layer in place (``nn.Module.compile``, dynamic shapes); returns how many.

    In place, so parameter names, ``state_dict`` keys and the saved adapter are unchanged. Dynamic shapes because
    packed batches vary in rows and width; without it every new shape would recompile.
    """
    import shutil

    import torch

    if not torch.cuda.is_available() and not any(shutil.which(c) for c in ("g++", "clang++", "c++")):
        raise FintuneError("recipe key 'torch_compile': compiling for the CPU needs a C++ compiler (g++ or clang++)",
                           "install one, or set torch_compile: false")
    layers = decoder_layers(model)
    if layers is None:
        return 0
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)
