"""Stage 2: supervised fine-tuning (LoRA / QLoRA / full) on a prepared dataset, and the loop both stages share.

The loop is Hugging Face ``Trainer`` (:class:`~fintune.train.callbacks.FintuneTrainer`) with packing, the
answer-only loss, eval every N steps, best-checkpoint selection, atomic resumable checkpoints under
``RUN/checkpoints/`` and the final adapter (or full model) written at ``RUN/``.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from fintune.artifacts import check_output_dir, hash_paths, write_manifest
from fintune.data.prepare import prepare_data, read_prepared, source_paths
from fintune.device import launch_kind, resolve_device, training_bf16
from fintune.errors import FintuneError
from fintune.models import (
    attach_lora,
    context_length,
    is_adapter_dir,
    load_base_with_lineage,
    trainable_parameters,
    trainable_parameters_line,
)
from fintune.prompts.templates import encode_for_training
from fintune.quiet import quiet_trainer
from fintune.recipe import Recipe, recipe_to_dict
from fintune.run import TaskSpec, read_run
from fintune.train.collate import IGNORE, PackingCollator, PaddingCollator
from fintune.train.distributed import barrier, is_main_process, main_process_first, rank, world_size
from fintune.train.plan_advice import explain_oom
from fintune.train.precision import compile_decoder_layers, fp32_matmul_precision, keep_lora_sum_fp32

CHECKPOINTS = "checkpoints"


def use_bf16(recipe: Recipe) -> bool:
    """The recipe's ``bf16`` with ``auto`` resolved for the recipe's device (:mod:`fintune.device`)."""
    return training_bf16(resolve_device(recipe.device), recipe.bf16)


def check_sequence_length(recipe: Recipe, model: Any) -> None:
    """``max_seq_length`` beyond the model's context is an error before any training."""
    ctx = context_length(model)
    if ctx is not None and recipe.max_seq_length > ctx:
        raise FintuneError(f"recipe key 'max_seq_length': {recipe.max_seq_length} exceeds the model's context "
                           f"length {ctx}", f"set max_seq_length <= {ctx}")


def encode_rows(rows: list[dict[str, Any]], tokenizer: Any, max_seq_length: int, where: str) -> list[dict[str, Any]]:
    """Tokenize prepared rows (``prompt`` + ``completion``) with prompt tokens masked to -100.

    Every example must keep at least one trained answer token after truncation, else a one-line error naming the
    row; an empty split is an error too.
    """
    if not rows:
        raise FintuneError(f"{where}: no examples", "check the data sources and split sizes in the recipe")
    out = []
    for i, row in enumerate(rows):
        here = f"{where} row {i} (id {row.get('id')})"
        for key in ("prompt", "completion"):
            if not isinstance(row.get(key), str):
                raise FintuneError(f"{here}: column '{key}' missing or not text", "re-run `fintune data`")
        enc = encode_for_training(tokenizer, row["prompt"], row["completion"], max_seq_length, where=here)
        if not any(label != IGNORE for label in enc["labels"][1:]):
            raise FintuneError(f"{here}: no answer token is trained", "raise max_seq_length or shorten the prompt")
        out.append({"input_ids": list(enc["input_ids"]), "labels": list(enc["labels"])})
    return out


def balanced_weights(rows: list[dict[str, Any]], where: str) -> list[float]:
    """Per-example loss weights ``n / (k * n_label)`` (scikit-learn's ``class_weight='balanced'``): every class then
    carries the same total weight and the weights average 1. A row without a label is a one-line error."""
    labels = []
    for i, row in enumerate(rows):
        label = row.get("label")
        if not isinstance(label, str) or not label:
            raise FintuneError(f"{where} row {i} (id {row.get('id')}): no 'label' for class_weighting: balanced",
                               "class weighting needs a classification data set")
        labels.append(label)
    counts = Counter(labels)
    return [len(labels) / (len(counts) * counts[label]) for label in labels]


TRACKING_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",)}


def check_tracking_backends(backends: list[str]) -> None:
    """Each ``report_to`` backend must be importable: a one-line error naming the extra to install, not a traceback
    from inside Trainer after the model has loaded."""
    import importlib.util

    for name in backends:
        if not any(importlib.util.find_spec(m) for m in TRACKING_MODULES[name]):
            raise FintuneError(f"recipe key 'report_to': {name} is not installed",
                               f"pip install 'fintune[track]' (or {TRACKING_MODULES[name][0]}), or report_to: none")


def build_training_arguments(recipe: Recipe, out: Path, has_eval: bool) -> Any:
    """``TrainingArguments`` from the recipe (HF names map 1:1; checkpoints go to ``RUN/checkpoints``)."""
    from transformers import TrainingArguments

    eval_steps = recipe.eval_steps if has_eval else None
    save_steps = recipe.save_steps or eval_steps
    best = recipe.load_best_model_at_end and eval_steps is not None
    if best and save_steps % eval_steps:
        raise FintuneError(f"recipe: save_steps={save_steps} must be a multiple of eval_steps={eval_steps} "
                           "to keep the best checkpoint")
    report = recipe.report_to if isinstance(recipe.report_to, list) else [recipe.report_to]
    report = [r for r in report if r != "none"]
    check_tracking_backends(report)
    report = report or "none"
    return TrainingArguments(
        output_dir=str(out / CHECKPOINTS),
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        per_device_eval_batch_size=recipe.per_device_eval_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        learning_rate=recipe.learning_rate, weight_decay=recipe.weight_decay,
        warmup_steps=recipe.warmup_ratio, lr_scheduler_type=recipe.lr_scheduler_type, optim=recipe.optim,
        num_train_epochs=recipe.num_train_epochs, max_steps=recipe.max_steps,
        logging_steps=recipe.logging_steps, logging_first_step=True,
        eval_strategy="steps" if eval_steps else "no", eval_steps=eval_steps,
        save_strategy="steps" if save_steps else "epoch", save_steps=save_steps,
        save_total_limit=recipe.save_total_limit,
        metric_for_best_model=recipe.metric_for_best_model if eval_steps else None,
        greater_is_better=recipe.greater_is_better, load_best_model_at_end=best,
        report_to=report, seed=recipe.seed, data_seed=recipe.seed,
        bf16=use_bf16(recipe), use_cpu=resolve_device(recipe.device) == "cpu",
        gradient_checkpointing=recipe.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if recipe.gradient_checkpointing else None,
        remove_unused_columns=False, dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # LoRA: every trainable parameter gets a gradient each step
        # padded batches of similar lengths when packing is off (transformers 5 name of group_by_length)
        train_sampling_strategy="group_by_length" if recipe.group_by_length else "random",
        # a time budget's elapsed seconds live in the checkpoint's stateful callbacks: --resume continues the budget
        restore_callback_states_from_checkpoint=recipe.max_train_minutes is not None,
    )


def _has_fp32_base(model: Any) -> bool:
    """True when the frozen base weights are float32 (bf16 autocast then needs the LoRA sum kept in float32)."""
    import torch

    frozen = [p.dtype for p in model.parameters() if not p.requires_grad and p.is_floating_point()]
    return bool(frozen) and frozen[0] == torch.float32


class _ListDataset:
    """A minimal map-style dataset over a list (Trainer needs ``__len__`` and ``__getitem__``)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def _save_final(trainer: Any, tokenizer: Any, out: Path) -> None:
    """Write the adapter (or full model) + tokenizer into ``out`` file by file, each atomically renamed.

    Every process calls this: ``Trainer.save_model`` gathers the full state dict across ranks under FSDP (switched
    to ``FULL_STATE_DICT`` here, so the files load without FSDP) and ZeRO-3, and only the main process writes.
    """
    stage = out / ".final"
    if is_main_process():
        shutil.rmtree(stage, ignore_errors=True)
    barrier()
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(stage))
    if is_main_process():
        tokenizer.save_pretrained(str(stage))
        (stage / "training_args.bin").unlink(missing_ok=True)  # the Trainer's pickle; the manifest records the run
        for f in sorted(stage.iterdir()):
            os.replace(f, out / f.name)
        shutil.rmtree(stage, ignore_errors=True)
    barrier()


def run_training(recipe: Recipe, model: Any, tokenizer: Any, train_rows: list[dict[str, Any]],
                 eval_rows: list[dict[str, Any]] | None, out: str | Path, resume: bool, stage: str,
                 manifest_extra: dict[str, Any], collator: Any = None,
                 callbacks: list[Any] | None = None, announce: bool = True) -> dict[str, Any]:
    """Train with HF Trainer and write the run directory; returns a summary (final loss, best checkpoint...).

    ``announce`` prints peft's trainable-parameters line (a caller with its own one-line-per-stage output, the
    demo, turns it off).

    ``train_rows`` / ``eval_rows`` are tokenized dicts (``input_ids``, ``labels``). With ``resume`` the run continues
    from the last complete checkpoint under ``RUN/checkpoints``.
    """
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from fintune.train.callbacks import (
        FintuneTrainer,
        MetricsJsonlCallback,
        TimeBudget,
        plot_loss_curve,
        write_metrics_jsonl,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_root = out / CHECKPOINTS
    last = get_last_checkpoint(str(ckpt_root)) if ckpt_root.exists() else None
    if resume and last is None:
        print(f"--resume: no checkpoint under {ckpt_root}; starting from scratch", file=sys.stderr)
    if not resume and last is not None:
        raise FintuneError(f"{out}: already holds checkpoints", "pass --resume to continue or choose another --out")
    set_seed(recipe.seed)
    line = trainable_parameters_line(model)
    main = is_main_process()
    if main and announce:
        print(line, flush=True)
    collator = collator or (PackingCollator(tokenizer.pad_token_id, recipe.max_seq_length) if recipe.packing
                else PaddingCollator(tokenizer.pad_token_id, pad_to_multiple_of=64))
    args = build_training_arguments(recipe, out, has_eval=bool(eval_rows))
    if args.bf16 and _has_fp32_base(model):
        keep_lora_sum_fp32(model)
    compiled_layers = compile_decoder_layers(model) if recipe.torch_compile else 0
    metrics_path = out / "metrics.jsonl"
    trainer = FintuneTrainer(model=model, args=args, train_dataset=_ListDataset(train_rows),
                             eval_dataset=_ListDataset(eval_rows) if eval_rows else None, data_collator=collator,
                             callbacks=[MetricsJsonlCallback(metrics_path), *(callbacks or [])],
                             loraplus_lr_ratio=recipe.loraplus_lr_ratio,
                             time_budget=TimeBudget(recipe.max_train_minutes) if recipe.max_train_minutes else None)
    quiet_trainer(trainer)  # loss on the progress bar, not a raw dict line per log step (unless --verbose)
    try:
        with fp32_matmul_precision(recipe.fp32_matmul_precision) as matmul_precision:
            result = trainer.train(resume_from_checkpoint=last if resume and last else None)
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "out of memory" not in str(exc).lower():
            raise
        raise FintuneError(explain_oom(recipe, exc), "checkpoints so far are kept; rerun with --resume") from None
    from fintune.train.best_metric import restore_best_full_weights

    restore_best_full_weights(trainer)  # Trainer's own reload misses renamed keys (GPT-NeoX's output head)
    history = trainer.state.log_history
    if world_size() > 1:
        print(f"rank {rank()}/{world_size()}: {trainer.state.global_step} optimizer steps", file=sys.stderr,
              flush=True)
    if main:
        write_metrics_jsonl(metrics_path, history)
        plot_loss_curve(history, out / "loss_curve.png", title=f"{recipe.name} ({stage})")
    _save_final(trainer, tokenizer, out)
    losses = [r["loss"] for r in history if "loss" in r]
    budget = trainer.time_budget()
    trainable, total = trainable_parameters(model)
    summary = {
        "global_step": trainer.state.global_step, "train_loss": result.training_loss,
        "final_logged_loss": losses[-1] if losses else None,
        "best_model_checkpoint": trainer.state.best_model_checkpoint, "best_metric": trainer.state.best_metric,
        "metric_for_best_model": args.metric_for_best_model,
        # what RUN/ holds: the best checkpoint's weights (load_best_model_at_end) or the last step's
        "saved_weights": "best" if args.load_best_model_at_end and trainer.state.best_model_checkpoint else "last",
        "trainable_params": trainable, "all_params": total, "trainable_line": line,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "max_train_minutes": recipe.max_train_minutes,
        "stopped_by_time_budget": bool(budget and budget.stopped),
        "bf16": bool(args.bf16), "fp32_matmul_precision": matmul_precision,
        "compiled_layers": compiled_layers, "train_examples": len(train_rows), "eval_examples": len(eval_rows or []),
        "world_size": args.world_size, "launch": launch_kind(),
        "global_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
    }
    if main:
        write_manifest(out, stage, recipe=recipe_to_dict(recipe), seed=recipe.seed, training=summary,
                       world_size=args.world_size, model_cutoff=recipe.model_cutoff, **manifest_extra)
    barrier()
    return {**summary, "history": history}


def prepare_model(recipe: Recipe) -> tuple[Any, Any, dict[str, Any]]:
    """Load the base (merging or continuing a stage-1 run per ``stage1_handoff``) and attach the adapter.

    Returns ``(model, tokenizer, lineage)`` where lineage goes into the manifest: ``base_model``,
    ``merged_adapters`` (stage-1 adapters merged into the base, in order) and ``parent_run``.
    """
    from transformers import set_seed

    set_seed(recipe.seed)  # the adapter's random init must be the same in every process for the same seed

    base, merged, continue_from = recipe.model_name_or_path, [], None
    licenses: dict[str, str] = {}  # of the data every earlier stage trained on: they travel with the weights
    if recipe.init_from:
        parent = Path(recipe.init_from)
        if not parent.is_dir():
            raise FintuneError(f"recipe key 'init_from': {parent} is not a run directory")
        if (parent / "manifest.json").exists():
            licenses = dict(read_run(parent).licenses)
        if is_adapter_dir(parent):
            pm = read_run(parent, "train")
            base = pm.base_model
            merged = list(pm.merged_adapters)
            if recipe.stage1_handoff == "merge":
                merged.append(str(parent.resolve()))
            else:
                continue_from = parent
        else:  # a full fine-tune: the run directory is itself the new base
            base = str(parent)
    model, tokenizer = load_base_with_lineage(base, merged, dtype=recipe.dtype, method=recipe.method,
                                              recipe=recipe)
    if recipe.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if continue_from is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(continue_from), is_trainable=True)
    elif recipe.method in ("lora", "qlora"):
        model = attach_lora(model, recipe)
        if recipe.gradient_checkpointing:
            model.enable_input_require_grads()
    lineage = {"base_model": base, "merged_adapters": merged,
               "parent": str(recipe.init_from) if recipe.init_from else None, "licenses": licenses}
    return model, tokenizer, lineage


def check_run_dir(recipe: Recipe, out: str | Path, resume: bool, overwrite: bool) -> Path:
    """Refuse a run directory that would destroy data: a non-empty one without ``--resume`` (continue its
    checkpoints) or ``--overwrite`` (which empties it first), a finished run "resumed" with no checkpoint left, and one
    that is or holds the recipe's data, model or stage-1 run (never allowed).
    """
    out = Path(out)
    check_output_dir(out, True, inputs=source_paths(recipe), runs=[recipe.model_name_or_path, recipe.init_from])
    has_checkpoint = any((out / CHECKPOINTS).glob("checkpoint-*")) if (out / CHECKPOINTS).is_dir() else False
    non_empty = out.is_dir() and any(out.iterdir())
    if overwrite:
        if non_empty and is_main_process():  # one process empties it; the others wait so none reads it half-gone
            shutil.rmtree(out)
        barrier()
        return out
    if resume:
        if not has_checkpoint and (out / "manifest.json").exists():
            raise FintuneError(f"{out}: a finished run with no checkpoint to resume",
                               "pass --overwrite to train it again, or choose another --out")
        return out
    if has_checkpoint:
        raise FintuneError(f"{out}: already holds checkpoints",
                           "pass --resume to continue, --overwrite to start again, or choose another --out")
    if non_empty:
        raise FintuneError(f"--out {out}: directory is not empty",
                           "pass --resume to continue it, --overwrite to start again, or choose another --out")
    return out


def train_sft(recipe: Recipe, out: str | Path | None = None, resume: bool = False,
              callbacks: list[Any] | None = None, overwrite: bool = False, announce: bool = True) -> dict[str, Any]:
    """``fintune train``: prepare data (unless ``data.prepared``), tokenize, check, train, write ``RUN/``.

    ``callbacks`` are extra ``transformers.TrainerCallback`` objects (a sweep's pruning callback, say). A non-empty
    ``out`` needs ``resume`` (continue its checkpoints) or ``overwrite`` (start again); see :func:`check_run_dir`.
    ``announce=False`` keeps the trainable-parameters line off stdout.
    """
    from fintune.train.best_metric import build_callback, task_metric

    task_metric(recipe)  # a bad metric_for_best_model fails before the model loads
    out = check_run_dir(recipe, out or recipe.output_dir or Path("runs") / recipe.name, resume, overwrite)
    model, tokenizer, lineage = prepare_model(recipe)
    check_sequence_length(recipe, model)
    if recipe.data.prepared:
        data_dir = Path(recipe.data.prepared)
        if not data_dir.is_dir():
            raise FintuneError(f"recipe key 'data.prepared': {data_dir} is not a directory", "run `fintune data`")
    else:
        data_dir = out / "data"
        # prepared once, by the main process; the others wait at a barrier, then read what it wrote
        with main_process_first() as main:
            if main and not (resume and (data_dir / "manifest.json").exists()):
                data_dir = prepare_data(recipe, data_dir, tokenizer=tokenizer)

    splits = read_prepared(data_dir)
    train_rows = encode_rows(splits.get("train") or [], tokenizer, recipe.max_seq_length,
                             f"{data_dir}/train.parquet")
    if recipe.data.max_train_examples:
        train_rows = train_rows[: recipe.data.max_train_examples]
    if recipe.class_weighting == "balanced":
        weights = balanced_weights(splits["train"][: len(train_rows)], f"{data_dir}/train.parquet")
        train_rows = [{**row, "weight": w} for row, w in zip(train_rows, weights, strict=True)]
    val = splits.get("validation") or []
    eval_rows = encode_rows(val, tokenizer, recipe.max_seq_length, f"{data_dir}/validation.parquet") if val else None
    spec = TaskSpec.from_recipe(recipe)
    licenses: dict[str, str] = {}
    if (data_dir / "manifest.json").exists():
        data_manifest = read_run(data_dir, "data")
        # the prepared data's spec (labels, format, template) with this recipe's eval block
        spec = data_manifest.spec.model_copy(update={"eval": spec.eval, "eval_set": spec.eval_set,
                                                      "system_prompt": spec.system_prompt})
        licenses = data_manifest.licenses
    licenses = {**lineage["licenses"], **licenses}
    hashes = hash_paths([p for p in sorted(data_dir.glob("*.parquet"))])
    best_by = build_callback(recipe, data_dir, tokenizer)  # metric_for_best_model: f1_weighted, ...
    return run_training(recipe, model, tokenizer, train_rows, eval_rows, out, resume, "train",
                        dict(lineage, data_hashes=hashes, data_dir=str(data_dir), labels=spec.labels,
                             template=spec.template, task_spec=spec.model_dump(mode="json"),
                             licenses=licenses), callbacks=[*(callbacks or []), *([best_by] if best_by else [])],
                        announce=announce)


def steps_per_epoch(n_rows: int, recipe: Recipe) -> int:
    """Optimizer steps in one epoch (for progress estimates)."""
    return max(1, math.ceil(n_rows / recipe.per_device_train_batch_size / recipe.gradient_accumulation_steps))
