"""``fintune serve RUN [--host 127.0.0.1 --port 8000]``: HTTP API with dynamic batching."""

from __future__ import annotations

import argparse

from fintune.cliargs import non_negative_float, port, positive_int


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``serve`` verb."""
    from fintune.serve import MAX_BATCH_ITEMS, MAX_BODY_BYTES, MAX_QUEUE, MAX_TEXT_CHARS, TOKEN_ENV

    p = sub.add_parser("serve", help="serve a run over HTTP (FastAPI, dynamic batching, optional bearer token)",
                       description="POST /v1/analyze, POST /v1/analyze/batch, GET /v1/model, GET /healthz, and OpenAI-compatible "
                                   "POST /v1/chat/completions and GET /v1/models; "
                                   f"OpenAPI at /docs. Set ${TOKEN_ENV} to require 'Authorization: Bearer <token>' "
                                   "(on /docs and /openapi.json too, unless --open-docs).")
    p.add_argument("model", nargs="?", default="smollm2-135m",
                   help="run directory, model directory, hub id or alias (default: smollm2-135m)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port, default=8000)
    p.add_argument("--max-batch", type=positive_int, default=32, help="most requests per forward (1 = no batching)")
    p.add_argument("--wait-ms", type=non_negative_float, default=5.0, help="how long to wait for more requests after the first")
    p.add_argument("--backend", choices=("hf", "vllm"), default="hf", help="vllm needs vLLM and a CUDA GPU")
    p.add_argument("--calibration", default=None, help="calibration.json / eval dir with the fitted temperature")
    p.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    p.add_argument("--max-body-bytes", type=positive_int, default=MAX_BODY_BYTES)
    p.add_argument("--max-text-chars", type=positive_int, default=MAX_TEXT_CHARS)
    p.add_argument("--max-batch-items", type=positive_int, default=MAX_BATCH_ITEMS)
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads (default: every core this process may use)")
    p.add_argument("--max-queue", type=positive_int, default=MAX_QUEUE,
                   help="most texts queued or running at once; past it requests get 503 with Retry-After")
    p.add_argument("--open-docs", action="store_true",
                   help=f"serve /docs and /openapi.json without the token even when ${TOKEN_ENV} is set")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``fintune serve`` until SIGINT/SIGTERM."""
    from fintune.serve import serve

    serve(args.model, host=args.host, port=args.port, max_batch=args.max_batch, wait_ms=args.wait_ms,
          dtype=args.dtype, backend=args.backend, calibration=args.calibration,
          max_body_bytes=args.max_body_bytes, max_text_chars=args.max_text_chars,
          max_batch_items=args.max_batch_items, log_level=args.log_level, threads=args.threads,
          max_queue=args.max_queue, open_docs=args.open_docs)
    return 0
