"""Training to a wall-clock budget (``max_train_minutes``) with a learning-rate schedule sized to it.

A CPU run's speed varies from day to day, so a step count fixed in a recipe trains for 8 minutes on one day and 22 on
another. With ``max_train_minutes`` the run instead stops when its training loop has used the budget, and the
schedule is laid out over *time* rather than steps: at elapsed fraction ``f = elapsed / budget``

* warmup (``f < w``, ``w = warmup_ratio``):  ``lr = base * f / w``
* then, with ``p = (f - w) / (1 - w)``:  cosine ``base * (1 + cos(pi p)) / 2``, linear ``base * (1 - p)``, constant
  ``base``,

so the learning rate reaches its floor when the budget runs out, whatever the step rate. ``num_train_epochs`` /
``max_steps`` stay an upper bound. Elapsed time is the training loop's wall clock (steps, periodic evaluation and
checkpoints; loading the model and preparing data are not counted). It is saved in every checkpoint
(``trainer_state.json``, stateful callbacks), so ``--resume`` continues the same budget. Under several processes the
main process's clock is broadcast at every step, so every rank uses the same learning rate and stops at the same step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from time import monotonic
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from fintune.recipe import BUDGET_SCHEDULES


def budget_lr_factor(fraction: float, warmup: float, kind: str) -> float:
    """The learning-rate multiplier at elapsed budget fraction ``fraction`` (see the module doc for the formulas)."""
    f = min(max(fraction, 0.0), 1.0)
    if warmup > 0 and f < warmup:
        return f / warmup
    if kind in ("constant", "constant_with_warmup"):
        return 1.0
    p = (f - warmup) / (1.0 - warmup) if warmup < 1 else 1.0
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if kind == "linear":
        return 1.0 - p
    raise ValueError(f"no time-budget schedule for lr_scheduler_type {kind!r}; use one of {BUDGET_SCHEDULES}")


def _synced(seconds: float) -> float:
    """``seconds`` as the main process measured it (every rank must decide the same lr and the same stop)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return seconds
    import torch

    t = torch.tensor([seconds], dtype=torch.float64)
    dist.broadcast(t, src=0)
    return float(t.item())


class TimeBudget(TrainerCallback, ExportableState):
    """Stop training when the loop has run ``minutes``; expose the elapsed fraction to the schedule.

    Args:
        minutes: the training budget in wall-clock minutes.
        elapsed: seconds already used (restored from a checkpoint on ``--resume``).
    """

    def __init__(self, minutes: float, elapsed: float = 0.0) -> None:
        self.minutes = float(minutes)
        self.elapsed = float(elapsed)
        self.stopped = False
        self._offset = self.elapsed
        self._start: float | None = None

    @property
    def fraction(self) -> float:
        """Elapsed share of the budget, as of the last finished step (0 before the first)."""
        return self.elapsed / (60.0 * self.minutes)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start the clock (continuing from ``elapsed`` when resumed)."""
        self._offset = self.elapsed
        self._start = monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Update the (rank-synced) elapsed time; ask the Trainer to stop once the budget is spent."""
        if self._start is None:
            self.on_train_begin(args, state, control)
        self.elapsed = _synced(self._offset + monotonic() - self._start)
        if self.fraction >= 1.0:
            self.stopped = True
            control.should_training_stop = True

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps (restored by Trainer on resume)."""
        return {"args": {"minutes": self.minutes, "elapsed": self.elapsed}, "attributes": {}}


def budget_lr_lambda(fraction_of: Callable[[], float], warmup: float, kind: str) -> Callable[[int], float]:
    """A ``LambdaLR`` function that ignores the step and follows the budget fraction ``fraction_of()``."""
    budget_lr_factor(0.5, warmup, kind)  # an unsupported schedule fails here, before training

    def factor(_step: int) -> float:
        return budget_lr_factor(fraction_of(), warmup, kind)

    return factor
