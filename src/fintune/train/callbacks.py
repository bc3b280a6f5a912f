"""Trainer plumbing: metrics.jsonl logging, the loss-curve PNG, and atomic checkpoints."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback

from fintune.artifacts import atomic_write_bytes, atomic_write_text
from fintune.train.budget import TimeBudget, budget_lr_lambda
from fintune.train.collate import answer_only_loss


class MetricsJsonlCallback(TrainerCallback):
    """Append every Trainer log (loss, lr, eval_loss, ...) as one JSON line to ``path``, flushed at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Write one line per log event, with the global step and epoch (main process only)."""
        if not logs or not state.is_world_process_zero:
            return
        row = {"step": state.global_step, "epoch": state.epoch, **logs}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()


def write_metrics_jsonl(path: str | Path, log_history: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` atomically from the Trainer's full log history (survives resumes cleanly)."""
    lines = [json.dumps(r) for r in log_history]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def plot_loss_curve(log_history: list[dict[str, Any]], out: str | Path, title: str = "loss") -> Path | None:
    """Training (and eval) loss against step as a PNG; None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in log_history if "loss" in r and "step" in r]
    evals = [(r["step"], r["eval_loss"]) for r in log_history if "eval_loss" in r and "step" in r]
    if not train and not evals:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss")
    if evals:
        ax.plot(*zip(*evals, strict=True), marker="o", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(out, buf.getvalue())


class FintuneTrainer(Trainer):
    """HF Trainer with the answer-only loss (logits only where trained) and atomic checkpoint directories.

    Two optional recipe features live here, each through a public ``Trainer`` hook: ``loraplus_lr_ratio``
    (``create_optimizer``: peft's LoRA+ optimizer, B matrices at ``ratio`` x the learning rate) and a wall-clock budget
    (``create_scheduler``: a learning-rate schedule over the budget's elapsed fraction, :mod:`fintune.train.budget`).
    """

    def __init__(self, *args: Any, loraplus_lr_ratio: float | None = None, time_budget: TimeBudget | None = None,
                 **kwargs: Any) -> None:
        if time_budget is not None:
            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), time_budget]
        super().__init__(*args, **kwargs)
        self.loraplus_lr_ratio = loraplus_lr_ratio
        self.budgeted = time_budget is not None

    def time_budget(self) -> TimeBudget | None:
        """The run's :class:`TimeBudget` callback (Trainer replaces it with the checkpoint's copy on resume)."""
        return next((c for c in self.callback_handler.callbacks if isinstance(c, TimeBudget)), None)

    def create_optimizer(self, model: Any = None) -> Any:
        """LoRA+ (peft ``create_loraplus_optimizer``) when ``loraplus_lr_ratio`` is set, else Trainer's optimizer."""
        if self.loraplus_lr_ratio is None or self.optimizer is not None:
            return super().create_optimizer(model)
        from peft.optimizers import create_loraplus_optimizer

        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model or self.model)
        optimizer_kwargs.pop("lr", None)
        self.optimizer = create_loraplus_optimizer(model or self.model, optimizer_cls, lr=self.args.learning_rate,
                                                   loraplus_lr_ratio=self.loraplus_lr_ratio,
                                                   weight_decay=self.args.weight_decay, **optimizer_kwargs)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        """With a time budget, a schedule over the budget's elapsed fraction; else Trainer's step schedule."""
        if not self.budgeted or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        from torch.optim.lr_scheduler import LambdaLR

        def fraction() -> float:
            budget = self.time_budget()
            return budget.fraction if budget is not None else 0.0

        warmup = self.args.warmup_steps if self.args.warmup_steps < 1 else 0.0  # the recipe's warmup_ratio
        kind = self.args.lr_scheduler_type
        self.lr_scheduler = LambdaLR(optimizer or self.optimizer,
                                     budget_lr_lambda(fraction, warmup, str(getattr(kind, 'value', kind))))
        return self.lr_scheduler

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        """Token-mean cross-entropy over trained tokens (see :func:`answer_only_loss`).

        Under several processes ``num_items_in_batch`` counts the trained tokens of every rank, and DDP / FSDP /
        DeepSpeed average gradients over ranks, so the loss is multiplied by the world size (as Trainer's own
        ``compute_loss`` does): the gradient and the logged loss then equal a single process's with the same
        global batch.
        """
        loss = answer_only_loss(model, inputs, num_items_in_batch)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            loss = loss * self.accelerator.num_processes
        return (loss, None) if return_outputs else loss

    def prediction_step(self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool,
                        ignore_keys: list[str] | None = None) -> tuple[Any, Any, Any]:
        """Eval computes the same loss without materialising full-vocab logits."""
        import torch

        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = answer_only_loss(model, inputs)
        return loss.detach(), None, None

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        # Build checkpoint-N in a staging root and rename it into place, so a kill mid-save never leaves a
        # half-written checkpoint that --resume would pick up. Under several processes every rank writes its own
        # part (its RNG state; shards under FSDP / ZeRO) into the staging root, and only the main process prepares
        # and renames it, between barriers.
        final_root = self.args.output_dir
        staging_root = os.path.join(final_root, ".staging")
        main = self.args.should_save
        if main:
            shutil.rmtree(staging_root, ignore_errors=True)
            os.makedirs(staging_root)
        self.accelerator.wait_for_everyone()
        self.args.output_dir = staging_root
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.output_dir = final_root
        self.accelerator.wait_for_everyone()
        name = f"checkpoint-{self.state.global_step}"
        best = self.state.best_model_checkpoint
        if best and best.startswith(staging_root):
            self.state.best_model_checkpoint = os.path.join(final_root, os.path.basename(best))
            if main:
                self.state.save_to_json(os.path.join(staging_root, name, "trainer_state.json"))
        if main:
            target = os.path.join(final_root, name)
            if os.path.exists(target):
                shutil.rmtree(target)
            os.replace(os.path.join(staging_root, name), target)
            shutil.rmtree(staging_root, ignore_errors=True)
            from transformers.trainer_utils import rotate_checkpoints

            rotate_checkpoints(output_dir=final_root, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        self.accelerator.wait_for_everyone()
