"""Multi-process runs: rank helpers, the shipped accelerate configs, the launch command line.

Rank helpers (the one place ``fintune`` asks which process it is): :func:`world_size`, :func:`rank`,
:func:`is_main_process`, :func:`barrier` and :func:`main_process_first`. They read the launcher's environment
(``WORLD_SIZE`` / ``RANK``, set by ``torchrun``, ``accelerate launch`` and the DeepSpeed launcher), so they work
before the Trainer exists; the first barrier of a multi-process run sets up the process group through accelerate's
``PartialState`` (gloo on the CPU, nccl on CUDA), the same group the Trainer then uses. In a single process every
helper is a no-op and nothing distributed is initialised. Only the main process writes run files; the others wait.

Shipped configs (``configs/accelerate/``, run from the repository root because the DeepSpeed ones name
``configs/deepspeed/*.json`` relatively):

- ``ddp.yaml``   DDP, one model copy per GPU;
- ``zero2.yaml`` DeepSpeed ZeRO-2 (optimizer states + gradients sharded);
- ``zero3.yaml`` DeepSpeed ZeRO-3 (weights sharded too);
- ``fsdp.yaml``  FSDP full sharding, transformer-layer wrapping.

``accelerate launch --config_file configs/accelerate/fsdp.yaml -m fintune train RECIPE`` runs a recipe on every
visible GPU (``--num_processes N`` overrides the count in the file). Sharding 4-bit weights needs them stored in
the same dtype as the rest of the model: :func:`fintune.device.quant_storage_dtype_for` (with the launch detection
and :func:`~fintune.device.world_size`, in the lower layer so ``models`` needs nothing from ``train``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fintune.device import deepspeed_zero_stage, launch_kind, world_size
from fintune.errors import FintuneError

CONFIGS_DIR = Path(__file__).resolve().parents[3] / "configs" / "accelerate"
SHIPPED_CONFIGS = ("ddp", "zero2", "zero3", "fsdp")


def rank(env: Mapping[str, str] | None = None) -> int:
    """This process's global rank (``RANK``; 0 in a single process)."""
    env = os.environ if env is None else env
    return int(env.get("RANK", "0") or 0)


def is_main_process(env: Mapping[str, str] | None = None) -> bool:
    """True on the one process that writes run files (global rank 0)."""
    return rank(env) == 0


def _process_group_ready() -> bool:
    """Set up the default process group if this is a multi-process run; True when one is usable."""
    if world_size() == 1:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        from accelerate import PartialState

        PartialState()  # picks the backend (gloo on CPU, nccl on CUDA) and calls init_process_group
    return dist.is_initialized()


def barrier() -> None:
    """Wait until every process reaches this point (a no-op in a single process)."""
    if _process_group_ready():
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[bool]:
    """Run the block on the main process first, then on the others (which wait at a barrier meanwhile).

    Yields :func:`is_main_process`, so a block can write only on the main process and read on the others::

        with main_process_first() as main:
            if main:
                prepare(...)
        data = read(...)
    """
    main = is_main_process()
    if not main:
        barrier()
    yield main
    if main:
        barrier()


SHARDINGS = ("none", "ddp", "zero1", "zero2", "zero3", "fsdp")
# FSDP sharding strategies (names or accelerate's 1-5 numbering) -> the ZeRO stage they match in memory
_FSDP_SHARDING = {"FULL_SHARD": "fsdp", "1": "fsdp", "SHARD_GRAD_OP": "zero2", "2": "zero2", "NO_SHARD": "ddp",
                  "3": "ddp", "HYBRID_SHARD": "fsdp", "4": "fsdp", "HYBRID_SHARD_ZERO2": "zero2", "5": "zero2"}


def parallel_layout(config: str | Path | None = None, num_processes: int | None = None) -> tuple[str, int]:
    """(sharding, processes) of a launch: ``none``/``ddp``/``zero1``/``zero2``/``zero3``/``fsdp`` and the count.

    Without ``config`` several processes mean DDP. With one (a shipped name or an accelerate YAML) the sharding
    comes from its ``distributed_type``, ZeRO stage or FSDP sharding strategy, and the count from
    ``num_processes`` when not given.
    """
    if num_processes is not None and num_processes < 1:
        raise FintuneError(f"--num-processes {num_processes}: must be at least 1")
    if config is None:
        n = num_processes or 1
        return ("ddp" if n > 1 else "none"), n
    cfg = load_accelerate_config(config)
    n = num_processes or int(cfg.get("num_processes") or 1)
    kind = cfg.get("distributed_type")
    if kind == "DEEPSPEED":
        stage = (cfg.get("deepspeed_json") or {}).get("zero_optimization", {}).get(
            "stage", (cfg.get("deepspeed_config") or {}).get("zero_stage", 0))
        sharding = {0: "ddp", 1: "zero1", 2: "zero2", 3: "zero3"}[int(stage)]
    elif kind == "FSDP":
        fsdp = cfg.get("fsdp_config") or {}
        strategy = str(fsdp.get("fsdp_sharding_strategy", "FULL_SHARD")).upper()
        if fsdp.get("fsdp_version") == 2:
            strategy = "FULL_SHARD" if fsdp.get("fsdp_reshard_after_forward", True) else "SHARD_GRAD_OP"
        sharding = _FSDP_SHARDING.get(strategy, "fsdp")
    else:
        sharding = "ddp"
    return (sharding if n > 1 else "none"), n


def current_layout(env: Mapping[str, str] | None = None) -> tuple[str, int]:
    """:func:`parallel_layout` of the running process, read from the launcher's environment."""
    env = os.environ if env is None else env
    n, kind = world_size(env), launch_kind(env)
    if n == 1:
        return "none", 1
    if kind == "deepspeed":
        kind = {1: "zero1", 2: "zero2"}.get(deepspeed_zero_stage(env) or 0, "ddp")
    return kind, n


def resolve_config(config: str | Path) -> Path:
    """A shipped config name (``ddp``, ``zero2``, ``zero3``, ``fsdp``) or a path to an accelerate YAML file."""
    path = Path(config)
    if str(config) in SHIPPED_CONFIGS:
        path = CONFIGS_DIR / f"{config}.yaml"
    if not path.is_file():
        raise FintuneError(f"accelerate config {config}: not found",
                           f"use one of {', '.join(SHIPPED_CONFIGS)} or a path to a YAML file")
    return path


def load_accelerate_config(config: str | Path) -> dict[str, Any]:
    """Parse an accelerate config with accelerate's own loader; check the DeepSpeed JSON it names exists.

    Relative DeepSpeed paths are resolved against the repository root, where ``accelerate launch`` is run.
    """
    from accelerate.commands.config.config_args import load_config_from_file

    path = resolve_config(config)
    try:
        parsed = load_config_from_file(str(path)).to_dict()
    except (TypeError, ValueError, KeyError) as exc:
        raise FintuneError(f"{path}: not a valid accelerate config ({str(exc).splitlines()[0]})",
                           "regenerate it with `accelerate config` or start from configs/accelerate/ddp.yaml") from None
    ds_file = (parsed.get("deepspeed_config") or {}).get("deepspeed_config_file")
    if ds_file:
        ds_path = Path(ds_file) if Path(ds_file).is_absolute() else CONFIGS_DIR.parents[1] / ds_file
        if not ds_path.is_file():
            raise FintuneError(f"{path}: deepspeed_config_file {ds_file} not found",
                               "run accelerate from the repository root or give an absolute path")
        try:
            parsed["deepspeed_json"] = json.loads(ds_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise FintuneError(f"{ds_path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    return parsed


def launch_command(config: str | Path, recipe: str | Path, num_processes: int | None = None,
                   overrides: list[str] | None = None, verb: str = "train") -> list[str]:
    """``accelerate launch --config_file CONFIG [--num_processes N] -m fintune train RECIPE [--set k=v ...]``."""
    cmd = ["accelerate", "launch", "--config_file", str(resolve_config(config))]
    if num_processes is not None:
        if num_processes < 1:
            raise FintuneError(f"num_processes {num_processes}: must be at least 1")
        cmd += ["--num_processes", str(num_processes)]
    cmd += ["-m", "fintune", verb, str(recipe)]
    for item in overrides or []:
        cmd += ["--set", item]
    return cmd


def launch_command_line(config: str | Path, recipe: str | Path, num_processes: int | None = None,
                        overrides: list[str] | None = None) -> str:
    """:func:`launch_command` as one shell-quoted line (for docs and recipe headers)."""
    return shlex.join(launch_command(config, recipe, num_processes, overrides))
