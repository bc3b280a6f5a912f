"""The one :class:`Predictor`: a task spec + a model + its tokenizer + a backend (torch, or vLLM).

``eval``, ``eval --suite``, ``sweep``, ``analyze``, ``serve`` and ``demo`` all predict through it, so labels, answer
format, template and temperature are derived in one place (the run's :class:`~fintune.run.TaskSpec`).

Score mode ranks the spec's labels by the log-probability of the exact answer text training taught; generate
mode decodes greedily and parses strictly. :meth:`Predictor.score` is the plain scoring entry point (rendered
prompts and candidate answers in, ``[n, n_labels]`` log-probabilities out) that callbacks and benchmarks call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

from fintune.errors import FintuneError
from fintune.models import ModelInfo, load_for_inference
from fintune.predict.rows import (
    generation_prompt,
    label_prompts,
    predictions_from_generations,
    predictions_from_scores,
)
from fintune.predict.stats import InferenceStats
from fintune.predict.vllm_backend import VllmBackend, check_vllm_run
from fintune.prompts.tokenize import encode_text
from fintune.records import Prediction
from fintune.run import SCORABLE_FORMATS, TaskSpec

BACKENDS = ("torch", "vllm")


class Backend(Protocol):
    """What a backend does: score candidate answers, and generate."""

    name: str

    def score(self, prompts: Sequence[str], continuations: Sequence[Sequence[str]], batch_size: int,
              stats: InferenceStats | None, progress: bool, desc: str) -> Any:
        """``[n, n_continuations]`` summed log-probabilities."""

    def generate(self, prompts: Sequence[str], max_new_tokens: int, batch_size: int,
                 stats: InferenceStats | None, progress: bool, desc: str) -> list[str]:
        """Greedy continuations (new text only)."""


class TorchBackend:
    """transformers forward passes (``fintune.predict.torch_backend``), with a per-process prompt-prefix cache."""

    name = "torch"

    def __init__(self, model: Any, tokenizer: Any) -> None:
        from fintune.predict.torch_backend import PrefixCache

        self.model, self.tokenizer = model, tokenizer
        self.prefix_cache = PrefixCache()

    def score(self, prompts: Sequence[str], continuations: Sequence[Sequence[str]], batch_size: int,
              stats: InferenceStats | None, progress: bool, desc: str) -> Any:
        """See :func:`fintune.predict.torch_backend.score_continuations`."""
        from fintune.predict import torch_backend

        return torch_backend.score_continuations(self.model, self.tokenizer, prompts, continuations,
                                                 batch_size=batch_size, stats=stats, progress=progress, desc=desc,
                                                 prefix_cache=self.prefix_cache)

    def generate(self, prompts: Sequence[str], max_new_tokens: int, batch_size: int,
                 stats: InferenceStats | None, progress: bool, desc: str) -> list[str]:
        """See :func:`fintune.predict.torch_backend.generate_texts`."""
        from fintune.predict import torch_backend

        return torch_backend.generate_texts(self.model, self.tokenizer, prompts, max_new_tokens=max_new_tokens,
                                            batch_size=batch_size, stats=stats, progress=progress, desc=desc)


def default_threads() -> int:
    """Torch intra-op threads on a CPU: the cores this process may use (``OMP_NUM_THREADS`` wins when set).

    torch's default counts every core of the machine even when the process is confined to fewer (a container, a
    cgroup, ``taskset``), and oversubscribed spinning threads slow a forward many times over.
    """
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def set_inference_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads to ``threads``; by default cap them at :func:`default_threads` (a count set lower
    already, e.g. by ``fintune serve --threads``, is kept). Returns the number in force."""
    import torch

    n = threads or min(torch.get_num_threads(), default_threads())
    if not torch.cuda.is_available() and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


class Predictor:
    """Task spec + model + tokenizer + backend. Not thread-safe: one caller predicts at a time."""

    def __init__(self, spec: TaskSpec, model: Any, tokenizer: Any, backend: str | Backend = "torch",
                 model_name: str = "", temperature: float | None = None, batch_size: int | None = None,
                 max_new_tokens: int | None = None, info: ModelInfo | None = None) -> None:
        self.spec, self.model, self.tokenizer, self.info = spec, model, tokenizer, info
        self.model_name = model_name
        self.temperature = temperature
        self.batch_size = batch_size or spec.eval.per_device_eval_batch_size
        self.max_new_tokens = max_new_tokens or spec.eval.max_new_tokens
        if isinstance(backend, str):
            if backend == "torch":
                backend = TorchBackend(model, tokenizer)
            elif backend == "vllm":
                backend = VllmBackend.for_predictor(self)
            else:
                raise FintuneError(f"--backend {backend!r}: unknown backend", f"use one of {list(BACKENDS)}")
        self.backend: Backend = backend

    @classmethod
    def load(cls, run_or_model: str, dtype: str = "auto", backend: str = "torch", batch_size: int | None = None,
             max_new_tokens: int | None = None, spec: TaskSpec | None = None, merge: bool = True,
             threads: int | None = None, device: str = "auto") -> Predictor:
        """Load a run directory, model directory, hub id or alias once, in eval mode.

        ``spec`` defaults to the run's recorded task spec (a plain model: sentiment labels, ``label`` format,
        the model's own chat template). ``device``: ``auto`` = CUDA, else Apple MPS, else CPU (the torch backend;
        :mod:`fintune.device` picks the dtype for ``dtype="auto"``). ``merge`` folds a LoRA adapter into the weights for the torch backend
        (the same function, one matmul less per layer); the vLLM backend serves the adapter as an adapter.
        """
        if backend not in BACKENDS:
            raise FintuneError(f"--backend {backend!r}: unknown backend", f"use one of {list(BACKENDS)}")
        if backend == "vllm":
            check_vllm_run(run_or_model)  # before spending time on weights
        set_inference_threads(threads)
        model, tokenizer, info = load_for_inference(run_or_model, dtype=dtype,
                                                    device=device if backend == "torch" else None)
        if merge and backend == "torch" and info.kind == "adapter" and hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
            model.eval()
        spec = spec or info.spec or TaskSpec()
        if not spec.labels and spec.task == "sentiment":
            spec = spec.model_copy(update={"labels": ["negative", "neutral", "positive"]})
        return cls(spec, model, tokenizer, backend=backend, model_name=str(run_or_model),
                   temperature=info.temperature, batch_size=batch_size, max_new_tokens=max_new_tokens, info=info)

    # ------------------------------------------------------------ spec-derived settings

    @property
    def labels(self) -> tuple[str, ...]:
        """The label set being ranked (empty for free-text tasks)."""
        return tuple(self.spec.labels or ())

    @property
    def mode(self) -> str:
        """The spec's default mode: ``score`` for closed label sets, ``generate`` otherwise."""
        return "score" if self.spec.format in SCORABLE_FORMATS else "generate"

    # ------------------------------------------------------------ the entry points

    def score(self, prompts: Sequence[str], continuations: Sequence[Sequence[str]],
              stats: InferenceStats | None = None, progress: bool = False, desc: str = "score") -> Any:
        """Summed log-probability of each candidate answer given its rendered prompt: ``[n, n_candidates]``."""
        return self.backend.score(prompts, continuations, self.batch_size, stats, progress, desc)

    def generate(self, prompts: Sequence[str], max_new_tokens: int | None = None,
                 stats: InferenceStats | None = None, progress: bool = False, desc: str = "generate") -> list[str]:
        """Greedy generation for rendered prompts (new text only)."""
        return self.backend.generate(prompts, max_new_tokens or self.max_new_tokens, self.batch_size, stats,
                                     progress, desc)

    def score_rows(self, rows: Sequence[dict[str, Any]], stats: InferenceStats | None = None,
                   progress: bool = False, desc: str = "score") -> Any:
        """``[n_rows, n_labels]`` log-probabilities of each label's trained answer for prepared rows."""
        if not self.labels:
            raise FintuneError(f"score mode needs a label set; task '{self.spec.task}' has none",
                               "use --mode generate")
        prompts, conts = [], []
        for row in rows:
            p, c = label_prompts(row, self.labels, self.spec.format, self.spec.template, self.tokenizer,
                                 self.spec.template_date)
            prompts.append(p)
            conts.append(c)
        return self.score(prompts, conts, stats, progress, desc)

    def predict_rows(self, rows: Sequence[dict[str, Any]], mode: str | None = None,
                     temperature: float | None = None, stats: InferenceStats | None = None,
                     progress: bool = False, desc: str | None = None) -> list[Prediction]:
        """Predictions for prepared rows (``messages`` + ``id``/``ticker``/``date``/``label``/``extra``).

        Score mode applies ``temperature`` (default: the predictor's calibration temperature, else 1).
        """
        mode = mode or self.mode
        if mode == "score":
            logprobs = self.score_rows(rows, stats, progress, desc or "score")
            temp = temperature if temperature is not None else (self.temperature or 1.0)
            return predictions_from_scores(rows, self.labels, logprobs, temp, self.model_name)
        if mode == "generate":
            prompts = [generation_prompt(r, self.spec.template, self.tokenizer, self.spec.template_date)
                       for r in rows]
            texts = self.generate(prompts, stats=stats, progress=progress, desc=desc or "generate")
            return predictions_from_generations(rows, texts, self.spec.format, self.labels or None,
                                                self.model_name, count_tokens=lambda t: len(
                                                    encode_text(self.tokenizer, t)))
        raise FintuneError(f"--mode {mode!r}: unknown mode", "use score or generate")

    def describe(self) -> dict[str, Any]:
        """Model, base model, backend and the spec (for manifests and ``/v1/info``)."""
        return {"model": self.model_name, "base_model": self.info.base_model if self.info else None,
                "kind": self.info.kind if self.info else None, "backend": self.backend.name,
                "task": self.spec.task, "format": self.spec.format, "template": self.spec.template,
                "labels": list(self.labels), "mode": self.mode, "temperature": self.temperature}

