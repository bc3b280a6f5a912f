"""Quiet by default: third-party noise off the terminal for every verb, unless ``--verbose``.

What a newcomer sees is fintune's own lines, progress bars and summaries. Hidden unless ``--verbose`` (or
``FINTUNE_VERBOSE=1``):

* Python warnings of the categories libraries use for API churn (``FutureWarning``, ``DeprecationWarning``,
  ``PendingDeprecationWarning``) from any module, and ``UserWarning`` raised inside third-party packages;
* third-party loggers below ERROR (e.g. bitsandbytes' CPU-kernel line "Failed to load CPU gemm_4bit_forward ...
  pip install kernels", which goes through Python ``logging``), and transformers' / datasets' / huggingface_hub's
  own logging (their ``*_VERBOSITY`` environment variables, set before they are imported);
* the raw log dicts (``{'loss': ..., 'grad_norm': ...}``) that the Trainer's progress callback writes under its bar:
  :func:`quiet_trainer` swaps that callback for one that shows the latest loss on the bar itself.

fintune's own ``fintune.*`` loggers and warnings are untouched; errors always reach the terminal.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

THIRD_PARTY = ("bitsandbytes", "transformers", "torch", "peft", "trl", "accelerate", "datasets", "huggingface_hub",
               "urllib3", "filelock", "httpx", "torchao", "sklearn", "scipy", "matplotlib", "PIL", "fsspec",
               "optuna", "deepspeed", "DeepSpeed", "triton", "gguf", "numexpr")
"""Top-level package names whose warnings and sub-ERROR log records are hidden unless verbose."""

_ENV_VERBOSITY = ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY", "HF_HUB_VERBOSITY")
# the libraries' own bars ("Loading weights", "Map", downloads); fintune's bars use tqdm directly and stay
_ENV_NO_BARS = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")
_state = {"verbose": True}


class _BelowError(logging.Filter):
    """Drops records below ERROR (attached to third-party loggers when quiet)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or is_verbose()


def is_verbose() -> bool:
    """Whether third-party output is shown (the default until :func:`configure` is called, e.g. in library use)."""
    return _state["verbose"]


def configure(verbose: bool = False) -> None:
    """Install (``verbose=False``) or lift the filters described in the module docstring. Idempotent.

    Called once by the CLI before a verb runs, so every verb gets the same treatment; library users who call
    fintune's functions directly keep their own warning and logging settings.
    """
    _state["verbose"] = bool(verbose)
    if verbose:
        return
    for var in _ENV_VERBOSITY:
        os.environ.setdefault(var, "error")
    for var in _ENV_NO_BARS:
        os.environ.setdefault(var, "1")
    pattern = r"^(" + "|".join(THIRD_PARTY) + r")(\.|$)"
    for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", category=UserWarning, module=pattern)
    for name in THIRD_PARTY:
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        # some libraries reset their logger's level when imported (DeepSpeed sets INFO and its own handler);
        # a filter on the logger object survives that
        if not any(isinstance(f, _BelowError) for f in logger.filters):
            logger.addFilter(_BelowError())
    # transformers keeps its own handler and level; when it was imported before us, set it through its API
    import sys

    if "transformers" in sys.modules:
        sys.modules["transformers"].logging.set_verbosity_error()
        sys.modules["transformers"].logging.disable_progress_bar()


def quiet_trainer(trainer: Any) -> Any:
    """Replace a ``transformers.Trainer``'s progress (or printer) callback by :func:`loss_bar_callback` unless
    verbose.

    The bar and its speed stay; the loss goes into the bar's postfix instead of a raw dict line per log step
    (the full history still lands in the run's ``metrics.jsonl``). Returns ``trainer``.
    """
    if is_verbose():
        return trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # TrainingArguments turns the bar off (PrinterCallback: a dict per log step) when transformers' log level is
    # above WARNING, which the quiet filters set: either way the bar with the loss in its postfix replaces it
    stock = [cb for cb in trainer.callback_handler.callbacks if type(cb) in (ProgressCallback, PrinterCallback)]
    if stock:
        for cb in stock:
            trainer.remove_callback(cb)
        trainer.add_callback(loss_bar_callback())
    return trainer


def loss_bar_callback() -> Any:
    """A ``ProgressCallback`` whose ``on_log`` sets the bar's postfix (loss, learning rate) instead of printing."""
    from transformers.trainer_callback import ProgressCallback

    class LossBarCallback(ProgressCallback):
        """Progress bar with the latest loss in its postfix; no log lines written under it."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            bar = getattr(self, "training_bar", None)
            if not state.is_world_process_zero or bar is None or not logs:
                return
            shown = {k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "eval_loss", "learning_rate")
                     and isinstance(v, (int, float))}
            if shown:
                bar.set_postfix(shown, refresh=False)

    return LossBarCallback()
