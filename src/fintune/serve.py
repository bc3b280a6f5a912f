"""``fintune serve``: the analyzer behind a FastAPI app, with dynamic batching.

Endpoints: ``POST /v1/analyze``, ``POST /v1/analyze/batch``, ``GET /v1/model``, ``GET /healthz`` (OpenAPI at
``/openapi.json``, docs at ``/docs``), and the OpenAI-compatible ``GET /v1/models`` and ``POST /v1/chat/completions``
(:mod:`fintune.serve_openai`: same auth, limits, batcher and model call). Every request body is validated by pydantic (unknown fields, wrong types,
empty text, too long text, too many items -> 422 with a one-line ``error``); malformed JSON -> 400; bodies over
the size limit -> 413 (checked on ``Content-Length`` and on the bytes actually streamed).

Concurrent requests are micro-batched: each request puts its items on a queue and awaits futures; one worker
thread takes up to ``max_batch`` items, waiting at most ``wait_ms`` for more after the first, and runs ONE batched
predictor call (:func:`model_call`). The queue is bounded (``max_queue`` items queued or running): past it a request
gets 503 with ``Retry-After``. Work for a client that disconnected is cancelled before it reaches the model. On
SIGTERM uvicorn stops accepting, lets in-flight requests finish, then the batcher drains its queue.

An optional bearer token (``$FINTUNE_API_TOKEN``) protects ``/v1/*`` and, unless ``open_docs``, ``/docs``,
``/redoc`` and ``/openapi.json``. It is checked by an ASGI middleware before any body is read or parsed (a malformed
body without a token is 401, not 400), compared in constant time and never logged. ``/healthz`` stays open for
load balancers.
"""

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fintune.analyze import AnalyzeItem, Analyzer, public_result
from fintune.batching import MAX_QUEUE, DynamicBatcher, QueueFull
from fintune.errors import FintuneError
from fintune.predict.predictor import set_inference_threads
from fintune.redact import install_log_redaction
from fintune.serve_asgi import BearerAuth, BodySizeLimit
from fintune.serve_openai import add_openai_routes

TOKEN_ENV = "FINTUNE_API_TOKEN"
MAX_BODY_BYTES = 256 * 1024
MAX_TEXT_CHARS = 8000
MAX_BATCH_ITEMS = 256
log = logging.getLogger("fintune.serve")


@dataclass
class ServeConfig:
    """Server limits and batching settings."""

    max_batch: int = 32
    wait_ms: float = 5.0
    max_body_bytes: int = MAX_BODY_BYTES
    max_text_chars: int = MAX_TEXT_CHARS
    max_batch_items: int = MAX_BATCH_ITEMS
    token: str | None = None
    max_queue: int = MAX_QUEUE
    open_docs: bool = False


# ---------------------------------------------------------------- the app


def _request_models(cfg: ServeConfig) -> tuple[type, type, type]:
    """Pydantic request/response models with this server's limits baked into the Field constraints."""
    from pydantic import BaseModel, ConfigDict, Field, field_validator

    class BatchItem(BaseModel):
        """One text of a batch request."""

        model_config = ConfigDict(extra="forbid", strict=True)
        text: str = Field(min_length=1, max_length=cfg.max_text_chars, description="the financial text")
        id: str | None = Field(None, max_length=200, description="echoed back")
        ticker: str | None = Field(None, max_length=20)
        date: str | None = Field(None, max_length=40, description="YYYY-MM-DD or an ISO timestamp")

        @field_validator("text")
        @classmethod
        def _not_blank(cls, v: str) -> str:
            if not v.strip():
                raise ValueError("text is blank")
            return v

    class AnalyzeRequest(BatchItem):
        """One text to analyse."""

        explain: bool = Field(False, description="also generate a short explanation (slower)")

    class BatchRequest(BaseModel):
        """Several texts analysed in one request."""

        model_config = ConfigDict(extra="forbid", strict=True)
        items: list[BatchItem] = Field(min_length=1, max_length=cfg.max_batch_items)
        explain: bool = False

    return AnalyzeRequest, BatchItem, BatchRequest


def _result_model() -> type:
    from pydantic import BaseModel

    class AnalyzeResponse(BaseModel):
        """The analysis of one text."""

        id: str
        label: str
        sentiment: str | None
        confidence: float | None
        calibrated: bool
        probabilities: dict[str, float]
        expected_move: float | None
        analysis: str | None
        ticker: str | None
        date: str | None
        model: str
        latency_ms: float | None

    class BatchResponse(BaseModel):
        """The analyses of a batch, in request order."""

        results: list[AnalyzeResponse]
        latency_ms: float

    return AnalyzeResponse, BatchResponse


def _one_line(errors: list[dict[str, Any]]) -> str:
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    msg = str(first.get("msg", "invalid")).replace("\n", " ")
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {msg}{more}"


def model_call(engine: Any, prepared: list[Any], explain: bool) -> list[Any]:
    """The server's ONE call into the model: a batch of prepared items -> predictions, in order."""
    return engine.predict_prepared(prepared, explain=explain)


async def _until_disconnect(receive: Callable) -> None:
    """Return when the client closes the connection (after the body was read, ``receive`` waits for that)."""
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return


def create_app(analyzer: Analyzer, cfg: ServeConfig | None = None, backend: Any = None) -> Any:
    """The FastAPI app serving ``analyzer`` (the batcher starts and drains with the app's lifespan)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    cfg = cfg or ServeConfig()
    AnalyzeRequest, _, BatchRequest = _request_models(cfg)
    AnalyzeResponse, BatchResponse = _result_model()
    engine = backend or analyzer
    if cfg.max_queue < cfg.max_batch_items:
        raise FintuneError(f"--max-queue {cfg.max_queue}: smaller than --max-batch-items {cfg.max_batch_items}",
                           "a full batch request must fit in the queue")
    batcher = DynamicBatcher(lambda items, explain: model_call(engine, items, explain), engine.prepare,
                             max_batch=cfg.max_batch, wait_ms=cfg.wait_ms, max_queue=cfg.max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        install_log_redaction()  # after uvicorn configured its loggers: no secret in any log line
        batcher.start()
        log.info("serving %s (%s mode, max_batch=%d, wait_ms=%.1f, auth=%s)", analyzer.model_name, analyzer.mode,
                 cfg.max_batch, cfg.wait_ms, "on" if cfg.token else "off")
        yield
        # uvicorn has already let in-flight requests finish; drain anything still queued before exiting
        await asyncio.get_running_loop().run_in_executor(None, batcher.close)
        log.info("batcher drained: %s", batcher.stats())

    app = FastAPI(title="fintune", version=_version(), lifespan=lifespan,
                  description="Financial text analysis with a fine-tuned small language model.")
    app.state.batcher = batcher
    app.add_middleware(BodySizeLimit, max_bytes=cfg.max_body_bytes)
    app.add_middleware(BearerAuth, token=cfg.token, open_docs=cfg.open_docs)  # added last = runs first

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            err = next(e for e in errors if e.get("type") == "json_invalid")
            pos = err.get("loc", ("body", "?"))[-1]
            detail = (err.get("ctx") or {}).get("error", "JSON decode error")
            return JSONResponse({"error": f"malformed JSON at position {pos}: {detail}"}, status_code=400)
        safe = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return JSONResponse({"error": _one_line(errors), "detail": safe}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    def _item(req: Any, where: str) -> AnalyzeItem:
        return AnalyzeItem(text=req.text, id=req.id or "", ticker=req.ticker.upper() if req.ticker else None,
                           date=req.date, where=where)

    def _plain_error(message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    async def _predict(items: list[AnalyzeItem], explain: bool, request: Request,
                       error: Callable[..., Any] = _plain_error) -> list[Any] | JSONResponse:
        """The routes' one path to the model: queue ``items`` on the batcher and await their predictions (or a
        ready error response built by ``error(message, status, headers)``)."""
        try:
            jobs = batcher.enqueue(items, explain)
        except QueueFull as exc:
            return error(str(exc), 503, {"Retry-After": str(exc.retry_after)})
        except RuntimeError as exc:
            return error(str(exc), 503)
        work = asyncio.gather(*(j.future for j in jobs))
        watch = asyncio.ensure_future(_until_disconnect(request.receive))
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():  # the client went away: drop its items before they reach the model
                batcher.cancel(jobs)
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
                return error("client disconnected", 499)
            preds = work.result()
        except FintuneError as exc:
            batcher.cancel(jobs)
            return error(exc.one_line(), 422)
        except asyncio.CancelledError:  # the server cancelled this request (shutdown)
            batcher.cancel(jobs)
            raise
        finally:
            watch.cancel()
        return list(preds)

    async def _analyze(items: list[AnalyzeItem], explain: bool, request: Request
                       ) -> list[dict[str, Any]] | JSONResponse:
        preds = await _predict(items, explain, request)
        if isinstance(preds, JSONResponse):
            return preds
        return [public_result(p, analyzer) for p in preds]

    @app.post("/v1/analyze", response_model=AnalyzeResponse, responses={400: {}, 401: {}, 413: {}, 422: {}, 503: {}})
    async def analyze(req: AnalyzeRequest, request: Request) -> Any:
        """Analyse one text: label, probabilities, (calibrated) confidence, expected move, optional analysis."""
        t0 = time.perf_counter()
        out = await _analyze([_item(req, "text")], req.explain, request)
        if isinstance(out, JSONResponse):
            return out
        result = out[0]
        result["latency_ms"] = round((time.perf_counter() - t0) * 1000.0, 3)
        return result

    @app.post("/v1/analyze/batch", response_model=BatchResponse,
              responses={400: {}, 401: {}, 413: {}, 422: {}, 503: {}})
    async def analyze_batch(req: BatchRequest, request: Request) -> Any:
        """Analyse up to the batch limit of texts in one request (results in request order)."""
        t0 = time.perf_counter()
        items = [_item(it, f"items[{k}].text") for k, it in enumerate(req.items)]
        out = await _analyze(items, req.explain, request)
        if isinstance(out, JSONResponse):
            return out
        return {"results": out, "latency_ms": round((time.perf_counter() - t0) * 1000.0, 3)}

    @app.get("/v1/model")
    async def model_info() -> dict[str, Any]:
        """What is served (labels, format, template, calibration), the limits and batching statistics."""
        return {**analyzer.describe(), "backend": "vllm" if analyzer.predictor.backend.name == "vllm" else "hf",
                "limits": {"max_body_bytes": cfg.max_body_bytes, "max_text_chars": cfg.max_text_chars,
                           "max_batch_items": cfg.max_batch_items, "max_queue": cfg.max_queue},
                "batching": batcher.stats(), "auth": bool(cfg.token), "docs_open": cfg.open_docs or not cfg.token}

    add_openai_routes(app, analyzer, cfg.max_text_chars, _predict)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness: ok while the batcher's worker is alive."""
        alive = batcher._thread.is_alive()
        if not alive:
            return JSONResponse({"status": "down"}, status_code=503)
        return {"status": "ok", "model": analyzer.model_name}

    return app


def _version() -> str:
    from fintune import __version__

    return __version__


# ---------------------------------------------------------------- backends and entry point


def load_backend(name: str, analyzer: Analyzer) -> Any:
    """``hf`` (the analyzer itself) or ``vllm`` (needs vLLM installed and a CUDA GPU)."""
    if name == "hf":
        return analyzer
    if name == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise FintuneError("--backend vllm: vLLM is not installed",
                               'pip install "fintune[vllm]" on a CUDA machine, or use --backend hf') from None
        return analyzer  # loaded with Predictor backend "vllm" (see serve())
    raise FintuneError(f"--backend {name!r}: unknown backend", "use hf or vllm")


def check_serve_inputs(host: str, port: int, calibration: str | None) -> None:
    """Everything ``serve`` can check before loading the model: the calibration file and a bindable address."""
    import socket

    if calibration and not os.path.exists(calibration):
        raise FintuneError(f"--calibration {calibration}: not found",
                           "give a calibration.json or a `fintune eval` output directory")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FintuneError(f"--host {host}: cannot resolve ({exc.strerror})") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            raise FintuneError(f"--host {host} --port {port}: cannot listen ({exc.strerror})",
                               "the port is in use or needs privileges: choose another --port") from None


def serve(run_or_model: str, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 32, wait_ms: float = 5.0,
          batch_size: int | None = None, dtype: str = "auto", backend: str = "hf", calibration: str | None = None,
          max_body_bytes: int = MAX_BODY_BYTES, max_text_chars: int = MAX_TEXT_CHARS,
          max_batch_items: int = MAX_BATCH_ITEMS, log_level: str = "info", threads: int | None = None,
          max_queue: int = MAX_QUEUE, open_docs: bool = False) -> None:
    """Load the model once and serve it with uvicorn until SIGINT/SIGTERM (graceful: in-flight requests finish).

    ``threads``: torch intra-op threads on CPU (default: every core this process may use, as in ``analyze``; on 2
    cores that served 1.4x the documents/min of the old all-but-one default, `benchmarks/analyze_throughput.py
    --serve-threads 2`: the event loop's work between batches is small next to a forward).
    """
    import uvicorn

    set_inference_threads(threads)

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    if backend == "vllm":  # fail before spending a minute loading weights
        load_backend("vllm", None)  # type: ignore[arg-type]
    check_serve_inputs(host, port, calibration)
    token = os.environ.get(TOKEN_ENV) or None
    analyzer = Analyzer.load(run_or_model, dtype=dtype, batch_size=batch_size or max_batch, calibration=calibration,
                             backend="vllm" if backend == "vllm" else "torch")
    engine = load_backend(backend, analyzer)
    cfg = ServeConfig(max_batch=max_batch, wait_ms=wait_ms, max_body_bytes=max_body_bytes,
                      max_text_chars=max_text_chars, max_batch_items=max_batch_items, token=token,
                      max_queue=max_queue, open_docs=open_docs)
    app = create_app(analyzer, cfg, backend=engine)
    # A long keep-alive: a client pool reuses its connections, and when a busy CPU delays the event loop past a short
    # keep-alive timer the server would close a connection that already carries the next request.
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=60,
                timeout_keep_alive=75)
