"""The load generator and server launcher of benchmarks/serve_load.py, shared with the HTTP tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TOKEN = "s3cret-token-value-1234"
"""The bearer token the serve tests start their servers with."""

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"
_spec = importlib.util.spec_from_file_location("fintune_bench_serve_load", _PATH)
serve_load = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(serve_load)

running_server = serve_load.running_server
run_load = serve_load.run_load
