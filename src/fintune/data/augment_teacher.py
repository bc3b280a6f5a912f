"""Teachers for ``fintune augment``: an OpenAI-compatible endpoint (plain httpx) or a local Hugging Face model.

Every response is cached on disk under its *prompt hash* (sha256 of teacher identity + messages + seed) the moment it
arrives, so an interrupted or failed run resumes where it stopped and a rerun costs no teacher calls. Endpoint calls
retry transient failures (connection errors, timeouts, 408/429/5xx) with exponential backoff, honour ``Retry-After``,
run at most ``concurrency`` at a time and start at most ``requests_per_minute`` per minute.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fintune.artifacts import atomic_write_json
from fintune.errors import FintuneError
from fintune.http_retry import send_with_retries
from fintune.model_ids import resolve_model

BASE_URL_ENV = "FINTUNE_TEACHER_BASE_URL"
API_KEY_ENV = "FINTUNE_TEACHER_API_KEY"
EMBEDDED_DEFAULT = "smollm2-135m"

Messages = list[dict[str, str]]
ModelLoader = Callable[[str], tuple[Any, Any]]
"""name or path -> (model in eval mode, tokenizer): how a :class:`LocalTeacher` loads its model."""


@dataclass
class TeacherRequest:
    """One prompt for the teacher; ``seed`` makes sampling reproducible and is part of the cache key."""

    messages: Messages
    seed: int


@dataclass
class TeacherResponse:
    """The teacher's answer: ``text`` is None when an endpoint returned a body without a completion."""

    text: str | None
    prompt_hash: str
    created: str
    cached: bool


def prompt_hash(identity: dict[str, Any], request: TeacherRequest) -> str:
    """sha256 of the teacher identity, messages and seed (the cache key and the provenance id)."""
    payload = json.dumps({"teacher": identity, "messages": request.messages, "seed": request.seed},
                         sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    """One JSON file per prompt hash under ``directory`` (written atomically, safe across threads)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached record for ``key``, or None (a corrupt entry is treated as missing and redone)."""
        path = self._path(key)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` under ``key`` atomically."""
        atomic_write_json(self._path(key), record)

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.rglob("*.json"))


class RateLimiter:
    """Spaces request starts at least ``60 / requests_per_minute`` seconds apart (thread-safe); 0 means no limit."""

    def __init__(self, requests_per_minute: float) -> None:
        self.interval = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until this caller may start a request."""
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class Teacher:
    """Base class: subclasses implement ``_complete`` for uncached requests; caching is handled here."""

    name: str = "teacher"

    def identity(self) -> dict[str, Any]:
        """What decides the output (kind, model, sampling) -- part of every prompt hash; never the API key."""
        raise NotImplementedError

    def _complete(self, requests: Sequence[TeacherRequest], on_done: Callable[[int, str | None], None]) -> None:
        raise NotImplementedError

    def complete(self, requests: Sequence[TeacherRequest], cache: ResponseCache,
                 progress: bool = True) -> list[TeacherResponse]:
        """Answer every request, from the cache when possible; new answers are cached as they arrive."""
        from tqdm.auto import tqdm

        identity = self.identity()
        keys = [prompt_hash(identity, r) for r in requests]
        out: list[TeacherResponse | None] = [None] * len(requests)
        todo: list[int] = []
        for i, key in enumerate(keys):
            hit = cache.get(key)
            if hit is not None:
                out[i] = TeacherResponse(hit.get("response"), key, hit.get("created", ""), cached=True)
            else:
                todo.append(i)
        if todo:
            bar = tqdm(total=len(todo), desc=f"teacher {self.name}", disable=not progress, unit="req")
            lock = threading.Lock()

            def on_done(j: int, text: str | None) -> None:
                i = todo[j]
                created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                cache.put(keys[i], {"prompt_hash": keys[i], "teacher": identity, "messages": requests[i].messages,
                                    "seed": requests[i].seed, "response": text, "created": created})
                with lock:
                    out[i] = TeacherResponse(text, keys[i], created, cached=False)
                    bar.update(1)

            try:
                self._complete([requests[i] for i in todo], on_done)
            finally:
                bar.close()
        return [r for r in out if r is not None]


class EndpointTeacher(Teacher):
    """An OpenAI-compatible ``POST {base_url}/chat/completions`` endpoint, called with plain httpx.

    The base URL comes from the argument or ``FINTUNE_TEACHER_BASE_URL``; the key from ``FINTUNE_TEACHER_API_KEY``
    (optional: local servers often need none).
    """

    def __init__(self, model: str, base_url: str | None = None, temperature: float = 0.7, max_new_tokens: int = 96,
                 concurrency: int = 4, requests_per_minute: float = 60.0, max_retries: int = 5,
                 backoff_seconds: float = 1.0, timeout_seconds: float = 60.0) -> None:
        base = base_url or os.environ.get(BASE_URL_ENV)
        if not base:
            raise FintuneError(f"teacher endpoint: no base URL for model '{model}'",
                               f"set {BASE_URL_ENV}=https://host/v1 (the part before /chat/completions)")
        if concurrency < 1 or max_retries < 0 or backoff_seconds < 0:
            raise FintuneError("teacher endpoint: concurrency must be >= 1, max_retries and backoff >= 0")
        self.url = base.rstrip("/") + "/chat/completions"
        self.model, self.temperature, self.max_new_tokens = model, temperature, max_new_tokens
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff_seconds, self.timeout_seconds = backoff_seconds, timeout_seconds
        self.limiter = RateLimiter(requests_per_minute)
        self.name = f"openai:{model}"
        self.calls = 0  # HTTP attempts made (for the manifest)
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        """Kind, model, URL and sampling settings."""
        return {"kind": "openai", "model": self.model, "url": self.url, "temperature": self.temperature,
                "max_tokens": self.max_new_tokens}

    def _call(self, client: Any, request: TeacherRequest) -> str | None:

        body = {"model": self.model, "messages": request.messages, "temperature": self.temperature,
                "max_tokens": self.max_new_tokens, "seed": request.seed}
        key = os.environ.get(API_KEY_ENV)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        def count_and_wait() -> None:
            self.limiter.wait()
            with self._lock:
                self.calls += 1

        resp, last = send_with_retries(
            lambda: client.post(self.url, json=body, headers=headers, timeout=self.timeout_seconds),
            self.max_retries, self.backoff_seconds, before_attempt=count_and_wait)
        if resp is None:
            raise FintuneError(f"teacher endpoint {self.url}: failed after {self.max_retries + 1} tries (last: {last})",
                               f"check {BASE_URL_ENV} and the server; responses so far are cached and a rerun resumes")
        if resp.status_code == 200:
            try:
                content = resp.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                return None  # a 200 without a completion: the pipeline rejects and counts it
            return content if isinstance(content, str) else None
        snippet = resp.text[:200].replace("\n", " ")
        raise FintuneError(f"teacher endpoint {self.url}: HTTP {resp.status_code} for model '{self.model}' "
                           f"({snippet})", f"check the model name and {API_KEY_ENV}; cached work is kept")

    def _complete(self, requests: Sequence[TeacherRequest], on_done: Callable[[int, str | None], None]) -> None:
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        import httpx

        with httpx.Client() as client, ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._call, client, r): j for j, r in enumerate(requests)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                failed = [f for f in done if f.exception() is not None]
                for fut in done:
                    if fut.exception() is None:
                        on_done(futures[fut], fut.result())
                if failed:
                    for other in pending:
                        other.cancel()
                    wait(pending)  # let in-flight calls finish so their answers are cached too
                    for other in pending:
                        if not other.cancelled() and other.exception() is None:
                            on_done(futures[other], other.result())
                    raise failed[0].exception()  # type: ignore[misc]


class LocalTeacher(Teacher):
    """A local causal LM (hub id, directory, a fintune run, or the embedded default ``smollm2-135m``).

    Loads through ``loader`` (``fintune augment`` passes ``fintune.models``' loader, which also reads a fintune run
    with its adapter and lineage; ``data`` itself knows nothing of model loading), by default through transformers
    directly (:func:`load_local_model`: a model directory, a cached hub id or the embedded default).
    """

    def __init__(self, model: str = EMBEDDED_DEFAULT, temperature: float = 0.7, max_new_tokens: int = 96,
                 batch_size: int = 8, loader: ModelLoader | None = None) -> None:
        self.model_name, self.temperature, self.max_new_tokens = model, temperature, max_new_tokens
        self.batch_size = batch_size
        self.loader = loader or load_local_model
        self.name = f"local:{model}"
        self._loaded: tuple[Any, Any] | None = None

    def identity(self) -> dict[str, Any]:
        """Kind, model and sampling settings."""
        return {"kind": "local", "model": self.model_name, "temperature": self.temperature,
                "max_new_tokens": self.max_new_tokens}

    def load(self) -> tuple[Any, Any]:
        """(model, tokenizer), loaded once."""
        if self._loaded is None:
            self._loaded = self.loader(self.model_name)
        return self._loaded

    def _complete(self, requests: Sequence[TeacherRequest], on_done: Callable[[int, str | None], None]) -> None:
        import torch

        model, tok = self.load()
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"  # decoder-only generation needs the prompt flush against the new tokens
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start:start + self.batch_size]
            prompts = [tok.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in batch]
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            torch.manual_seed(batch[0].seed)
            sample = self.temperature > 0
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=sample,
                                     temperature=self.temperature if sample else None, top_p=0.95 if sample else None,
                                     top_k=None, pad_token_id=tok.pad_token_id)
            for j, row in enumerate(gen[:, enc["input_ids"].shape[1]:]):
                on_done(start + j, tok.decode(row, skip_special_tokens=True))


def load_local_model(name_or_path: str) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode on the CPU, through transformers; one-line error when it cannot be found.

    The name resolves like every model name (:func:`fintune.model_ids.resolve_model`: a directory, a cached hub
    id, or an alias pulled into the cache -- the embedded default from ``$FINTUNE_SMOLLM2_GGUF`` when it is not
    cached yet).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype="auto")
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise FintuneError(f"teacher {name_or_path}: cannot load ({str(exc).splitlines()[0]})",
                           f"give a model directory, a cached hub id or '{EMBEDDED_DEFAULT}'") from None
    return model.eval(), tokenizer


def make_teacher(spec: str, temperature: float = 0.7, max_new_tokens: int = 96, loader: ModelLoader | None = None,
                 **endpoint_options: Any) -> Teacher:
    """``openai:MODEL`` -> :class:`EndpointTeacher`; ``local:NAME``, a bare name or a path -> :class:`LocalTeacher`
    (loaded through ``loader``, see there)."""
    if spec.startswith("openai:"):
        model = spec.split(":", 1)[1]
        if not model:
            raise FintuneError(f"--teacher {spec!r}: missing model name", "e.g. openai:gpt-4o-mini")
        return EndpointTeacher(model, temperature=temperature, max_new_tokens=max_new_tokens, **endpoint_options)
    name = spec.split(":", 1)[1] if spec.startswith("local:") else spec
    if not name:
        raise FintuneError(f"--teacher {spec!r}: missing model name", f"e.g. local:{EMBEDDED_DEFAULT}")
    return LocalTeacher(name, temperature=temperature, max_new_tokens=max_new_tokens, loader=loader)
