"""Class 7: the server -- auth before body parsing, docs follow auth, bounded queue (503 + Retry-After), work of
disconnected clients cancelled, concurrent requests micro-batched. A real uvicorn server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from safety_helpers import one_line_error
from tests.live_server import live_server
from tests.tiny import make_tiny_model_dir

TOKEN = "safety-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory):
    import torch

    from fintune.analyze import Analyzer

    torch.set_num_threads(1)
    return Analyzer.load(str(make_tiny_model_dir(tmp_path_factory.mktemp("safety-serve"))), dtype="float32")


def _stats(url: str) -> dict:
    return httpx.get(f"{url}/v1/model", headers=AUTH, timeout=10).json()["batching"]


def _wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_auth_is_checked_before_the_body_is_parsed(analyzer) -> None:
    with live_server(analyzer, token=TOKEN) as (url, _):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            for body in (b"{not json", b'{"text": "ok"}', b"\xff\xfe"):
                r = httpx.post(f"{url}/v1/analyze", content=body, headers={**headers,
                                                                           "Content-Type": "application/json"})
                assert r.status_code == 401, (headers, body, r.text)
                assert r.headers["www-authenticate"] == "Bearer" and TOKEN not in r.text
        r = httpx.post(f"{url}/v1/analyze", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_docs_follow_the_auth_setting(analyzer) -> None:
    with live_server(analyzer, token=TOKEN) as (url, _):
        for path in ("/docs", "/openapi.json", "/redoc"):
            assert httpx.get(f"{url}{path}").status_code == 401
            assert httpx.get(f"{url}{path}", headers=AUTH).status_code == 200
    with live_server(analyzer, token=TOKEN, open_docs=True) as (url, _):
        assert httpx.get(f"{url}/docs").status_code == 200
        assert "/v1/analyze" in httpx.get(f"{url}/openapi.json").json()["paths"]
        assert httpx.get(f"{url}/v1/model").status_code == 401  # the API itself stays closed
    with live_server(analyzer) as (url, _):  # no token: everything open
        assert httpx.get(f"{url}/openapi.json").status_code == 200
        assert httpx.post(f"{url}/v1/analyze", json={"text": "profit rose"}).status_code == 200


def test_full_queue_answers_503_with_retry_after(analyzer) -> None:
    with live_server(analyzer, token=TOKEN, max_batch=1, max_queue=4, max_batch_items=4) as (url, engine):
        engine.gate.clear()
        results: dict[str, httpx.Response] = {}
        first = threading.Thread(target=lambda: results.setdefault("a", httpx.post(
            f"{url}/v1/analyze/batch", json={"items": [{"text": f"sales rose {k}"} for k in range(4)]},
            headers=AUTH, timeout=60)))
        first.start()
        _wait(lambda: _stats(url)["in_flight"] == 4)
        busy = httpx.post(f"{url}/v1/analyze", json={"text": "one more"}, headers=AUTH, timeout=10)
        assert busy.status_code == 503 and "queue is full" in busy.json()["error"]
        assert int(busy.headers["retry-after"]) >= 1
        engine.gate.set()
        first.join(60)
        assert results["a"].status_code == 200 and len(results["a"].json()["results"]) == 4
        assert httpx.post(f"{url}/v1/analyze", json={"text": "now it fits"}, headers=AUTH).status_code == 200
        assert _stats(url)["rejected_queue_full"] == 1


def test_work_of_a_disconnected_client_is_cancelled(analyzer) -> None:
    with live_server(analyzer, token=TOKEN, max_batch=1, wait_ms=0) as (url, engine):
        engine.gate.clear()
        holder = threading.Thread(target=lambda: httpx.post(f"{url}/v1/analyze", json={"text": "first"},
                                                            headers=AUTH, timeout=60))
        holder.start()
        _wait(lambda: engine.calls == [1])  # the worker is busy with the first request
        body = b'{"items": [{"text": "gone 1"}, {"text": "gone 2"}, {"text": "gone 3"}]}'
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(b"POST /v1/analyze/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            _wait(lambda: _stats(url)["in_flight"] == 4)
        _wait(lambda: _stats(url)["cancelled"] == 3)  # the client closed the socket
        engine.gate.set()
        holder.join(60)
        assert httpx.post(f"{url}/v1/analyze", json={"text": "after"}, headers=AUTH).status_code == 200
        _wait(lambda: _stats(url)["in_flight"] == 0)
        assert engine.calls == [1, 1]  # the three abandoned texts never reached the model


def test_concurrent_requests_are_micro_batched(analyzer) -> None:
    with live_server(analyzer, max_batch=16, wait_ms=200) as (url, engine):
        engine.gate.clear()
        codes: list[int] = []
        threads = [threading.Thread(target=lambda k=k: codes.append(httpx.post(
            f"{url}/v1/analyze", json={"text": f"revenue rose {k}"}, timeout=60).status_code)) for k in range(8)]
        for t in threads:
            t.start()
        _wait(lambda: _stats(url)["in_flight"] == 8)
        engine.gate.set()
        for t in threads:
            t.join(60)
        assert codes == [200] * 8
        assert sum(engine.calls) == 8 and len(engine.calls) < 8 and max(engine.calls) >= 2


def test_serve_checks_inputs_before_loading_the_model(tmp_path: Path, cli) -> None:
    t0 = time.perf_counter()
    line = one_line_error(cli("serve", str(tmp_path / "no-model"), "--calibration", str(tmp_path / "cal.json")))
    assert "--calibration" in line and "not found" in line
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        line = one_line_error(cli("serve", str(tmp_path / "no-model"), "--port", str(busy.getsockname()[1])))
    assert "cannot listen" in line
    assert time.perf_counter() - t0 < 10
