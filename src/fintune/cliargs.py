"""Argument types and shared flags every ``fintune`` verb uses, so a bad number is refused the same way everywhere.

``type=positive_int`` etc. make argparse answer ``argument --limit: must be an integer >= 1, got '0'`` and exit 2
before any work starts (``eval --limit 0`` used to evaluate everything; ``--bootstrap-samples -5`` was accepted).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") \
            from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def bounded(kind: type, low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False) -> Callable[[str], float | int]:
    """An argparse ``type`` accepting ``kind`` (int or float) in ``[low, high]`` (``low_open``: ``> low``)."""
    name = "an integer" if kind is int else "a number"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    rule = f"must be {name} {' and '.join(parts)}".strip()

    def parse(text: str) -> float | int:
        value = _number(text, kind)
        if low is not None and (value <= low if low_open else value < low):
            raise argparse.ArgumentTypeError(f"{rule}, got {text!r}")
        if high is not None and (value >= high if high_open else value > high):
            raise argparse.ArgumentTypeError(f"{rule}, got {text!r}")
        return value

    parse.__name__ = f"{kind.__name__} {rule}"  # argparse names the type in "invalid <name> value"
    return parse


positive_int = bounded(int, 1)
"""An integer >= 1 (batch sizes, --limit, --trials, --n ...)."""
non_negative_int = bounded(int, 0)
"""An integer >= 0 (--bootstrap-samples, --seed, retries ...)."""
positive_float = bounded(float, 0, low_open=True)
"""A finite number > 0 (rates, temperatures)."""
non_negative_float = bounded(float, 0)
"""A finite number >= 0 (costs in bps, wait times, thresholds)."""
probability = bounded(float, 0, 1)
"""A finite number in [0, 1] (fractions, thresholds on probabilities)."""
port = bounded(int, 0, 65535)
"""A TCP port, 0-65535 (0 = any free port)."""
finite_float = bounded(float)
"""Any finite number (no nan / inf)."""


def add_overwrite_argument(p: argparse.ArgumentParser) -> None:
    """``--overwrite``: the only way a verb replaces a non-empty output (never one of its own inputs)."""
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --out (never allowed when --out is or holds one of the inputs)")
