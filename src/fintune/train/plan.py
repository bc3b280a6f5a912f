"""``fintune plan``: trainable parameters and peak training memory, before a run.

Parameters are counted exactly: the real model class is built on the meta device from ``config.json`` alone (no
weights are read) and the real ``peft.get_peft_model`` attaches the adapters to it. The memory estimate is a sum of
terms, each a formula of the model shape (h = hidden_size, h_q = heads * head_dim, kv = kv_heads * head_dim,
i = intermediate_size, L = layers, V = vocab), the batch b and sequence length s, and e = bytes of the compute
dtype (4 for float32, 2 for bfloat16/float16):

- ``weights``: base parameters x bytes of their dtype. QLoRA stores every Linear weight of the decoder as NF4/FP4:
  0.5 byte/param plus one absmax per block of 64 (fp32 = 4/64 byte/param; with double quantization the absmax are
  8-bit with an fp32 constant per 256 blocks: 1/64 + 4/(64*256) byte/param); embeddings, norms and ``lm_head``
  are upcast to fp32 by peft's ``prepare_model_for_kbit_training`` (4 bytes/param).
- ``adapter``: LoRA parameters in float32 (peft keeps adapters in fp32 for half-precision bases), r*(in+out) per
  targeted Linear. Full fine-tuning has no adapter: the trainable parameters are the weights themselves.
- ``gradients``: one gradient per trainable parameter, in the trainable parameter's dtype.
- ``optimizer``: AdamW keeps two states per trainable parameter in the parameter's dtype (8 bytes/param for fp32
  LoRA); 8-bit AdamW 2 bytes/param; SGD none (momentum 0); Adafactor ~4 bytes/param (factored second moment).
- ``activations`` (what autograd saves for backward, per token and layer; checked against autograd's saved
  tensors in tests/train/test_plan.py): the fp32 inputs of the two RMSNorms (4 * 2h); in e bytes q, k, v after
  RoPE (h_q + 2kv, or 3h_q when K/V are repeated for grouped-query attention because a padding mask is present
  or attention is eager), the attention output (h_q) and the SwiGLU gate, SiLU(gate) and up (3i); fused SDPA's
  log-sum-exp (4 * heads), or eager attention's softmax (heads * s * 4, plus e when e != 4). Linear inputs are kept
  only for trainable weights: full fine-tuning keeps the four distinct ones in e (2h + h_q + i); LoRA keeps, per
  targeted Linear, the fp32 input of its A matrix: shared by q/k/v and by gate/up when nothing copies it (fp32
  base, no dropout: 4 * distinct inputs), one fp32 cast per target on half-precision bases (4 * in), and with
  dropout the dropout output plus its mask (5 * in on CUDA, whose fused kernel keeps a bool mask; 8 * in on CPU,
  which keeps a float mask); plus r * 4 for each A output. Without checkpointing: L layers of that plus the
  final norm and the head's input. With gradient checkpointing only each layer's input is kept (L * h * e) plus
  one layer's activations while it is recomputed in backward.
- ``backward_transient``: gradients flowing through one layer during backward, b*s*(2h + 2i)*e.
- ``logits``: f*b*s*V*(e + 12): the logits in e, then the loss's fp32 log-softmax output, and in backward the fp32
  gradient of the loss and of the log-softmax (the loss upcasts logits to fp32). f = the share of positions whose
  logits are computed: fintune's answer-only loss computes them only where the next token is trained, so f is
  the trained-token share (1.0, the default, is the upper bound and what pre-training uses).
- ``runtime``: fixed cost outside the tensors: 0 on CPU (compare against the growth of RSS), ~0.75 GiB on CUDA
  (context, kernels, cuBLAS workspace).

On CPU the estimate is of live memory. glibc's heap keeps the holes freed tensors leave, so peak RSS ran 1.5-1.6x
the estimate in benchmarks/plan_accuracy.py; with ``MALLOC_MMAP_THRESHOLD_=131072`` (large blocks mmapped and
returned at once) peak RSS growth was 5% (no checkpointing) and 16% (checkpointing) under it
(BENCHMARKS.plan.md).

Several processes (``--num-processes N``, ``--config ddp|zero2|zero3|fsdp``): every figure is per device.
DDP replicates everything and its reducer keeps one more copy of the gradients in flat buckets (``ddp_buckets``).
ZeRO-2 (and FSDP ``SHARD_GRAD_OP``) shards gradients and optimizer states: each /N. ZeRO-3 and FSDP ``FULL_SHARD``
shard the decoder layers' weights and the adapter too (/N); the embeddings and head stay whole (FSDP's root unit
holds them gathered for the whole step), and the layer being computed plus the one prefetched are gathered in
full (``gathered_weights`` = 2 layers). Activations and logits depend on the per-device batch only.

Peak = the sum (a deliberate upper bound: gradients of full fine-tuning and activations are not all alive at the
same moment, but the optimizer's temporaries fill much of that gap).

Why QLoRA percentages differ: a ``bitsandbytes`` 4-bit weight is stored packed, two values per uint8, so
``sum(p.numel())`` over a 4-bit model counts each quantized Linear at half its size; the often-quoted 1.33% for
Llama-3.2-3B with r=16 on all projections is that undercount (24.3M / 1.83B). The real model has 3.24B
parameters and 0.75% of them train.

The text report and the advice after an out-of-memory error are worded in :mod:`fintune.train.plan_advice`.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fintune.errors import FintuneError
from fintune.model_ids import resolve_model
from fintune.train.distributed import parallel_layout

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
NF4_BLOCKSIZE = 64
DOUBLE_QUANT_BLOCKSIZE = 256
CUDA_RUNTIME_BYTES = 768 * 2**20
OPTIMIZER_STATE_BYTES = {"adamw": None, "8bit": 2.0, "sgd": 0.0, "adafactor": 4.0}
# Linear layers that read the same input tensor (their LoRA inputs coincide when no dropout or cast copies them).
_SHARED_INPUT = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "query": "qkv", "key": "qkv", "value": "qkv",
                 "gate_proj": "gate_up", "up_proj": "gate_up", "w1": "gate_up", "w3": "gate_up"}
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass
class ModelShape:
    """The dimensions of a decoder-only model that the memory formulas need."""

    model_type: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int | None
    config_dtype: str | None


@dataclass
class ParamCounts:
    """Exact parameter counts of the model as it will be trained."""

    total_params: int
    base_params: int
    trainable_params: int
    adapter_params: int
    analytic_adapter_params: int
    quantizable_params: int
    target_modules: list[str] = field(default_factory=list)
    lora_targets: int = 0
    lora_input_features: int = 0
    lora_distinct_input_features: int = 0

    @property
    def trainable_percent(self) -> float:
        """Trainable share of all parameters, in percent."""
        return 100.0 * self.trainable_params / self.total_params if self.total_params else 0.0

    @property
    def packed_4bit_params(self) -> int:
        """What ``sum(p.numel())`` reports on a 4-bit model: quantized weights packed two per byte."""
        return self.total_params - self.quantizable_params + self.quantizable_params // 2


def parse_bytes(text: str | int) -> int:
    """``8GB`` / ``7.5GiB`` / ``512MiB`` / ``1e9`` -> bytes (GB = 10^9, GiB = 2^30)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise FintuneError(f"--budget {text!r}: not a memory size", "write e.g. 8GB, 7.5GiB or 512MiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_bytes(n: float) -> str:
    """Bytes as GiB/MiB with two decimals."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def resolve_model_source(name_or_path: str) -> str:
    """A directory holding ``config.json`` as given, else what :func:`fintune.model_ids.resolve_model` makes of the
    name (an alias's cached directory or a hub id); a directory without config.json is a one-line error."""
    path = Path(name_or_path).expanduser()
    if (path / "config.json").exists():
        return str(path)
    if path.exists():
        raise FintuneError(f"model_name_or_path '{name_or_path}': no config.json there",
                           "point it at a local model directory (a directory with only config.json is enough)")
    return resolve_model(name_or_path)


def load_model_config(name_or_path: str, trust_remote_code: bool = False) -> Any:
    """The transformers config of a model directory, alias or cached hub id (no weights are read)."""
    from transformers import AutoConfig

    source = resolve_model_source(name_or_path)
    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (ValueError, OSError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FintuneError(f"{source}/config.json: cannot be read as a transformers config ({first})") from None


def model_shape(config: Any) -> ModelShape:
    """Read the dimensions from a transformers config (``text_config`` for multimodal wrappers)."""
    cfg = getattr(config, "text_config", None) or config
    hidden = int(cfg.hidden_size)
    heads = int(cfg.num_attention_heads)
    head_dim = int(getattr(cfg, "head_dim", None) or hidden // heads)
    dtype = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None)
    dtype = str(dtype).removeprefix("torch.") if dtype is not None else None
    return ModelShape(
        model_type=str(cfg.model_type), hidden_size=hidden,
        intermediate_size=int(getattr(cfg, "intermediate_size", None) or 4 * hidden),
        num_layers=int(cfg.num_hidden_layers), num_heads=heads,
        num_kv_heads=int(getattr(cfg, "num_key_value_heads", None) or heads), head_dim=head_dim,
        vocab_size=int(cfg.vocab_size), max_position_embeddings=getattr(cfg, "max_position_embeddings", None),
        config_dtype=dtype if dtype in DTYPE_BYTES else None,
    )


def count_parameters(config: Any, method: str = "lora", lora_r: int = 16,
                     target_modules: list[str] | str = "all-linear",
                     modules_to_save: list[str] | None = None, trust_remote_code: bool = False) -> ParamCounts:
    """Count parameters exactly on a meta-device model with the real peft adapters attached.

    ``analytic_adapter_params`` is r*(in+out) summed over the Linear layers peft targeted, a cross-check of the
    count peft reports. ``quantizable_params`` are the Linear weights QLoRA would store in 4 bits (all but the
    output head).
    """
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    base = sum(p.numel() for p in model.parameters())
    out_emb = model.get_output_embeddings()
    head_weight = getattr(out_emb, "weight", None)
    quantizable = sum(m.weight.numel() for m in model.modules()
                      if isinstance(m, torch.nn.Linear) and m.weight is not head_weight)
    if method == "full":
        return ParamCounts(total_params=base, base_params=base, trainable_params=base, adapter_params=0,
                           analytic_adapter_params=0, quantizable_params=quantizable)
    from peft import LoraConfig, get_peft_model

    lora_config = LoraConfig(r=lora_r, lora_alpha=2 * lora_r, target_modules=target_modules,
                             modules_to_save=modules_to_save, task_type="CAUSAL_LM")
    try:
        with warnings.catch_warnings():  # transformers' deprecation notice from inside peft, not actionable here
            warnings.simplefilter("ignore", FutureWarning)
            peft_model = get_peft_model(model, lora_config)
    except ValueError as exc:
        raise FintuneError(f"target_modules {target_modules!r}: {str(exc).splitlines()[0]}",
                           "use names of Linear layers of this model, e.g. q_proj,v_proj, or all-linear") from None
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    analytic, targets, in_features, names, inputs = 0, 0, 0, set(), {}
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and hasattr(module, "base_layer") and "default" in module.lora_A:
            base_layer = module.get_base_layer()
            analytic += lora_r * (base_layer.in_features + base_layer.out_features)
            targets += 1
            in_features += base_layer.in_features
            parent, leaf = name.rsplit(".", 1) if "." in name else ("", name)
            names.add(leaf)
            inputs[(parent, _SHARED_INPUT.get(leaf, leaf))] = base_layer.in_features
    adapter = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    return ParamCounts(total_params=total, base_params=base, trainable_params=trainable, adapter_params=adapter,
                       analytic_adapter_params=analytic, quantizable_params=quantizable,
                       target_modules=sorted(names), lora_targets=targets, lora_input_features=in_features,
                       lora_distinct_input_features=sum(inputs.values()))


@dataclass
class TrainSettings:
    """The settings the memory formulas read (resolved from a recipe by :func:`settings_from_recipe`)."""

    method: str = "lora"
    batch_size: int = 8
    seq_len: int = 512
    gradient_checkpointing: bool = False
    weight_dtype: str = "bfloat16"
    compute_dtype: str = "bfloat16"
    optim: str = "adamw_torch"
    lora_r: int = 16
    lora_dropout: float = 0.05
    double_quant: bool = True
    attn_implementation: str = "sdpa"
    padding_mask: bool = True
    device: str = "cuda"
    logits_fraction: float = 1.0
    num_processes: int = 1
    sharding: str = "none"  # none | ddp | zero1 | zero2 | zero3 | fsdp (fintune.train.distributed.parallel_layout)


def _optimizer_kind(optim: str) -> str:
    name = optim.lower()
    if "8bit" in name:
        return "8bit"
    if name.startswith("sgd"):
        return "sgd"
    if name.startswith("adafactor"):
        return "adafactor"
    return "adamw"


def _shard(s: TrainSettings, weights: float, adapter: float, gradients: float, optimizer: float,
           layer_weights: float, num_layers: int) -> tuple[float, float, float, float, float, float]:
    """Per-device (weights, adapter, gradients, optimizer, gathered_weights, ddp_buckets) under ``s.sharding``."""
    n = max(1, s.num_processes)
    if n == 1 or s.sharding == "none":
        return weights, adapter, gradients, optimizer, 0.0, 0.0
    if s.sharding == "ddp":
        return weights, adapter, gradients, optimizer, 0.0, gradients
    gathered = 0.0
    if s.sharding in ("zero3", "fsdp"):
        gathered = 2 * layer_weights / num_layers
        weights = weights - layer_weights + layer_weights / n
        adapter /= n
    if s.sharding in ("zero2", "zero3", "fsdp"):
        gradients /= n
    return weights, adapter, gradients, optimizer / n, gathered, 0.0


def estimate_memory(shape: ModelShape, counts: ParamCounts, s: TrainSettings) -> dict[str, int]:
    """Peak training memory in bytes, one entry per term of the module docstring plus ``total``."""
    e = DTYPE_BYTES[s.compute_dtype]
    w = DTYPE_BYTES[s.weight_dtype]
    h, i, L = shape.hidden_size, shape.intermediate_size, shape.num_layers
    h_q, kv = shape.num_heads * shape.head_dim, shape.num_kv_heads * shape.head_dim
    tokens = s.batch_size * s.seq_len
    if s.method == "qlora":
        per_param = 0.5 + (1 / NF4_BLOCKSIZE + 4 / (NF4_BLOCKSIZE * DOUBLE_QUANT_BLOCKSIZE) if s.double_quant
                           else 4 / NF4_BLOCKSIZE)
        weights = counts.quantizable_params * per_param + (counts.base_params - counts.quantizable_params) * 4
    else:
        weights = counts.base_params * w
    trainable_bytes = w if s.method == "full" else 4
    adapter = 0 if s.method == "full" else counts.trainable_params * 4
    gradients = counts.trainable_params * trainable_bytes
    kind = _optimizer_kind(s.optim)
    state = OPTIMIZER_STATE_BYTES[kind]
    optimizer = counts.trainable_params * (2 * trainable_bytes if state is None else state)
    weights, adapter, gradients, optimizer, gathered, buckets = _shard(
        s, weights, adapter, gradients, optimizer,
        counts.quantizable_params * (per_param if s.method == "qlora" else w), L)

    eager = s.attn_implementation == "eager"
    repeat_kv = kv < h_q and (eager or s.padding_mask)
    layer_tok = 4 * 2 * h + e * (h_q + (2 * h_q if repeat_kv else 2 * kv) + h_q + 3 * i)
    if eager:
        layer_tok += shape.num_heads * s.seq_len * (4 if e == 4 else 4 + e)
    else:
        layer_tok += 4 * shape.num_heads  # log-sum-exp kept by fused SDPA kernels
    if s.method == "full":
        layer_tok += e * (2 * h + h_q + i)  # inputs of the four Linear groups, kept for the weight gradients
    elif counts.lora_targets:
        if s.lora_dropout > 0:  # dropout output (fp32) + its mask: bool on CUDA, a float noise tensor on CPU
            per_input = (4 + (1 if s.device == "cuda" else 4)) * counts.lora_input_features
        elif e == 4 and DTYPE_BYTES[s.weight_dtype] == 4:
            per_input = 4 * counts.lora_distinct_input_features
        else:
            per_input = 4 * counts.lora_input_features
        layer_tok += (per_input + 4 * s.lora_r * counts.lora_targets) / L
    one_layer = tokens * layer_tok
    if s.gradient_checkpointing:
        activations = tokens * L * h * e + one_layer
    else:
        activations = L * one_layer
    activations += tokens * (4 * h + e * h)  # final norm (fp32 copy) and the lm_head input
    backward = tokens * (2 * h + 2 * i) * e
    logits = tokens * s.logits_fraction * shape.vocab_size * (e + 12)
    runtime = CUDA_RUNTIME_BYTES if s.device == "cuda" else 0
    terms = {"weights": weights, "adapter": adapter, "gradients": gradients, "optimizer": optimizer,
             "activations": activations, "backward_transient": backward, "logits": logits, "runtime": runtime,
             "gathered_weights": gathered, "ddp_buckets": buckets}
    terms = {k: math.ceil(v) for k, v in terms.items()}
    terms["total"] = sum(terms.values())
    return terms


def _bf16_autocast(recipe: Any, device: str) -> bool:
    """Whether the trainer autocasts to bf16 (``bf16: auto`` = on for CUDA, on a CPU with AMX/AVX512-BF16)."""
    if recipe.bf16 != "auto":
        return bool(recipe.bf16)
    if device == "cuda":
        return True
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtypes(recipe: Any, shape: ModelShape, device: str) -> tuple[str, str]:
    """(dtype of the unquantized weights, dtype of the activations) for this recipe on ``device``.

    Mirrors ``fintune.models.load_model_and_tokenizer``: ``dtype: auto`` is the checkpoint's dtype on CUDA and
    float32 on CPU. QLoRA goes through peft's ``prepare_model_for_kbit_training``, which upcasts every weight that
    is not 4-bit (embeddings, norms, head) to float32. Activations are bf16 under bf16 autocast, else the weights'.
    """
    if recipe.method == "qlora":
        weight = "float32"
    elif recipe.dtype != "auto":
        weight = recipe.dtype
    elif device == "cpu":
        weight = "float32"
    else:
        weight = shape.config_dtype or "float32"
    compute = "bfloat16" if weight == "float32" and _bf16_autocast(recipe, device) else weight
    return weight, compute


def settings_from_recipe(recipe: Any, shape: ModelShape, device: str = "cuda", logits_fraction: float = 1.0,
                         num_processes: int = 1, sharding: str = "none") -> TrainSettings:
    """The :class:`TrainSettings` a recipe implies on ``device`` ('cuda' or 'cpu') per device of a
    ``num_processes``-process run sharded as ``sharding``."""
    if device not in ("cuda", "cpu"):
        raise FintuneError(f"--device {device!r}: unknown", "use cuda or cpu")
    if not 0.0 < logits_fraction <= 1.0:
        raise FintuneError(f"--trained-fraction {logits_fraction}: must be in (0, 1]",
                           "the share of token positions the loss trains on")
    weight, compute = resolve_dtypes(recipe, shape, device)
    return TrainSettings(
        method=recipe.method, batch_size=recipe.per_device_train_batch_size, seq_len=recipe.max_seq_length,
        gradient_checkpointing=recipe.gradient_checkpointing, weight_dtype=weight, compute_dtype=compute,
        optim=recipe.optim, lora_r=recipe.lora_r, lora_dropout=recipe.lora_dropout,
        double_quant=recipe.bnb_4bit_use_double_quant, attn_implementation=recipe.attn_implementation or "sdpa",
        padding_mask=not recipe.packing, device=device, logits_fraction=logits_fraction,
        num_processes=num_processes, sharding=sharding,
    )


def _largest(fits: Any, low: int, high: int) -> int | None:
    """Largest n in [low, high] with fits(n), for a monotone predicate; None when even ``low`` does not fit."""
    if not fits(low):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def fit_to_budget(shape: ModelShape, counts: ParamCounts, settings: TrainSettings, budget: int) -> dict[str, Any]:
    """The largest per-device batch (at the current length), then the longest length (at batch 1), that fit.

    Also answers the same with gradient checkpointing when it is off. Lengths are multiples of 64 up to the
    model's context.
    """
    max_len = int(shape.max_position_embeddings or 131072)

    def answer(s: TrainSettings) -> dict[str, Any]:
        def fits_batch(b: int) -> bool:
            return estimate_memory(shape, counts, replace_settings(s, batch_size=b))["total"] <= budget

        def fits_len(n: int) -> bool:
            return estimate_memory(shape, counts, replace_settings(s, batch_size=1, seq_len=64 * n))["total"] <= budget

        n = _largest(fits_len, 1, max(1, max_len // 64))
        return {"max_batch_size": _largest(fits_batch, 1, 1 << 16),
                "max_seq_length_at_batch_1": 64 * n if n else None}

    out: dict[str, Any] = {"budget_bytes": budget,
                           "fits": estimate_memory(shape, counts, settings)["total"] <= budget, **answer(settings)}
    if not settings.gradient_checkpointing:
        out["with_gradient_checkpointing"] = answer(replace_settings(settings, gradient_checkpointing=True))
    return out


def replace_settings(s: TrainSettings, **changes: Any) -> TrainSettings:
    """A copy of ``s`` with ``changes`` applied."""
    return TrainSettings(**{**asdict(s), **changes})


def plan(recipe: Any, budget: int | str | None = None, device: str = "cuda", logits_fraction: float = 1.0,
         num_processes: int | None = None, config: str | None = None) -> dict[str, Any]:
    """Everything ``fintune plan`` prints: parameter counts, memory terms, the budget fit and an explanation.

    ``num_processes`` / ``config`` (an accelerate config: ``ddp``, ``zero2``, ``zero3``, ``fsdp`` or a YAML path)
    make every memory figure per device of that launch (see :func:`fintune.train.distributed.parallel_layout`).
    """
    sharding, n = parallel_layout(config, num_processes)
    shape, counts, settings = plan_inputs(recipe, device, logits_fraction)
    settings = replace_settings(settings, num_processes=n, sharding=sharding)
    memory = estimate_memory(shape, counts, settings)
    other = replace_settings(settings, gradient_checkpointing=not settings.gradient_checkpointing)
    result: dict[str, Any] = {
        "model": recipe.model_name_or_path,
        "method": recipe.method,
        "trainable_params": counts.trainable_params,
        "total_params": counts.total_params,
        "trainable_percent": round(counts.trainable_percent, 4),
        "base_params": counts.base_params,
        "adapter_params": counts.adapter_params,
        "analytic_adapter_params": counts.analytic_adapter_params,
        "target_modules": counts.target_modules,
        "estimated_peak_bytes": memory["total"],
        "memory_terms": memory,
        "estimated_peak_bytes_other_checkpointing": estimate_memory(shape, counts, other)["total"],
        "settings": asdict(settings),
        "shape": asdict(shape),
    }
    if recipe.method == "qlora":
        packed = counts.packed_4bit_params
        result["packed_4bit_param_count"] = packed
        result["packed_4bit_trainable_percent"] = round(100.0 * counts.trainable_params / packed, 4)
        result["explanation"] = (
            f"bitsandbytes stores 4-bit weights packed two per uint8, so counting storage elements gives "
            f"{packed:,} parameters and {result['packed_4bit_trainable_percent']:.2f}% trainable; the model "
            f"really has {counts.total_params:,} parameters of which {counts.trainable_percent:.2f}% train.")
    if budget is not None:
        result["fit"] = fit_to_budget(shape, counts, settings, parse_bytes(budget))
    return result


def plan_inputs(recipe: Any, device: str,
                 logits_fraction: float = 1.0) -> tuple[ModelShape, ParamCounts, TrainSettings]:
    """Shape, exact counts and settings of a recipe (builds the meta model once)."""
    config = load_model_config(recipe.model_name_or_path, recipe.trust_remote_code)
    shape = model_shape(config)
    counts = count_parameters(config, recipe.method, recipe.lora_r, recipe.target_modules,
                              recipe.modules_to_save, recipe.trust_remote_code)
    return shape, counts, settings_from_recipe(recipe, shape, device, logits_fraction)
