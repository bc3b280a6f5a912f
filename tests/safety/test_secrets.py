"""Class 6: no secret in any output -- Finnhub key in a header, one redaction for errors, argparse and logs."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from safety_helpers import one_line_error
from tests.loopback import send_json, serve

from fintune.data.collectors import FinnhubClient
from fintune.errors import FintuneError
from fintune.redact import RedactingFilter, redact

KEY = "fh-live-9f8e7d6c5b4a"


class _EchoingFinnhub(BaseHTTPRequestHandler):
    """Answers 403 and echoes the request line and headers, as careless upstreams and proxies do."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("X-Finnhub-Token")))
        send_json(self, 403, {"error": f"denied GET {self.path} with token={self.headers.get('X-Finnhub-Token')} "
                                       f"key {self.headers.get('X-Finnhub-Token')}"})

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def echoing():
    _EchoingFinnhub.seen = []
    with serve(_EchoingFinnhub) as base:
        yield f"{base}/api/v1"


@pytest.mark.parametrize(("text", "leak"), [
    ("GET https://finnhub.io/api/v1/news?symbol=A&token=abc123xyz failed", "abc123xyz"),
    ("upstream said: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y", "eyJhbGciOiJIUzI1NiJ9"),
    ("POST /v1?apikey=K-998877&x=1", "K-998877"),
    ('{"api_key": "sk-abcdefghijklmnop1234"}', "sk-abcdefghijklmnop1234"),
    ("header X-Finnhub-Token: zz99zz88", "zz99zz88"),
    ("HF token hf_abcdefghijklmnopqrstuvwxyz in message", "hf_abcdefghijklmnopqrstuvwxyz"),
])
def test_redact_removes_every_secret_form(text: str, leak: str) -> None:
    out = redact(text)
    assert leak not in out and "***" in out


def test_redact_keeps_ordinary_text_and_env_secret_values(monkeypatch) -> None:
    for plain in ("unknown key: lora_rr -- did you mean lora_r?", "max_new_tokens: 64", "monkey=banana"):
        assert redact(plain) == plain
    monkeypatch.setenv("MY_SERVICE_TOKEN", "plain-value-without-marker")
    assert redact("connect failed for plain-value-without-marker") == "connect failed for ***"
    assert "plain-value" not in FintuneError("x plain-value-without-marker", "y").one_line()


def test_finnhub_key_travels_in_the_header_and_never_in_errors(echoing: str, tmp_path: Path) -> None:
    client = FinnhubClient(api_key=KEY, base_url=echoing, cache_dir=tmp_path / "cache", requests_per_minute=0,
                           max_retries=0, backoff_seconds=0.0)
    with pytest.raises(FintuneError) as info:
        client.get("company-news", symbol="AAPL")
    path, header = _EchoingFinnhub.seen[0]
    assert header == KEY
    assert KEY not in path and "token" not in parse_qs(urlparse(path).query)
    assert KEY not in str(info.value) and "HTTP 403" in str(info.value)


def test_collect_cli_prints_no_key(echoing: str, tmp_path: Path, cli, monkeypatch) -> None:
    monkeypatch.setenv("FINNHUB_API_KEY", KEY)
    monkeypatch.setenv("FINNHUB_BASE_URL", echoing)
    res = cli("collect", "--tickers", "AAPL", "--start", "2020-01-06", "--end", "2020-01-07", "--out",
              str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--no-prices")
    line = one_line_error(res)
    assert "HTTP 403" in line and KEY not in res.err + res.out
    assert _EchoingFinnhub.seen and _EchoingFinnhub.seen[0][1] == KEY


def test_log_lines_and_argparse_errors_are_redacted(monkeypatch, cli, caplog) -> None:
    monkeypatch.setenv("FINTUNE_API_TOKEN", "serve-token-4455")
    logger = logging.getLogger("fintune.test.redact")
    handler_records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_records.append(self.format(record))

    handler = Collect()
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("request with %s failed: %s", "Bearer serve-token-4455", "url?token=abc")
        try:
            raise RuntimeError("boom serve-token-4455")
        except RuntimeError:
            logger.exception("oops")
    finally:
        logger.removeHandler(handler)
    joined = "\n".join(handler_records)
    assert "serve-token-4455" not in joined and "abc" not in joined and "***" in joined
    line = one_line_error(cli("serve", "--port", "serve-token-4455"))
    assert "serve-token-4455" not in line
