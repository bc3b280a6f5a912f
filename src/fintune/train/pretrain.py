"""Stage 1: causal-LM continued pretraining on raw financial documents (LoRA or full).

Documents come from the recipe's ``data.sources`` through the data registry (``text`` files/dirs, ``jsonl``,
``financebench`` page text, ``stocknet`` tweets, ...); only ``Example.text`` is used. Each document is tokenized,
followed by EOS, and the stream is cut into fixed ``max_seq_length`` blocks. Position ids restart at every document
start inside a block, so documents packed together do not attend to each other, and no token is trained to predict
the first token of the next document. The run directory feeds stage 2 through ``init_from`` (merge or continue).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fintune.artifacts import find_licenses
from fintune.data.prepare import source_paths
from fintune.data.registry import load_source
from fintune.errors import FintuneError
from fintune.recipe import Recipe
from fintune.train.collate import IGNORE
from fintune.train.sft import check_run_dir, check_sequence_length, prepare_model, run_training


def load_documents(recipe: Recipe) -> list[str]:
    """The raw texts of every source in the recipe (empty texts are skipped, an empty corpus is an error)."""
    if not recipe.data.sources:
        raise FintuneError("recipe key 'data.sources': empty", "list at least one source of documents")
    docs: list[str] = []
    for cfg in recipe.data.sources:
        examples = load_source(cfg, "pretrain", None)
        docs += [e.text for e in examples if e.text and e.text.strip()]
    if not docs:
        raise FintuneError("recipe key 'data.sources': no non-empty documents", "check the source paths")
    return docs


def pack_documents(token_lists: list[list[int]], eos_id: int, block: int) -> list[dict[str, list[int]]]:
    """Concatenate documents (each + EOS) and cut the stream into ``block``-token rows.

    Each row carries ``position_ids`` restarting at 0 at document starts and ``labels`` = input ids except -100 on
    each document's first token in the row (nothing predicts across a boundary). The last partial row is kept
    when it holds at least 2 tokens.
    """
    ids: list[int] = []
    starts: list[bool] = []
    for toks in token_lists:
        ids += [*toks, eos_id]
        starts += [True] + [False] * len(toks)
    rows = []
    for begin in range(0, len(ids), block):
        r_ids = ids[begin:begin + block]
        if len(r_ids) < 2:
            continue
        # a document cut by the block edge restarts its positions at 0 in the next row
        r_pos, p = [], 0
        for i in range(len(r_ids)):
            p = 0 if i == 0 or starts[begin + i] else p + 1
            r_pos.append(p)
        labels = [IGNORE if q == 0 else t for t, q in zip(r_ids, r_pos, strict=True)]
        rows.append({"input_ids": r_ids, "labels": labels, "position_ids": r_pos})
    return rows


class BlockCollator:
    """Stack fixed-length pretraining blocks (pad only the last, shorter one) with their position ids."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Collate blocks into tensors; padded tail tokens are their own masked segment."""
        import torch

        width = max(len(f["input_ids"]) for f in features)
        out: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
        for f in features:
            pad = width - len(f["input_ids"])
            out["input_ids"].append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            out["labels"].append(list(f["labels"]) + [IGNORE] * pad)
            out["position_ids"].append(list(f["position_ids"]) + list(range(pad)))
        return {k: torch.tensor(v) for k, v in out.items()}


def pretrain(recipe: Recipe, out: str | Path | None = None, resume: bool = False,
             overwrite: bool = False) -> dict[str, Any]:
    """``fintune pretrain``: load documents, pack into blocks, train (LoRA or full), write ``RUN/``."""
    import hashlib

    from tqdm import tqdm

    if recipe.method == "qlora":
        print("note: stage-1 QLoRA trains a LoRA adapter on a 4-bit base", flush=True)
    from fintune.train.best_metric import task_metric

    task_metric(recipe.model_copy(update={"stage": "pretrain"}))  # stage 1 selects by eval_loss only
    out = check_run_dir(recipe, out or recipe.output_dir or Path("runs") / recipe.name, resume, overwrite)
    model, tokenizer, lineage = prepare_model(recipe)
    check_sequence_length(recipe, model)
    docs = load_documents(recipe)
    if tokenizer.eos_token_id is None:
        raise FintuneError("the tokenizer has no EOS token", "documents need one between them; pick another model")
    split = recipe.data.split
    if split.method == "random":  # otherwise keep source order (chronological corpora stay in time order)
        import random

        random.Random(split.seed).shuffle(docs)
    tokens = [tokenizer(d, add_special_tokens=False)["input_ids"] for d in tqdm(docs, desc="tokenize", unit="doc")]
    rows = pack_documents(tokens, tokenizer.eos_token_id, recipe.max_seq_length)
    # held-out blocks for eval loss: the last val_size (or test_size) fraction of the stream
    n_eval = int(len(rows) * (split.val_size or split.test_size))
    train_rows, eval_rows = rows[: len(rows) - n_eval], rows[len(rows) - n_eval:]
    if not train_rows:
        raise FintuneError("pretraining corpus gives no training block", "add documents or lower val_size")
    digest = hashlib.sha256("\x00".join(docs).encode("utf-8")).hexdigest()
    recipe = recipe.model_copy(update={"packing": True})
    return run_training(recipe, model, tokenizer, train_rows, eval_rows or None, out, resume, "pretrain",
                        dict(lineage, data_hashes={"documents": digest}, documents=len(docs),
                             licenses={**lineage["licenses"], **find_licenses(source_paths(recipe))},
                             blocks=len(rows), tokens=sum(len(t) + 1 for t in tokens)),
                        collator=BlockCollator(tokenizer.pad_token_id))
