"""Batching without padding waste, and the answer-only loss.

:class:`PackingCollator` takes a batch of tokenized examples (``input_ids`` + ``labels`` with prompt tokens at -100)
and packs them first-fit-decreasing into as few rows of at most ``max_seq_length`` tokens as possible, with
``position_ids`` restarting at 0 for every example and no 2D attention mask. transformers then detects the packed
sequences from the position ids (``masking_utils.find_packed_sequence_indices``) and builds a block-diagonal causal
mask, so packed examples never attend to each other. The first label of every example is -100, so no token is
trained to predict across a boundary. The loss is the same token-mean over the batch's answer tokens as an
unpacked padded batch gives (tests check this).

:func:`answer_only_loss` runs the LM head only on positions whose next token is trained (``logits_to_keep`` with
an index tensor), which saves the vocab-sized matmul and logits memory on prompt tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

IGNORE = -100


def pack_rows(lengths: Sequence[int], max_len: int) -> list[list[int]]:
    """Indices of examples grouped into rows of total length <= ``max_len`` (first-fit decreasing, stable)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(max_len - lengths[i])
    return [sorted(r) for r in rows]


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class PackingCollator:
    """Pack a batch of ``{"input_ids", "labels"}`` into rows with restarting ``position_ids`` (no attention mask).

    Args:
        pad_token_id: id used to fill the tail of rows shorter than the longest row.
        max_seq_length: the longest a packed row may be (each example must already fit).
        pad_to_multiple_of: round the row width up to this. Few distinct shapes keep oneDNN / cuBLAS from building
            (and caching) a new kernel for every batch: with bf16 matmul precision on CPU, unrounded widths grew
            the process by GBs and ran slower (measured in ``tests/train`` and BENCHMARKS.md).
    """

    def __init__(self, pad_token_id: int, max_seq_length: int, pad_to_multiple_of: int = 64) -> None:
        self.pad_token_id = pad_token_id
        self.max_seq_length = max_seq_length
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Collate a list of tokenized examples into a packed batch of tensors."""
        import torch

        lengths = [len(f["input_ids"]) for f in features]
        rows = pack_rows(lengths, self.max_seq_length)
        width = _round_up(max(sum(lengths[i] for i in row) for row in rows), self.pad_to_multiple_of)
        weighted = "weight" in features[0]
        ids, labels, positions, weights = [], [], [], []
        for row in rows:
            r_ids: list[int] = []
            r_lab: list[int] = []
            r_pos: list[int] = []
            r_w: list[float] = []
            for i in row:
                f = features[i]
                r_ids += list(f["input_ids"])
                r_lab += [IGNORE, *list(f["labels"])[1:]]
                r_pos += list(range(lengths[i]))
                if weighted:
                    r_w += [float(f["weight"])] * lengths[i]
            pad = width - len(r_ids)
            ids.append(r_ids + [self.pad_token_id] * pad)
            labels.append(r_lab + [IGNORE] * pad)
            # the pad tail is its own "sequence" starting at 0, so it is masked off from the real examples
            positions.append(r_pos + list(range(pad)))
            weights.append(r_w + [0.0] * pad)
        batch = {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                 "position_ids": torch.tensor(positions)}
        if weighted:
            batch["token_weights"] = torch.tensor(weights)
        return batch


class PaddingCollator:
    """Right-pad every example of the batch to the longest one (rounded up to ``pad_to_multiple_of``), with an
    attention mask. With the default ``pad_to_multiple_of=1`` this is the plain baseline of the benchmarks."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int = 1) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Collate a list of tokenized examples into a padded batch of tensors."""
        import torch

        width = _round_up(max(len(f["input_ids"]) for f in features), self.pad_to_multiple_of)
        ids, labels, mask, weights = [], [], [], []
        for f in features:
            pad = width - len(f["input_ids"])
            ids.append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            labels.append(list(f["labels"]) + [IGNORE] * pad)
            mask.append([1] * len(f["input_ids"]) + [0] * pad)
            weights.append([float(f.get("weight", 1.0))] * len(f["input_ids"]) + [0.0] * pad)
        batch = {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}
        if "weight" in features[0]:
            batch["token_weights"] = torch.tensor(weights)
        return batch


def answer_only_loss(model: Any, batch: dict[str, Any], num_items_in_batch: Any = None) -> Any:
    """Causal-LM loss over trained tokens only, computing logits only where the next token is trained.

    Sum of token cross-entropies divided by ``num_items_in_batch`` (Trainer's count across gradient
    accumulation) or by the number of trained tokens in this batch. With ``token_weights`` in the batch (a recipe's
    ``class_weighting``: each example's tokens carry its class weight) the sum is weighted and the divisor stays
    the token count, so balanced weights (mean 1 over the training set) keep the loss on the same scale.
    """
    import torch

    labels = batch["labels"]
    targets = labels[:, 1:]
    trained = targets != IGNORE
    # keep only positions whose *next* token is trained: (batch, seq) bool -> logits flattened to (n, vocab)
    keep = torch.nn.functional.pad(trained, (0, 1), value=False)
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "token_weights")}
    out = model(**inputs, logits_to_keep=keep, use_cache=False)
    logits = out.logits.float().reshape(-1, out.logits.size(-1))
    if "token_weights" in batch:
        # the weight of the token each kept position predicts (targets are shifted by one)
        token_losses = torch.nn.functional.cross_entropy(logits, targets[trained], reduction="none")
        loss_sum = (token_losses * batch["token_weights"][:, 1:][trained].to(token_losses.dtype)).sum()
    else:
        loss_sum = torch.nn.functional.cross_entropy(logits, targets[trained], reduction="sum")
    denom = num_items_in_batch if num_items_in_batch is not None else trained.sum()
    if torch.is_tensor(denom):
        denom = denom.to(loss_sum.device)
    return loss_sum / denom


def count_trained_tokens(batch: dict[str, Any]) -> int:
    """Number of tokens the loss trains on in a collated batch."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())
