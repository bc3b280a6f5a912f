"""A real fintune server (uvicorn, 127.0.0.1 only) in a thread, over an analyzer behind a gate, for tests of the
queue, batching and routes: the gate holds model calls so a test can fill the queue or disconnect mid-request."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any


class GatedEngine:
    """The analyzer behind a gate: each predictor call records its size and waits until the gate opens."""

    def __init__(self, analyzer: Any) -> None:
        self.analyzer = analyzer
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[int] = []

    def prepare(self, item: Any) -> Any:
        return self.analyzer.prepare(item)

    def predict_prepared(self, prepared: Any, explain: bool = False) -> Any:
        self.calls.append(len(prepared))
        self.gate.wait(60)
        return self.analyzer.predict_prepared(prepared, explain=explain)


@contextlib.contextmanager
def live_server(analyzer: Any, **cfg: Any) -> Iterator[tuple[str, GatedEngine]]:
    """``create_app`` + uvicorn on a free loopback port; yields (base url, engine); the gate is opened on exit."""
    import uvicorn

    from fintune.serve import ServeConfig, create_app

    engine = GatedEngine(analyzer)
    app = create_app(analyzer, ServeConfig(**cfg), backend=engine)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", engine
    finally:
        engine.gate.set()
        server.should_exit = True
        thread.join(30)
