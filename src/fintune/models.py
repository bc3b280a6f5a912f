"""Load and adapt models: load (dtype, 4-bit), attach LoRA, merge, lineage of runs.

Names resolve in :mod:`fintune.model_ids` (hub id, local directory, or the embedded default alias
``smollm2-135m``, pulled offline into the cache); its public names are re-exported here.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fintune.artifacts import atomic_output_dir, atomic_write_text, check_output_dir, write_manifest
from fintune.device import check_method, inference_dtype, move_to, quant_storage_dtype_for, resolve_device
from fintune.errors import FintuneError
from fintune.model_ids import ALIASES as ALIASES
from fintune.model_ids import Alias as Alias
from fintune.model_ids import alias_cache_dir as alias_cache_dir
from fintune.model_ids import fintune_home as fintune_home
from fintune.model_ids import list_models as list_models
from fintune.model_ids import pull_model as pull_model
from fintune.model_ids import resolve_model
from fintune.modelcard import model_card, warn_non_commercial
from fintune.recipe import Recipe
from fintune.run import RunManifest, TaskSpec, read_run


def _torch_dtype(dtype: str, config_dtype: Any = None) -> Any:
    import torch

    if dtype == "auto":
        # On CPU, half-precision master weights train badly and run slowly; bf16 autocast gives the speed instead.
        if not torch.cuda.is_available():
            return torch.float32
        return config_dtype if config_dtype is not None else "auto"
    return getattr(torch, dtype)


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> Any:
    """Load a tokenizer; a missing pad token falls back to eos (padding is masked out everywhere)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise FintuneError(f"cannot load tokenizer from '{name_or_path}': {str(exc).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model_and_tokenizer(name_or_path: str, dtype: str = "auto", method: str = "lora",
                             trust_remote_code: bool = False, recipe: Any = None) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer through ``from_pretrained`` (no adapter attached yet).

    ``method="qlora"`` loads the linear weights in 4-bit (bitsandbytes NF4/FP4, double quantization and compute
    dtype from ``recipe``). ``dtype="auto"`` means float32 on CPU and the checkpoint dtype on GPU.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolve_model(name_or_path)
    trust = bool(recipe.trust_remote_code) if recipe is not None else trust_remote_code
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust)
    except (OSError, ValueError) as exc:
        raise FintuneError(f"cannot load model config from '{name_or_path}': {str(exc).splitlines()[0]}") from None
    tok_path = (recipe.tokenizer_name_or_path if recipe is not None and recipe.tokenizer_name_or_path else path)
    tokenizer = load_tokenizer(resolve_model(tok_path) if tok_path != path else path, trust)
    kwargs: dict[str, Any] = {"dtype": _torch_dtype(dtype, getattr(config, "dtype", None)),
                              "trust_remote_code": trust}
    attn = recipe.attn_implementation if recipe is not None else None
    kwargs["attn_implementation"] = attn or "sdpa"
    prequantized = _bnb_4bit_checkpoint(config)
    if prequantized and method != "qlora":
        raise FintuneError(f"model '{name_or_path}' is a 4-bit bitsandbytes checkpoint; method '{method}' needs "
                           "unquantized weights", "set method: qlora, or point at the original model")
    if method == "qlora":
        check_method("qlora", resolve_device(recipe.device if recipe is not None else "auto"))
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise FintuneError("method=qlora needs bitsandbytes", 'pip install "fintune[qlora]"') from None
        from transformers import BitsAndBytesConfig

        compute = recipe.bnb_4bit_compute_dtype if recipe is not None else "auto"
        compute_dtype = torch.float32 if compute == "auto" and not torch.cuda.is_available() else (
            torch.bfloat16 if compute == "auto" else getattr(torch, compute))
        kwargs["dtype"] = compute_dtype
        if not prequantized:  # a `fintune models quantize` checkpoint brings its own quantization config
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=recipe.bnb_4bit_quant_type if recipe is not None else "nf4",
                bnb_4bit_use_double_quant=recipe.bnb_4bit_use_double_quant if recipe is not None else True,
                bnb_4bit_compute_dtype=compute_dtype,
                # FSDP / ZeRO-3 shard parameters of one dtype: store the packed 4-bit weights in the model dtype
                bnb_4bit_quant_storage=getattr(torch, quant_storage_dtype_for(os.environ, dtype)))
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise FintuneError(f"cannot load model '{name_or_path}': {str(exc).splitlines()[0]}") from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _bnb_4bit_checkpoint(config: Any) -> bool:
    """True when ``config.json`` says the weights on disk are already bitsandbytes 4-bit."""
    quant = getattr(config, "quantization_config", None)
    if quant is None:
        return False
    quant = quant if isinstance(quant, dict) else quant.to_dict()
    return quant.get("quant_method") == "bitsandbytes" and bool(quant.get("load_in_4bit"))


def save_quantized(name_or_path: str, out: str | Path, quant_type: str = "nf4", double_quant: bool = True,
                   overwrite: bool = False) -> Path:
    """Write a 4-bit bitsandbytes copy of a model (and its tokenizer) to ``out``; returns ``out``.

    QLoRA from such a checkpoint reads ~1/7 of the float32 bytes: quantizing on load reads every float32 weight
    through the memory-mapped checkpoint first, which on a CPU stays resident as page cache (BENCHMARKS.md measures
    both). The copy is written into a staging directory and renamed, so an interrupted run leaves nothing half-made.
    """
    check_output_dir(out, overwrite, runs=[name_or_path])  # before loading the model
    recipe = Recipe(model_name_or_path=str(name_or_path), method="qlora", bnb_4bit_quant_type=quant_type,
                    bnb_4bit_use_double_quant=double_quant)
    model, tokenizer = load_model_and_tokenizer(name_or_path, dtype="auto", method="qlora", recipe=recipe)
    with atomic_output_dir(out, overwrite, runs=[name_or_path]) as staging:
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
    return Path(out)


def context_length(model_or_config: Any) -> int | None:
    """The model's maximum context (``max_position_embeddings`` or equivalent), None when unknown."""
    config = getattr(model_or_config, "config", model_or_config)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def linear_module_names(model: Any) -> list[str]:
    """Leaf names of the linear layers LoRA can target (``q_proj``, ``dense_h_to_4h`` ...), output head excluded."""
    import torch

    names = set()
    for full, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, torch.nn.Linear) or kind in ("Linear4bit", "Linear8bitLt", "Conv1D"):
            leaf = full.rsplit(".", 1)[-1]
            if leaf not in ("lm_head", "embed_out"):
                names.add(leaf)
    return sorted(names)


def attach_lora(model: Any, recipe: Any) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter from ``recipe`` (r, alpha, dropout, target_modules, modules_to_save).

    Unknown target modules fail listing the ones that exist; QLoRA models go through
    ``prepare_model_for_kbit_training`` first.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    available = linear_module_names(model)
    targets = recipe.target_modules
    if targets != "all-linear":
        missing = [t for t in targets if t not in available]
        if missing:
            raise FintuneError(f"recipe key 'target_modules': {missing} not in the model",
                               f"modules that exist: {available} (or use all-linear)")
    if recipe.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=recipe.gradient_checkpointing)
    config = LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                        use_rslora=recipe.use_rslora, target_modules=targets, modules_to_save=recipe.modules_to_save, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def trainable_parameters(model: Any) -> tuple[int, int]:
    """``(trainable, all)`` parameters, counted the way peft counts them (4-bit weights unpacked)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def trainable_parameters_line(model: Any) -> str:
    """peft's ``print_trainable_parameters`` line."""
    trainable, total = trainable_parameters(model)
    return f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"


def is_adapter_dir(path: str | Path) -> bool:
    """True when ``path`` holds a PEFT adapter."""
    return (Path(path) / "adapter_config.json").exists()


def load_base_with_lineage(base: str, merged_adapters: list[str], dtype: str = "auto", method: str = "lora",
                           recipe: Any = None) -> tuple[Any, Any]:
    """Load ``base`` and merge each stage-1 adapter in ``merged_adapters`` into it, in order."""
    model, tokenizer = load_model_and_tokenizer(base, dtype=dtype, method=method if not merged_adapters else "lora",
                                                recipe=recipe)
    if merged_adapters:
        from peft import PeftModel

        for adapter in merged_adapters:
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model, tokenizer


@dataclass
class ModelInfo:
    """What :func:`load_for_inference` loaded: a run's adapter on its base, or a plain model (maybe a run)."""

    kind: str  # "adapter" | "model"
    base_model: str
    manifest: RunManifest | None = None

    @property
    def spec(self) -> TaskSpec | None:
        """The task spec the run recorded (None for a plain model without a manifest)."""
        return self.manifest.task_spec if self.manifest is not None else None

    @property
    def labels(self) -> list[str] | None:
        """The run's label set, if it recorded one."""
        return self.spec.labels if self.spec is not None else None

    @property
    def template(self) -> str | None:
        """The run's chat template, if it recorded one."""
        return self.spec.template if self.spec is not None else None

    @property
    def temperature(self) -> float | None:
        """A calibration temperature the run's manifest records, if any."""
        return self.manifest.temperature if self.manifest is not None else None


def load_for_inference(run_or_model: str, dtype: str = "auto",
                       device: str | None = None) -> tuple[Any, Any, ModelInfo]:
    """Load a run (base + adapter, typed manifest in ``info``) or a plain model (dir / hub id / alias) in eval
    mode. ``device`` (``auto``/``cuda``/``mps``/``cpu``, :mod:`fintune.device`) also picks the dtype for ``auto``
    and moves the model there; ``None`` keeps it on the CPU as loaded (merging)."""
    if device is not None:
        device = resolve_device(device)
        dtype = inference_dtype(device, dtype)
    path = Path(run_or_model)
    if path.is_dir() and is_adapter_dir(path):
        from peft import PeftModel

        manifest = read_run(path, "train")
        base_model, _ = load_base_with_lineage(manifest.base_model, manifest.merged_adapters, dtype=dtype)
        model = PeftModel.from_pretrained(base_model, str(path))
        tokenizer = load_tokenizer(str(path))
        info = ModelInfo(kind="adapter", base_model=manifest.base_model, manifest=manifest)
    else:
        manifest = read_run(path) if (path / "manifest.json").exists() else None
        model, tokenizer = load_model_and_tokenizer(run_or_model, dtype=dtype)
        info = ModelInfo(kind="model", base_model=run_or_model, manifest=manifest)
    if device is not None:
        model = move_to(model, device)
    model.eval()
    return model, tokenizer, info


def merge_run(run: str | Path, out: str | Path, dtype: str = "auto", overwrite: bool = False) -> Path:
    """Merge a run's adapter into its base and write a plain HF model directory (+ tokenizer, manifest)."""
    run = Path(run)
    if not is_adapter_dir(run):
        raise FintuneError(f"{run}: no adapter_config.json", "give a LoRA/QLoRA run directory from fintune train")
    check_output_dir(out, overwrite, runs=[run])  # before loading the model
    model, tokenizer, info = load_for_inference(str(run), dtype=dtype)
    manifest = info.manifest
    if manifest is not None and (manifest.recipe or {}).get("method") == "qlora":
        print("note: merging a QLoRA adapter into the full-precision base", file=sys.stderr)
    merged = model.merge_and_unload()
    with atomic_output_dir(out, overwrite, runs=[run]) as staging:
        merged.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        spec = info.spec
        write_manifest(staging, "merge", recipe=manifest.recipe if manifest else None,
                       seed=manifest.seed if manifest else None,
                       data_hashes=manifest.data_sha256 if manifest else None, parent=str(run),
                       base_model=info.base_model, labels=info.labels, template=info.template,
                       temperature=info.temperature, task_spec=spec.model_dump(mode="json") if spec else None,
                       licenses=dict(manifest.licenses) if manifest else {})
        atomic_write_text(staging / "README.md", model_card(manifest, info.base_model, f"{Path(out).name} (merged)",
                                                            ("merged", "lora")))
    warn_non_commercial(manifest.licenses if manifest else {}, f"merged model {out}")
    return Path(out)
