"""Inference: one :class:`Predictor` (task spec + model + tokenizer + backend) behind every front.

Modules: ``predictor`` (the Predictor, backends, thread defaults), ``torch_backend`` (batched scoring and greedy
generation with transformers), ``vllm_backend`` (vLLM, optional), ``rows`` (prepared rows -> prompts, outputs ->
Predictions), ``stats`` (speed and memory). The names below are the stable import paths.
"""

from __future__ import annotations

from fintune.predict.rows import (
    forecast_label_answer,
    generation_prompt,
    label_prompts,
    parse_generated,
    predictions_from_generations,
    predictions_from_scores,
    signal_asof,
    softmax_rows,
)
from fintune.predict.stats import InferenceStats, peak_memory
from fintune.prompts.tokenize import encode_prompt, leading_special_ids
from fintune.run import SCORABLE_FORMATS

__all__ = [
    "MIN_SHARED_PREFIX", "SCORABLE_FORMATS", "InferenceStats", "Predictor", "PrefixCache", "_shared_prefix_len",
    "encode_prompt", "forecast_label_answer", "generate_texts", "generation_prompt", "label_prompts",
    "leading_special_ids", "parse_generated", "peak_memory", "predictions_from_generations",
    "predictions_from_scores", "score_continuations", "signal_asof", "softmax_rows",
]


_TORCH_NAMES = ("MIN_SHARED_PREFIX", "PrefixCache", "_shared_prefix_len", "generate_texts", "score_continuations")


def __getattr__(name: str) -> object:
    # torch is heavy: the torch backend's names are imported on first use, so `import fintune.predict` stays light
    if name == "Predictor":
        from fintune.predict.predictor import Predictor

        return Predictor
    if name in _TORCH_NAMES:
        from fintune.predict import torch_backend

        return getattr(torch_backend, name)
    raise AttributeError(name)
