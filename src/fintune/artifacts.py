"""Run directories: atomic writes, file hashes and the manifest every artifact directory carries.

Work in progress is never lost and never half-written: files go to a temporary name in the same directory and are
renamed into place (atomic on POSIX); whole output directories are built beside the target and renamed at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from fintune.errors import FintuneError

MANIFEST = "manifest.json"
_TRACKED_PACKAGES = (
    "fintune", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "bitsandbytes", "numpy",
    "pandas", "scikit-learn", "tokenizers", "safetensors", "gguf",
)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared like any file
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON (indented, UTF-8, keys in insertion order) atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_output_dir(out: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a fresh staging directory that replaces ``out`` only if the block finishes without error.

    Nothing half-written ever appears at ``out``: on an exception the staging directory is removed and ``out``
    keeps whatever it held before.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FintuneError(f"{out}: exists and is not a directory", "choose another --out")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FintuneError(f"{out}: directory is not empty", "choose another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        trash = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, trash)
        os.replace(staging, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, out)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_paths(paths: list[str | Path]) -> dict[str, str]:
    """sha256 of every file under the given files/directories, keyed by path (sorted, stable)."""
    out: dict[str, str] = {}
    for p in paths:
        p = Path(p)
        files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        for f in files:
            out[str(f)] = sha256_file(f)
    return out


def package_versions(names: tuple[str, ...] = _TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide a result (missing ones are left out)."""
    out = {"python": platform.python_version()}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def git_sha(cwd: str | Path | None = None) -> str | None:
    """The current commit of the fintune source checkout (``+dirty`` when it has local changes), else None."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None

def find_licenses(paths: list[str] | dict[str, str]) -> dict[str, str]:
    """Data license per source folder: the first line under ``## License`` of the nearest ``PROVENANCE.md``
    (the shared data folders carry one), looked up at most three levels above each path."""
    out: dict[str, str] = {}
    for p in paths:
        here = Path(p).resolve()
        for folder in [here if here.is_dir() else here.parent, *list(here.parents)[:3]]:
            prov = folder / "PROVENANCE.md"
            if str(folder) in out or not prov.is_file():
                continue
            lines = prov.read_text(encoding="utf-8", errors="replace").splitlines()
            heads = [i for i, line in enumerate(lines) if line.lower().startswith("## licen")]
            if heads:
                body = next((x.strip() for x in lines[heads[0] + 1:] if x.strip()), "")
                out[str(folder)] = body[:300]
            break
    return out


def build_manifest(stage: str, recipe: dict[str, Any] | None = None, seed: int | None = None,
                   data_hashes: dict[str, str] | None = None, parent: str | None = None,
                   **extra: Any) -> dict[str, Any]:
    """The manifest dict: stage, resolved recipe, versions, git SHA, data hashes (and the licenses of the data
    folders they sit in), seed, lineage, world size, time. ``fintune.run.read_run`` reads it back typed."""
    return {
        "stage": stage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fintune_git_sha": git_sha(),
        "command": " ".join(sys.argv),
        "seed": seed,
        "parent_run": parent,
        "recipe": recipe,
        "data_sha256": data_hashes or {},
        "licenses": find_licenses(list(data_hashes or {})),
        "versions": package_versions(),
        "world_size": int(os.environ.get("WORLD_SIZE") or 1),
        **extra,
    }


def write_manifest(directory: str | Path, stage: str, **kwargs: Any) -> Path:
    """Build the manifest (see :func:`build_manifest`) and write it atomically to ``directory/manifest.json``."""
    return atomic_write_json(Path(directory) / MANIFEST, build_manifest(stage, **kwargs))


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read ``directory/manifest.json``; a missing or broken one is a one-line error."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise FintuneError(f"{path}: no manifest", "is this a fintune run directory?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FintuneError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
