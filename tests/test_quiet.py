"""Quiet by default: third-party warnings and log noise hidden for every verb unless ``--verbose``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

from fintune.quiet import loss_bar_callback

ROOT = Path(__file__).resolve().parents[1]

# Runs a real verb through the CLI entry point, then triggers the noise the filters exist for: importing
# bitsandbytes (its CPU-kernel warning on AVX512-BF16 machines), a FutureWarning raised inside transformers, a
# transformers logger warning, and one warning of fintune's own that must always show.
SCRIPT = """
import logging, sys, warnings
from fintune.cli import main
rc = main(sys.argv[1:])
import bitsandbytes  # noqa: F401
import transformers
warnings.warn_explicit("old transformers api", FutureWarning, "transformers/x.py", 1, module="transformers.x")
warnings.warn_explicit("torch user noise", UserWarning, "torch/y.py", 1, module="torch.y")
transformers.logging.get_logger("transformers.modeling_utils").warning("transformers log noise")
logging.getLogger("bitsandbytes.backends.cpu.ops").warning("Failed to load CPU gemm_4bit_forward (test)")
import deepspeed.utils.logging as dsl  # resets the DeepSpeed logger to INFO with its own handler on import
dsl.logger.warning("Setting accelerator to CPU (test)")
for _ in transformers.utils.logging.tqdm(range(2), desc="Loading weights (test)"):  # the bar from_pretrained draws
    pass
logging.getLogger("fintune.data").warning("fintune own warning")
print("rc", rc)
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for var in ("FINTUNE_VERBOSE", "TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY", "HF_HUB_VERBOSITY",
                "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)


def test_third_party_noise_hidden_by_default_and_shown_with_verbose() -> None:
    quiet = _run("recipes", "ls")
    assert "rc 0" in quiet.stdout, quiet.stderr
    for noise in ("gemm_4bit_forward", "old transformers api", "torch user noise", "transformers log noise",
                  "pip install kernels", "Setting accelerator to CPU", "Loading weights"):
        assert noise not in quiet.stderr + quiet.stdout, quiet.stderr
    assert "fintune own warning" in quiet.stderr
    loud = _run("recipes", "ls", "--verbose")
    assert "rc 0" in loud.stdout, loud.stderr
    for noise in ("gemm_4bit_forward (test)", "old transformers api", "Setting accelerator to CPU (test)", "torch user noise", "transformers log noise",
                  "Loading weights (test)", "fintune own warning"):
        assert noise in loud.stderr + loud.stdout, loud.stderr  # DeepSpeed logs to stdout


def test_loss_goes_to_the_bar_postfix_not_a_printed_dict(capsys) -> None:
    class Bar:
        postfix: ClassVar[dict[str, str]] = {}

        def set_postfix(self, values: dict[str, str], refresh: bool = True) -> None:
            Bar.postfix = values

        def write(self, text: str) -> None:  # what the stock callback does; must not be called
            raise AssertionError(text)

    cb = loss_bar_callback()
    cb.training_bar = Bar()
    state = SimpleNamespace(is_world_process_zero=True)
    cb.on_log(None, state, None, logs={"loss": 1.23456, "grad_norm": 3.0, "learning_rate": 0.001, "epoch": 0.5})
    assert Bar.postfix == {"loss": "1.235", "learning_rate": "0.001"}
    assert capsys.readouterr().out == ""


def test_quiet_trainer_swaps_the_printer_or_progress_callback_for_the_loss_bar(monkeypatch) -> None:
    """Quiet sets transformers' level to ERROR, so TrainingArguments picks PrinterCallback (a dict per log step):
    quiet_trainer replaces either stock callback with the bar."""
    from transformers.trainer_callback import CallbackHandler, PrinterCallback, ProgressCallback

    from fintune import quiet

    monkeypatch.setitem(quiet._state, "verbose", False)
    for stock in (PrinterCallback, ProgressCallback):
        trainer = SimpleNamespace(callback_handler=CallbackHandler([stock], None, None, None, None))
        trainer.add_callback = trainer.callback_handler.add_callback
        trainer.remove_callback = trainer.callback_handler.remove_callback
        quiet.quiet_trainer(trainer)
        names = [type(cb).__name__ for cb in trainer.callback_handler.callbacks]
        assert "LossBarCallback" in names and stock.__name__ not in names
