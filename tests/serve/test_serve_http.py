"""`fintune serve` over real HTTP: load at concurrency 32 with batching, bearer token, graceful shutdown."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
from serve_http_helpers import TOKEN, run_load, running_server

from fintune.serve import DynamicBatcher


def test_1000_requests_at_concurrency_32_are_batched_without_errors(server):
    url, _, _ = server
    stats = run_load(url, n=1000, concurrency=32, token=TOKEN)
    print(json.dumps(stats))
    assert stats["errors"] == 0, stats["first_errors"]
    batching = stats["server_batching"]
    assert batching["items"] >= 1000 and batching["mean_batch"] > 2 and batching["max_batch_seen"] > 8


def test_endpoints_and_openapi(server):
    url, _, _ = server
    auth = {"Authorization": f"Bearer {TOKEN}"}
    info = httpx.get(f"{url}/v1/model", headers=auth).json()
    assert info["labels"] == ["negative", "neutral", "positive"] and info["calibrated"] and info["auth"]
    one = httpx.post(f"{url}/v1/analyze", headers=auth, json={"text": "Apple beats Q4 estimates by 15%",
                                                               "ticker": "aapl", "id": "q"}).json()
    assert one["ticker"] == "AAPL" and one["id"] == "q" and abs(sum(one["probabilities"].values()) - 1) < 1e-9
    assert one["calibrated"] is True and one["latency_ms"] > 0
    batch = httpx.post(f"{url}/v1/analyze/batch", headers=auth,
                       json={"items": [{"text": "Shares fell"}, {"text": "Revenue rose", "id": "b"}]}).json()
    assert [r["id"] for r in batch["results"]] == ["", "b"]
    assert httpx.get(f"{url}/openapi.json").status_code == 401  # the docs follow the auth setting
    schema = httpx.get(f"{url}/openapi.json", headers=auth).json()
    assert {"/v1/analyze", "/v1/analyze/batch", "/v1/model", "/healthz"} <= set(schema["paths"])


def test_bearer_token_is_required_and_never_logged(server):
    url, _, log = server
    body = {"text": "Shares fell 5.2 percent on Monday."}
    assert httpx.post(f"{url}/v1/analyze", json=body).status_code == 401
    wrong = httpx.post(f"{url}/v1/analyze", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.post(f"{url}/v1/analyze", json=body, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert httpx.get(f"{url}/healthz").status_code == 200  # liveness stays open
    time.sleep(0.3)
    text = log.read_text()
    assert "POST /v1/analyze" in text and TOKEN not in text


def test_sigterm_lets_the_in_flight_request_finish(tiny_model):
    with running_server(str(tiny_model), max_batch=32, wait_ms=5, extra_args=["--threads", "1"]) as (url, proc, log):
        result: dict = {}

        n_items = 256  # 8 model batches of 32 explanations, run one after another: seconds of work

        def slow() -> None:
            items = [{"text": f"Revenue rose {i}% in the quarter"} for i in range(n_items)]
            result["r"] = httpx.post(f"{url}/v1/analyze/batch", json={"items": items, "explain": True}, timeout=300)
            result["done"] = time.monotonic()

        t = threading.Thread(target=slow)
        t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until the server holds the items, then signal at once
            if httpx.get(f"{url}/v1/model", timeout=10).json()["batching"]["in_flight"] > 0:
                break
            time.sleep(0.01)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        t.join(300)
        # uvicorn re-raises the captured SIGTERM after its graceful shutdown, so the exit is "killed by SIGTERM"
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
        r = result["r"]
        assert result["done"] > sent  # the request really was in flight when the signal arrived
        assert r.status_code == 200 and len(r.json()["results"]) == n_items
        assert all(isinstance(x["analysis"], str) for x in r.json()["results"])
        assert "batcher drained" in log.read_text()


def test_batcher_groups_concurrent_items_and_isolates_a_bad_one():
    import asyncio

    from fintune.analyze import AnalyzeItem
    from fintune.errors import FintuneError

    sizes = []

    def prepare(item):
        if item.text == "bad":
            raise FintuneError(f"{item.where}: bad text")
        return item

    def predict(items, explain):
        sizes.append(len(items))
        time.sleep(0.01)
        return [i.text.upper() for i in items]

    batcher = DynamicBatcher(predict, prepare, max_batch=8, wait_ms=20).start()

    async def go():
        jobs = [batcher.submit(AnalyzeItem(text=t, where=f"#{k}")) for k, t in enumerate(["a"] * 20 + ["bad"])]
        return await asyncio.gather(*jobs, return_exceptions=True)

    out = asyncio.run(go())
    batcher.close()
    assert out[:20] == ["A"] * 20 and isinstance(out[20], FintuneError) and "#20: bad text" in str(out[20])
    assert sum(sizes) == 20 and max(sizes) == 8 and len(sizes) < 20
