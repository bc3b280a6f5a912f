"""Load test of ``fintune serve``: N requests at concurrency C over real HTTP, batched vs one-at-a-time.

Starts the server twice as a subprocess on loopback (``--max-batch 1`` and ``--max-batch B``), fires the same
requests at both with httpx, and reports p50/p99 latency, requests/s and errors; the last line printed is one JSON
object with ``batching_speedup`` (batched req/s / one-at-a-time req/s), ``errors`` and ``p99_ms``.

    python benchmarks/serve_load.py --model smollm2-135m --requests 1000 --concurrency 32
    python benchmarks/serve_load.py --tiny          # a tiny random model (what CI runs)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "Apple beats Q4 estimates by 15%", "Shares fell 5.2 percent on Monday after weak guidance.",
    "The board will hold the annual meeting in March.", "Operating profit increased to a record high.",
    "The bank cut its outlook and shares declined.", "Net sales rose 12% to EUR 3.4 mn in the first quarter.",
    "Analysts downgrade the stock after the earnings miss.", "The company said the plan is unchanged.",
]


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(model: str, max_batch: int, wait_ms: float = 5.0, env: dict[str, str] | None = None,
                   extra_args: list[str] | None = None, log_path: str | Path | None = None,
                   startup_timeout: float = 180.0) -> Any:
    """Start ``fintune serve`` on a free loopback port; yields ``(base_url, process, log_file)``; stops it after."""
    import httpx

    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", **(env or {})}
    log = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="fintune-serve-", suffix=".log")[1])
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "fintune", "serve", model, "--host", "127.0.0.1",
                                 "--port", str(port), "--max-batch", str(max_batch), "--wait-ms", str(wait_ms),
                                 *(extra_args or [])], stdout=fh, stderr=subprocess.STDOUT, env=full_env,
                                cwd=str(ROOT))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start in {startup_timeout:.0f}s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url, proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _load(url: str, n: int, concurrency: int, headers: dict[str, str],
                texts: list[str] | None = None) -> dict[str, Any]:
    import httpx
    import numpy as np

    texts = texts or TEXTS
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits, headers=headers) as client:

        async def worker() -> None:
            for i in counter:
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/analyze", json={"text": texts[i % len(texts)], "id": str(i)})
                    ok = r.status_code == 200 and r.json().get("id") == str(i)
                    if not ok:
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                latencies.append((time.perf_counter() - t0) * 1000.0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        stats = (await client.get("/v1/model")).json().get("batching")
    lat = np.asarray(latencies)
    return {"requests": n, "concurrency": concurrency, "errors": len(errors), "first_errors": errors[:3],
            "seconds": round(wall, 3), "requests_per_s": round(n / wall, 2),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "server_batching": stats}


def run_load(url: str, n: int = 1000, concurrency: int = 32, token: str | None = None,
             texts: list[str] | None = None) -> dict[str, Any]:
    """Fire ``n`` POST /v1/analyze requests with ``concurrency`` in flight (request ``i`` sends ``texts[i % len]``,
    default: a few fixed headlines); latency percentiles, req/s, errors."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return asyncio.run(_load(url, n, concurrency, headers, texts))


def compare(model: str, n: int, concurrency: int, max_batch: int, wait_ms: float,
            n_single: int | None = None) -> dict[str, Any]:
    """Load-test one-at-a-time serving and dynamic batching on the same model; the summary dict."""
    with running_server(model, 1, 0.0) as (url, _, _):
        run_load(url, min(32, n), concurrency)  # warm-up (first forwards allocate)
        single = run_load(url, n_single or n, concurrency)
    with running_server(model, max_batch, wait_ms) as (url, _, _):
        run_load(url, min(32, n), concurrency)
        batched = run_load(url, n, concurrency)
    return {"model": model, "one_at_a_time": single, "batched": batched,
            "batching_speedup": round(batched["requests_per_s"] / single["requests_per_s"], 2),
            "errors": batched["errors"] + single["errors"], "p50_ms": batched["p50_ms"],
            "p99_ms": batched["p99_ms"], "requests_per_s": batched["requests_per_s"],
            "one_at_a_time_requests_per_s": single["requests_per_s"], "requests": n, "concurrency": concurrency,
            "max_batch": max_batch, "wait_ms": wait_ms, "cpu_count": os.cpu_count()}


def main() -> int:
    """Parse arguments, run the comparison, print the summary and the final JSON line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tiny", action="store_true", help="serve a tiny random model built on the fly")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--single-requests", type=int, default=None,
                    help="requests for the one-at-a-time run (default: same as --requests)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--wait-ms", type=float, default=5.0)
    args = ap.parse_args()
    model = args.model
    if args.tiny:
        sys.path.insert(0, str(ROOT))
        from tests.tiny import make_tiny_model_dir

        model = str(make_tiny_model_dir(tempfile.mkdtemp(prefix="fintune-tiny-")))
    result = compare(model, args.requests, args.concurrency, args.max_batch, args.wait_ms, args.single_requests)
    if args.tiny:
        result["model"] = "tiny-llama (random, 2 layers, hidden 64)"
    print(json.dumps(result, indent=2), file=sys.stderr)
    print(json.dumps({k: result[k] for k in ("model", "batching_speedup", "errors", "p50_ms", "p99_ms",
                                             "requests_per_s", "one_at_a_time_requests_per_s", "requests",
                                             "concurrency", "max_batch", "cpu_count")}))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
