"""Bad requests get the right 4xx with a clear message, and the server answers the next good request."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
from urllib.parse import urlparse

import httpx
import pytest
from serve_http_helpers import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
GOOD = {"text": "Operating profit increased to a record high."}


def _post(url: str, path: str, **kwargs) -> httpx.Response:
    headers = {**AUTH, **kwargs.pop("headers", {})}
    return httpx.post(f"{url}{path}", headers=headers, timeout=60, **kwargs)


def _still_serving(url: str) -> None:
    r = _post(url, "/v1/analyze", json=GOOD)
    assert r.status_code == 200 and r.json()["label"] in ("negative", "neutral", "positive")


@pytest.mark.parametrize(("path", "kwargs", "status", "message"), [
    ("/v1/analyze", {"content": b'{"text": "unterminated', "headers": {"content-type": "application/json"}},
     400, "malformed JSON"),
    ("/v1/analyze", {"json": {"text": 42}}, 422, "text: Input should be a valid string"),
    ("/v1/analyze", {"json": {"text": ""}}, 422, "text: String should have at least 1 character"),
    ("/v1/analyze", {"json": {"text": "   \n "}}, 422, "text is blank"),
    ("/v1/analyze", {"json": {}}, 422, "text: Field required"),
    ("/v1/analyze", {"json": {"text": "ok", "sentimnet": "x"}}, 422, "sentimnet: Extra inputs are not permitted"),
    ("/v1/analyze", {"json": {"text": "ok", "explain": "yes"}}, 422, "explain: Input should be a valid boolean"),
    ("/v1/analyze", {"json": ["text"]}, 422, "Input should be a valid dictionary"),
    ("/v1/analyze", {"json": {"text": "x" * 9000}}, 422, "text: String should have at most 8000 characters"),
    ("/v1/analyze", {"json": {"text": "revenue rose " * 600}}, 422, "text is too long for the model"),
    ("/v1/analyze", {"json": {"text": "x" * (1 << 20)}}, 413, "request body larger than"),
    ("/v1/analyze/batch", {"json": {"items": [{"text": "ok"}] * 10_000}}, 422,
     "items: List should have at most 256 items"),
    ("/v1/analyze/batch", {"json": {"items": []}}, 422, "items: List should have at least 1 item"),
    ("/v1/analyze/batch", {"json": {"items": [{"text": "ok"}, {"text": ""}]}}, 422, "items.1.text"),
    ("/v1/analyze/batch", {"json": {"items": [{"text": "ok"}, {"text": "revenue rose " * 600}]}}, 422,
     "items[1].text: text is too long"),
])
def test_bad_request_gets_a_clear_4xx_and_the_server_keeps_serving(server, path, kwargs, status, message):
    url, proc, _ = server
    r = _post(url, path, **kwargs)
    assert r.status_code == status, r.text
    assert message in r.json()["error"], r.json()
    assert proc.poll() is None
    _still_serving(url)


def _content_length(raw: bytes) -> int:
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_a_streamed_body_over_the_limit_without_content_length_is_413(server):
    url, _, _ = server
    host, port = urlparse(url).hostname, urlparse(url).port
    chunk = b'{"text": "' + b"x" * 300_000 + b'"}'
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall((f"POST /v1/analyze HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                   "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        for k in range(0, len(chunk), 65536):
            part = chunk[k:k + 65536]
            try:
                s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            except OSError:  # the server may answer and close before reading everything
                break
        with contextlib.suppress(OSError):
            s.sendall(b"0\r\n\r\n")
        raw = b""
        while b"\r\n\r\n" not in raw or len(raw.split(b"\r\n\r\n", 1)[1]) < _content_length(raw):
            part = s.recv(65536)
            if not part:
                break
            raw += part
        reply = raw.decode("latin-1")
    assert reply.startswith("HTTP/1.1 413") and "request body larger than" in reply and "streamed" in reply
    _still_serving(url)


def test_vllm_backend_fails_with_one_line_when_vllm_is_missing(tiny_model):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    proc = subprocess.run([sys.executable, "-m", "fintune", "serve", str(tiny_model), "--backend", "vllm"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": "src"})
    assert proc.returncode == 2 and "vLLM is not installed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
