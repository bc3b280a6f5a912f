"""A classification head against label scoring, on the same backbone, data, prompt tokens and optimizer steps.

The lever from the quality issue: LoRA (r16/a32, all linear layers of the decoder) plus a freshly initialised
3-way linear head over the last prompt token (``AutoModelForSequenceClassification``, peft ``task_type=SEQ_CLS``
trains the head in full), against ``fintune``'s score mode, where the 3-way "head" is the language-model head's
rows of the three label answers, trained through LoRA with the answer-only loss.

Same everything else: the prepared split of a ``fintune data`` / ``fintune train`` run (its ``prompt`` column,
tokenized by :func:`fintune.prompts.tokenize.encode_prompt`, the one tokenization training and inference share),
batch 16, learning rate 1e-3, 3% warmup, cosine, float32 weights with bf16 matmuls where the CPU has them, compiled
decoder layers, and as many optimizer steps as the reference run took (``--steps``; the head skips the 49,152-way
vocabulary projection, so its steps are cheaper: the wall time is printed beside the same-run GEMM rate).
Temperature scaling is decided on the validation split exactly as ``fintune eval`` does
(:func:`fintune.evaluate.calibration.choose_temperature`). The output directory holds ``predictions.jsonl`` and
``metrics.json`` in the eval format, so ``fintune compare`` and ``fintune ensemble`` read it; the paired bootstrap
against ``--reference`` (an eval directory of the label-scoring run) is printed.

    python benchmarks/classification_head.py --data runs/ablation/baseline/run/data --steps 83 \\
        --reference runs/ablation/baseline/eval --threads 1 --out runs/ablation/cls_head

Final line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from machine_rate import gemm_gflops

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def labelled_splits(data: Path) -> dict[str, list[dict[str, Any]]]:
    """The prepared splits (:func:`fintune.data.prepare.read_prepared`); an unlabelled row is an error naming it."""
    from fintune.data.prepare import read_prepared
    from fintune.errors import FintuneError

    splits = read_prepared(data)
    for split in ("train", "validation", "test"):
        for i, row in enumerate(splits[split], 1):
            if not row["label"] or row["label"] == "None":
                raise FintuneError(f"{data / (split + '.parquet')}: row {i} ('{row['id']}'): no label")
    return splits


def encode(tokenizer: Any, rows: list[dict[str, Any]], labels: list[str], max_len: int) -> list[dict[str, Any]]:
    """Prompt token ids (the shared tokenization; the head reads the last one) and the label index."""
    from fintune.prompts.tokenize import encode_prompt

    out = []
    for row in rows:
        ids = encode_prompt(tokenizer, row["prompt"])
        out.append({"input_ids": ids[-max_len:], "labels": labels.index(row["label"])})
    return out


def label_logits(model: Any, tokenizer: Any, batch_rows: list[dict[str, Any]], batch_size: int) -> Any:
    """``[n, k]`` head logits for encoded rows, batched with right padding."""
    import numpy as np
    import torch
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer)
    out = []
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(batch_rows), batch_size):
            batch = collate([{"input_ids": r["input_ids"]} for r in batch_rows[i: i + batch_size]])
            out.append(model(**batch).logits.float().cpu().numpy())
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    """Train the head variant, score validation and test, write the eval files, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a prepared split (fintune data / run/data)")
    parser.add_argument("--steps", type=int, required=True, help="optimizer steps (match the reference run)")
    parser.add_argument("--reference", type=Path, help="eval directory of the label-scoring run to pair against")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--labels", default="negative,neutral,positive")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import numpy as np
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    from fintune.artifacts import atomic_write_json
    from fintune.errors import FintuneError
    from fintune.evaluate.calibration import calibration_metrics, choose_temperature
    from fintune.evaluate.compare import load_run, paired_bootstrap
    from fintune.evaluate.metrics import classification_metrics
    from fintune.model_ids import resolve_model
    from fintune.models import load_tokenizer
    from fintune.predict.rows import softmax_rows
    from fintune.records import Prediction, write_jsonl
    from fintune.train.precision import compile_decoder_layers, fp32_matmul_precision

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    if (args.out / "metrics.json").exists() and not args.overwrite:
        raise SystemExit(f"{args.out}: already holds metrics.json (pass --overwrite to replace it)")
    labels = [x.strip() for x in args.labels.split(",")]
    path = resolve_model(args.model)
    tokenizer = load_tokenizer(path)
    splits = labelled_splits(args.data)
    encoded = {s: encode(tokenizer, splits[s], labels, args.max_seq_length) for s in ("train", "validation", "test")}
    gemm_before = gemm_gflops(n=1024, repeats=5, threads=args.threads)

    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)},
        dtype=torch.float32)
    # the head reads the last non-pad token; a pad id that also occurs inside prompts is fine (rightmost wins)
    model.config.pad_token_id = tokenizer.pad_token_id
    if not args.no_compile:
        compile_decoder_layers(model)
    model = get_peft_model(model, LoraConfig(
        task_type=TaskType.SEQ_CLS, r=16, lora_alpha=32, lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    args.out.mkdir(parents=True, exist_ok=True)
    training_args = TrainingArguments(
        output_dir=str(args.out / "trainer"), per_device_train_batch_size=16, learning_rate=1e-3, warmup_steps=0.03,  # a float < 1 is a ratio
        lr_scheduler_type="cosine", max_steps=args.steps, logging_steps=10, save_strategy="no", report_to=[],
        seed=args.seed, use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=False)
    trainer = Trainer(model=model, args=training_args, train_dataset=encoded["train"],
                      data_collator=DataCollatorWithPadding(tokenizer))
    with fp32_matmul_precision("auto") as precision:
        t0 = time.perf_counter()
        result = trainer.train()
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        z_val = label_logits(model, tokenizer, encoded["validation"], 32)
        z_test = label_logits(model, tokenizer, encoded["test"], 32)
        score_s = time.perf_counter() - t0
    gemm_after = gemm_gflops(n=1024, repeats=5, threads=args.threads)

    # the head's logits play the role of score mode's label log-probabilities: same temperature decision
    val_gold = np.array([labels.index(r["label"]) for r in splits["validation"]])
    choice = choose_temperature(z_val, val_gold)
    probs = softmax_rows(z_test, choice.temperature)
    log_probs = np.log(softmax_rows(z_test, 1.0))
    gold = [r["label"] for r in splits["test"]]
    pred = [labels[int(i)] for i in probs.argmax(1)]
    predictions = [
        Prediction(id=row["id"], label=p, probabilities={x: float(v) for x, v in zip(labels, pr, strict=True)},
                   confidence=float(pr.max()), gold=row["label"],
                   label_logprobs={x: float(v) for x, v in zip(labels, lp, strict=True)},
                   extra={"temperature": choice.temperature, "model": f"{args.model} + LoRA + 3-way head"})
        for row, p, pr, lp in zip(splits["test"], pred, probs, log_probs, strict=True)]
    cls = classification_metrics(gold, pred, labels)
    before, after = calibration_metrics(softmax_rows(z_test, 1.0), gold, labels), calibration_metrics(probs, gold, labels)
    calib = {**choice.to_dict(), "before": before, "after": after, "ece_before": before["ece"], "ece_after": after["ece"]}
    metrics = {"task": "sentiment", "format": "label", "mode": "classification_head", "split": "test", "n": len(gold),
               "labels": labels, "n_labelled": len(gold), "classification": cls, "accuracy": cls["accuracy"],
               "f1_weighted": cls["f1_weighted"], "f1_macro": cls["f1_macro"], "mcc": cls["mcc"], "invalid_rate": 0.0,
               "calibration": calib, "model": f"{args.model} + LoRA + 3-way head", "data": str(args.data)}
    write_jsonl(args.out / "predictions.jsonl", predictions)
    atomic_write_json(args.out / "metrics.json", metrics)

    row: dict[str, Any] = {
        "steps": result.global_step, "train_loss": result.training_loss, "train_s": round(train_s, 1),
        "score_s": round(score_s, 1), "trainable_params": trainable, "matmul_precision": precision,
        "threads": args.threads, "gemm_bf16_gflops": [round(gemm_before, 1), round(gemm_after, 1)],
        "f1_weighted": cls["f1_weighted"], "f1_weighted_ci95": cls["ci95"]["f1_weighted"], "f1_macro": cls["f1_macro"],
        "mcc": cls["mcc"], "accuracy": cls["accuracy"], "ece_after": after["ece"], "temperature": choice.temperature}
    if args.reference:
        try:
            delta = paired_bootstrap(load_run(args.reference), load_run(args.out))["f1_weighted"]
        except FintuneError as exc:
            raise SystemExit(f"error: {exc}") from None
        row.update(reference=str(args.reference), delta_f1_weighted=delta["delta"], delta_ci95=delta["ci95"])
    lo, hi = row["f1_weighted_ci95"]
    print(f"classification head: {row['steps']} steps in {train_s / 60:.1f} min ({args.threads} thread(s), bf16 GEMM "
          f"{gemm_before:.0f} -> {gemm_after:.0f} GFLOP/s this run); weighted F1 {cls['f1_weighted']:.3f} "
          f"[{lo:.3f}, {hi:.3f}], macro F1 {cls['f1_macro']:.3f}, MCC {cls['mcc']:.3f}, ECE {after['ece']:.3f}")
    if "delta_ci95" in row:
        print(f"minus {args.reference}: {row['delta_f1_weighted']:+.3f} [{row['delta_ci95'][0]:+.3f}, "
              f"{row['delta_ci95'][1]:+.3f}]")
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
