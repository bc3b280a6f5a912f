"""``fintune serve``: the analyzer behind a FastAPI app, with dynamic batching.

Endpoints: ``POST /v1/analyze``, ``POST /v1/analyze/batch``, ``GET /v1/model``, ``GET /healthz`` (OpenAPI at
``/openapi.json``, docs at ``/docs``). Every request body is validated by pydantic (unknown fields, wrong types,
empty text, too long text, too many items -> 422 with a one-line ``error``); malformed JSON -> 400; bodies over
the size limit -> 413 (checked on ``Content-Length`` and on the bytes actually streamed).

Concurrent requests are batched: each request puts its item on a queue and awaits a future; one worker thread
takes up to ``max_batch`` items, waiting at most ``wait_ms`` for more after the first, and runs ONE batched
forward. On SIGTERM uvicorn stops accepting, lets in-flight requests finish, then the batcher drains its queue.

An optional bearer token (``$FINTUNE_API_TOKEN``) protects ``/v1/*``; it is compared in constant time and never
logged. ``/healthz`` stays open for load balancers.
"""

import asyncio
import contextlib
import hmac
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fintune.analyze import AnalyzeItem, Analyzer, public_result
from fintune.errors import FintuneError

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


class _Job:
    __slots__ = ("explain", "future", "item", "loop")

    def __init__(self, item: AnalyzeItem, explain: bool, future: asyncio.Future, loop: asyncio.AbstractEventLoop):
        self.item, self.explain, self.future, self.loop = item, explain, future, loop


_STOP = object()


def _resolve(job: _Job, value: Any, error: BaseException | None) -> None:
    def apply() -> None:
        if job.future.done():  # the client went away and the request was cancelled
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(value)

    job.loop.call_soon_threadsafe(apply)


class DynamicBatcher:
    """Collects concurrent requests into batches for one worker thread that owns the model.

    Args:
        predict: ``(prepared_items, explain) -> predictions`` (one batched forward).
        prepare: ``item -> prepared item``; raising :class:`FintuneError` fails only that request.
        max_batch: most items per forward; ``1`` is one-at-a-time serving.
        wait_ms: after the first item, how long to wait for more before running the batch.
    """

    def __init__(self, predict: Callable[[list[Any], bool], list[Any]], prepare: Callable[[AnalyzeItem], Any],
                 max_batch: int = 32, wait_ms: float = 5.0) -> None:
        if max_batch < 1:
            raise FintuneError(f"--max-batch {max_batch}: must be at least 1")
        if wait_ms < 0:
            raise FintuneError(f"--wait-ms {wait_ms}: must be >= 0")
        self._predict, self._prepare = predict, prepare
        self.max_batch, self.wait_s = max_batch, wait_ms / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._worker, name="fintune-batcher", daemon=True)
        self.batches = 0
        self.items = 0
        self.max_seen = 0
        self.in_flight = 0  # items submitted and not answered yet

    def start(self) -> "DynamicBatcher":
        """Start the worker thread."""
        self._thread.start()
        return self

    async def submit(self, item: AnalyzeItem, explain: bool = False) -> Any:
        """Queue one item and wait for its prediction (errors of this item are raised here)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("server is shutting down")
            self._queue.put(_Job(item, explain, future, loop))
            self.in_flight += 1
        try:
            return await future
        finally:
            with self._lock:
                self.in_flight -= 1

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish everything already queued, and join the worker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        """Batches run, items served and in flight, mean and largest batch size."""
        return {"batches": self.batches, "items": self.items, "in_flight": self.in_flight,
                "max_batch_seen": self.max_seen,
                "mean_batch": round(self.items / self.batches, 3) if self.batches else None,
                "max_batch": self.max_batch, "wait_ms": self.wait_s * 1000.0}

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        batch, stop = [first], False
        deadline = time.monotonic() + self.wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                stop = True
                break
            batch.append(job)
        return batch, stop

    def _worker(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, stop = self._collect(first)
            for explain in (False, True):
                jobs = [j for j in batch if j.explain == explain]
                if jobs:
                    self._run(jobs, explain)

    def _run(self, jobs: list[_Job], explain: bool) -> None:
        ready, prepared = [], []
        for job in jobs:
            try:
                prepared.append(self._prepare(job.item))
                ready.append(job)
            except FintuneError as exc:
                _resolve(job, None, exc)
            except Exception as exc:  # a bug for one input must not take the batch down
                _resolve(job, None, exc)
        if not ready:
            return
        try:
            preds = self._predict(prepared, explain)
        except Exception as exc:
            log.exception("batch of %d failed", len(ready))
            for job in ready:
                _resolve(job, None, exc)
            return
        self.batches += 1
        self.items += len(ready)
        self.max_seen = max(self.max_seen, len(ready))
        for job, pred in zip(ready, preds, strict=True):
            _resolve(job, pred, None)


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


def create_app(analyzer: Analyzer, cfg: ServeConfig | None = None, backend: Any = None) -> Any:
    """The FastAPI app serving ``analyzer`` (the batcher starts and drains with the app's lifespan)."""
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    cfg = cfg or ServeConfig()
    AnalyzeRequest, _, BatchRequest = _request_models(cfg)
    AnalyzeResponse, BatchResponse = _result_model()
    engine = backend or analyzer
    batcher = DynamicBatcher(lambda items, explain: engine.predict_prepared(items, explain=explain),
                             engine.prepare, max_batch=cfg.max_batch, wait_ms=cfg.wait_ms)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
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

    def require_token(request: Request) -> None:
        if not cfg.token:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), cfg.token.encode()):
            from fastapi import HTTPException

            raise HTTPException(401, detail="missing or wrong bearer token (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})

    def _item(req: Any, where: str) -> AnalyzeItem:
        return AnalyzeItem(text=req.text, id=req.id or "", ticker=req.ticker.upper() if req.ticker else None,
                           date=req.date, where=where)

    async def _analyze(items: list[AnalyzeItem], explain: bool) -> list[dict[str, Any]] | JSONResponse:
        try:
            preds = await asyncio.gather(*(batcher.submit(i, explain) for i in items))
        except FintuneError as exc:
            return JSONResponse({"error": exc.one_line()}, status_code=422)
        except RuntimeError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return [public_result(p, analyzer) for p in preds]

    @app.post("/v1/analyze", response_model=AnalyzeResponse, dependencies=[Depends(require_token)],
              responses={400: {}, 401: {}, 413: {}, 422: {}})
    async def analyze(req: AnalyzeRequest) -> Any:
        """Analyse one text: label, probabilities, (calibrated) confidence, expected move, optional analysis."""
        t0 = time.perf_counter()
        out = await _analyze([_item(req, "text")], req.explain)
        if isinstance(out, JSONResponse):
            return out
        result = out[0]
        result["latency_ms"] = round((time.perf_counter() - t0) * 1000.0, 3)
        return result

    @app.post("/v1/analyze/batch", response_model=BatchResponse, dependencies=[Depends(require_token)],
              responses={400: {}, 401: {}, 413: {}, 422: {}})
    async def analyze_batch(req: BatchRequest) -> Any:
        """Analyse up to the batch limit of texts in one request (results in request order)."""
        t0 = time.perf_counter()
        items = [_item(it, f"items[{k}].text") for k, it in enumerate(req.items)]
        out = await _analyze(items, req.explain)
        if isinstance(out, JSONResponse):
            return out
        return {"results": out, "latency_ms": round((time.perf_counter() - t0) * 1000.0, 3)}

    @app.get("/v1/model", dependencies=[Depends(require_token)])
    async def model_info() -> dict[str, Any]:
        """What is served (labels, format, template, calibration), the limits and batching statistics."""
        return {**analyzer.describe(), "backend": "vllm" if analyzer.predictor.backend.name == "vllm" else "hf",
                "limits": {"max_body_bytes": cfg.max_body_bytes, "max_text_chars": cfg.max_text_chars,
                           "max_batch_items": cfg.max_batch_items},
                "batching": batcher.stats(), "auth": bool(cfg.token)}

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


def _body_too_large(message: str) -> Exception:
    """An HTTPException(413): FastAPI turns any other exception raised while reading a body into a 400."""
    from starlette.exceptions import HTTPException

    return HTTPException(413, detail=message)


class BodySizeLimit:
    """ASGI middleware: 413 when ``Content-Length`` or the streamed body exceeds ``max_bytes``."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def _reject(self, send: Any, message: str, status: int = 413) -> None:
        import json

        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Check the declared size, then count the bytes as they are read."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = f"request body larger than {self.max_bytes} bytes"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._reject(send, "invalid Content-Length header", 400)
                return
            if size > self.max_bytes:
                await self._reject(send, f"{limit} ({size} bytes)")
                return
        seen, started = 0, False

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _body_too_large(f"{limit} (streamed)")
            return message

        async def tracked(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        from starlette.exceptions import HTTPException

        try:
            await self.app(scope, counted, tracked)
        except HTTPException as exc:  # raised while a body was read outside a route (no handler caught it)
            if started or exc.status_code != 413:
                raise
            await self._reject(send, str(exc.detail))


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


def serve(run_or_model: str, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 32, wait_ms: float = 5.0,
          batch_size: int | None = None, dtype: str = "auto", backend: str = "hf", calibration: str | None = None,
          max_body_bytes: int = MAX_BODY_BYTES, max_text_chars: int = MAX_TEXT_CHARS,
          max_batch_items: int = MAX_BATCH_ITEMS, log_level: str = "info", threads: int | None = None) -> None:
    """Load the model once and serve it with uvicorn until SIGINT/SIGTERM (graceful: in-flight requests finish).

    ``threads``: torch intra-op threads on CPU (default: all cores but one, which the event loop needs; torch's
    spinning worker threads slow a forward down many times over when they compete with it for cores).
    """
    import torch
    import uvicorn

    if not torch.cuda.is_available():
        torch.set_num_threads(threads or max(1, (os.cpu_count() or 2) - 1))

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if backend == "vllm":  # fail before spending a minute loading weights
        load_backend("vllm", None)  # type: ignore[arg-type]
    token = os.environ.get(TOKEN_ENV) or None
    analyzer = Analyzer.load(run_or_model, dtype=dtype, batch_size=batch_size or max_batch, calibration=calibration,
                             backend="vllm" if backend == "vllm" else "torch")
    engine = load_backend(backend, analyzer)
    cfg = ServeConfig(max_batch=max_batch, wait_ms=wait_ms, max_body_bytes=max_body_bytes,
                      max_text_chars=max_text_chars, max_batch_items=max_batch_items, token=token)
    app = create_app(analyzer, cfg, backend=engine)
    # A long keep-alive: a client pool reuses its connections, and when a busy CPU delays the event loop past a short
    # keep-alive timer the server would close a connection that already carries the next request.
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=60,
                timeout_keep_alive=75)
