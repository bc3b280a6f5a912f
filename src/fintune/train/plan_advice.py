"""What ``fintune plan`` prints and what to change after an out-of-memory error, from :mod:`fintune.train.plan`'s
numbers (the estimates stay there; this module only words them)."""

from __future__ import annotations

import contextlib
import math
import os
import re
from typing import Any

from fintune.errors import FintuneError
from fintune.train.distributed import current_layout
from fintune.train.plan import (
    estimate_memory,
    fit_to_budget,
    format_bytes,
    plan_inputs,
    replace_settings,
    settings_from_recipe,
)


def format_plan(result: dict[str, Any]) -> str:
    """The human-readable report of :func:`plan`."""
    s = result["settings"]
    lines = [
        f"model       {result['model']}  ({result['shape']['model_type']}, {result['method']})",
        f"parameters  {result['trainable_params']:,} trainable of {result['total_params']:,} "
        f"({result['trainable_percent']:.2f}%)",
        f"settings    batch {s['batch_size']} x {s['seq_len']} tokens, weights {s['weight_dtype']}, compute "
        f"{s['compute_dtype']}, gradient_checkpointing={s['gradient_checkpointing']}, device {s['device']}",
        f"processes   {s['num_processes']} ({s['sharding']}); memory is per device",
        "memory",
    ]
    for name, value in result["memory_terms"].items():
        if name != "total" and (value or name not in ("gathered_weights", "ddp_buckets")):
            lines.append(f"  {name:<20}{format_bytes(value):>12}")
    lines.append(f"  {'peak (estimate)':<20}{format_bytes(result['estimated_peak_bytes']):>12}")
    flip = "on" if not s["gradient_checkpointing"] else "off"
    lines.append(f"  with gradient_checkpointing {flip}: "
                 f"{format_bytes(result['estimated_peak_bytes_other_checkpointing'])}")
    if s["device"] == "cpu":
        lines.append("note        CPU: live memory; glibc heap fragmentation can raise peak RSS ~1.6x unless "
                     "MALLOC_MMAP_THRESHOLD_=131072 is set")
    if "explanation" in result:
        lines.append(f"note        {result['explanation']}")
    fit = result.get("fit")
    if fit:
        lines.append(f"budget      {format_bytes(fit['budget_bytes'])}: current settings "
                     f"{'fit' if fit['fits'] else 'do NOT fit'}; largest batch {fit['max_batch_size']} at "
                     f"{s['seq_len']} tokens; longest sequence at batch 1: {fit['max_seq_length_at_batch_1']}")
        gc = fit.get("with_gradient_checkpointing")
        if gc:
            lines.append(f"            with gradient_checkpointing: largest batch {gc['max_batch_size']}, longest "
                         f"sequence at batch 1: {gc['max_seq_length_at_batch_1']}")
    return "\n".join(lines)


def _budget_from_error(exc: BaseException) -> int | None:
    """The device capacity from a CUDA OOM message, else the free memory torch/psutil report."""
    m = re.search(r"total capacity of ([0-9.]+) (GiB|MiB)", str(exc))
    if m:
        return int(float(m.group(1)) * (2**30 if m.group(2) == "GiB" else 2**20))
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info()[1])
    with contextlib.suppress(Exception):
        import psutil

        return int(psutil.virtual_memory().total)
    return None


def explain_oom(recipe: Any, exc: BaseException, device: str | None = None) -> str:
    """What to change after an out-of-memory error, with the plan's numbers (one line, suggestions by '; ')."""
    if device is None:
        device = "cuda" if "CUDA" in str(exc) or os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu"
    what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    try:
        shape, counts, settings = plan_inputs(recipe, device)
    except FintuneError as err:
        return f"out of memory ({what}); the plan could not be computed: {err.one_line()}"

    sharding, n = current_layout()
    settings = replace_settings(settings, num_processes=n, sharding=sharding)
    terms = estimate_memory(shape, counts, settings)
    budget = _budget_from_error(exc)
    head = (f"out of memory: the plan estimates {format_bytes(terms['total'])} peak for batch "
            f"{settings.batch_size} x {settings.seq_len} tokens"
            + (f" against {format_bytes(budget)} available" if budget else ""))
    tips = []
    if not settings.gradient_checkpointing:
        with_gc = estimate_memory(shape, counts, replace_settings(settings, gradient_checkpointing=True))["total"]
        tips.append(f"set gradient_checkpointing: true (estimate {format_bytes(with_gc)})")
    if budget:
        fit = fit_to_budget(shape, counts, settings, budget)
        best = fit.get("with_gradient_checkpointing", fit)["max_batch_size"]
        if best and best < settings.batch_size:
            accum = recipe.gradient_accumulation_steps * math.ceil(settings.batch_size / best)
            tips.append(f"set per_device_train_batch_size: {best} and gradient_accumulation_steps: {accum} "
                        f"(same effective batch{'' if settings.gradient_checkpointing else ', with checkpointing'})")
        elif not best and fit.get("with_gradient_checkpointing", fit)["max_seq_length_at_batch_1"]:
            longest = fit.get("with_gradient_checkpointing", fit)["max_seq_length_at_batch_1"]
            tips.append(f"set per_device_train_batch_size: 1 and max_seq_length: {longest}")
    if recipe.method == "lora":
        qlora = recipe.model_copy(update={"method": "qlora"})
        q_settings = settings_from_recipe(qlora, shape, device)
        q_terms = estimate_memory(shape, counts, q_settings)
        tips.append(f"use method: qlora (weights {format_bytes(q_terms['weights'])} instead of "
                    f"{format_bytes(terms['weights'])}; peak {format_bytes(q_terms['total'])})")
    tips.append(f"shorten max_seq_length (now {settings.seq_len}; the logits alone take "
                f"{format_bytes(terms['logits'])})")
    return head + " -- " + "; ".join(tips) + f"; check with `fintune plan RECIPE --budget SIZE --device {device}`"
