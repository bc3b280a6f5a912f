#!/usr/bin/env bash
# One-shot check for a lent CUDA GPU (no network, < 8 min): LoRA vs QLoRA NF4 training of the embedded default and a
# tiny Llama (max_memory_allocated, tokens/s, QLoRA/LoRA memory ratio), 2-process DDP when 2 GPUs are visible,
# FPB scoring with the torch backend (and vLLM when installed). Writes gpu_check.json to $OUT (or --out DIR).
#   benchmarks/gpu_check.sh [--cpu] [--out DIR]
# --cpu runs the same steps on the CPU at small sizes (CUDA-only figures null, with the reason). Needs the embedded
# default in $FINTUNE_HOME (fintune models pull smollm2-135m) and ../shared/data (or $FINTUNE_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
limit=480  # the GPU budget: 8 minutes; the CPU version is only bounded against hangs
case " $* " in *" --cpu "*) limit=1800 ;; esac
exec timeout "${GPU_CHECK_TIMEOUT:-$limit}" python benchmarks/gpu_check.py "$@"
