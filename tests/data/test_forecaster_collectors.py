"""Finnhub collectors against a local server that mimics Finnhub's JSON; then the weekly build from their output."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
from tests.loopback import send_json, serve

from fintune.data.collectors import SPAM_SUMMARY, FinnhubClient, collect_forecaster_inputs
from fintune.data.forecaster import build_forecaster_source
from fintune.errors import FintuneError
from fintune.recipe import SourceConfig


def _ts(day: str, hour: int = 15) -> int:
    return int(datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=timezone.utc).timestamp())


class _Finnhub(BaseHTTPRequestHandler):
    calls: ClassVar[list[str]] = []
    fail_first: ClassVar[set[str]] = set()

    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        type(self).calls.append(url.path)
        if self.headers.get("X-Finnhub-Token") != "test-key" or "token" in q:  # the key never travels in the URL
            return self._send(401, {"error": "Invalid API key"})
        if url.path in type(self).fail_first:
            type(self).fail_first.discard(url.path)
            return self._send(429, {"error": "API limit reached"})
        sym = q.get("symbol")
        if url.path.endswith("/company-news"):
            days = pd.date_range(q["from"], q["to"], freq="D").strftime("%Y-%m-%d")
            items = [{"id": int(d.replace("-", "")), "datetime": _ts(d), "headline": f"{sym} headline {d}",
                      "summary": f"{sym} summary {d}", "source": "Test", "url": "http://x"} for d in days[:2]]
            items.append({"id": 1, "datetime": _ts(days[0]), "headline": "zacks", "summary": SPAM_SUMMARY + " ..."})
            return self._send(200, items)
        if url.path.endswith("/stock/profile2"):
            return self._send(200, {} if sym == "NOPE" else {
                "name": f"{sym} Corp", "finnhubIndustry": "Technology", "ipo": "1980-12-12", "country": "US",
                "ticker": sym, "exchange": "NASDAQ", "marketCapitalization": 1.0, "shareOutstanding": 2.0})
        if url.path.endswith("/stock/metric"):
            return self._send(200, {"series": {"quarterly": {
                "eps": [{"period": "2014-12-31", "v": 1.5}, {"period": "2014-09-30", "v": 1.2}],
                "currentRatio": [{"period": "2014-12-31", "v": 1.1}]}}})
        return self._send(404, {"error": "not found"})

    def _send(self, status: int, obj) -> None:
        send_json(self, status, obj)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def finnhub():
    _Finnhub.calls = []
    with serve(_Finnhub) as base:
        yield f"{base}/api/v1"


def _client(url: str, tmp_path: Path, key: str | None = "test-key") -> FinnhubClient:
    return FinnhubClient(api_key=key, base_url=url, cache_dir=tmp_path / "cache", requests_per_minute=0,
                         max_retries=2, backoff_seconds=0.0)


def _write_prices(directory: Path, ticker: str) -> None:
    days = pd.bdate_range("2014-12-01", "2015-03-13")
    closes = [100 + i * 0.5 for i in range(len(days))]
    directory.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Open": closes, "High": closes, "Low": closes,
                  "Close": closes, "Adj Close": closes, "Volume": 1000}).to_csv(directory / f"{ticker}.csv", index=False)


def test_collect_then_build_weekly_set(finnhub: str, tmp_path: Path) -> None:
    _Finnhub.fail_first = {"/api/v1/stock/profile2"}  # one 429 -> retried
    out = collect_forecaster_inputs(["AAPL"], "2015-01-05", "2015-02-27", tmp_path / "collected",
                                    client=_client(finnhub, tmp_path), with_prices=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["news_counts"]["spam_dropped"] == 8 and manifest["news_examples"] == 16
    assert "test-key" not in (out / "manifest.json").read_text()
    assert json.loads((out / "financials.json").read_text())["AAPL"][1] == {
        "period": "2014-12-31", "eps": 1.5, "currentRatio": 1.1}
    first_calls = len(_Finnhub.calls)
    collect_forecaster_inputs(["AAPL"], "2015-01-05", "2015-02-27", tmp_path / "again",
                              client=_client(finnhub, tmp_path), with_prices=False)
    assert len(_Finnhub.calls) == first_calls  # everything from the on-disk cache

    _write_prices(tmp_path / "prices", "AAPL")
    cfg = SourceConfig(name="jsonl", path=str(out / "news.jsonl"), options={
        "prices": str(tmp_path / "prices"), "profiles": str(out / "profiles.json"),
        "financials": str(out / "financials.json"), "past_weeks": 2})
    build = build_forecaster_source(cfg)
    by_id = {e.id: e for e in build.examples}
    ex = by_id["fc-AAPL-2015-02-23"]
    assert ex.text.startswith("[Company Introduction]:\n\nAAPL Corp is a leading entity in the Technology sector.")
    assert "market capitalization" not in ex.text  # "as of today" values are not point-in-time
    assert "[Headline]: AAPL headline 2015-02-09\n[Summary]: AAPL summary 2015-02-09" in ex.text
    assert "reported at 2014-12-31" in ex.text  # known from 2015-02-14 (45-day lag) < 2015-02-21
    assert "reported at 2014-09-30" in by_id["fc-AAPL-2015-02-09"].text
    # closes rise 0.5 a business day: 2015-02-20 is day 59 (129.5), the week adds 2.5 -> +1.93% -> U2
    assert ex.source == "news-forecaster" and ex.label == "U2"
    assert ex.extra["next_week_return"] == pytest.approx(100 * 2.5 / 129.5, abs=1e-6)


def test_errors_are_one_line(finnhub: str, tmp_path: Path) -> None:
    with pytest.raises(FintuneError, match="no API key"):
        _client(finnhub, tmp_path, key=None).get("stock/profile2", symbol="AAPL")
    with pytest.raises(FintuneError, match="HTTP 401"):
        _client(finnhub, tmp_path, key="wrong").get("stock/profile2", symbol="AAPL")
    with pytest.raises(FintuneError, match="no profile for 'NOPE'"):
        collect_forecaster_inputs(["NOPE"], "2015-01-05", "2015-01-09", tmp_path / "x",
                                  client=_client(finnhub, tmp_path), with_prices=False)
    assert not (tmp_path / "x").exists()  # nothing half-written
    down = FinnhubClient(api_key="k", base_url="http://127.0.0.1:9", cache_dir=tmp_path / "c",
                         requests_per_minute=0, max_retries=1, backoff_seconds=0.0)
    with pytest.raises(FintuneError, match="failed after 2 tries"):
        down.get("company-news", symbol="AAPL")


def test_collect_verb_from_the_cli(finnhub: str, tmp_path: Path, monkeypatch, capsys) -> None:
    from fintune.cli import main
    from fintune.commands.collect import DOW30, tickers_arg

    assert len(DOW30) == 30 and tickers_arg("dow30") == list(DOW30) and tickers_arg(" aapl,msft ") == ["AAPL", "MSFT"]
    monkeypatch.setenv("FINNHUB_API_KEY", "test-key")
    monkeypatch.setenv("FINNHUB_BASE_URL", finnhub)
    out = tmp_path / "dow"
    rc = main(["collect", "--tickers", "AAPL", "--start", "2015-01-05", "--end", "2015-01-16", "--out", str(out),
               "--cache-dir", str(tmp_path / "cache"), "--requests-per-minute", "0", "--no-prices"])
    assert rc == 0 and "wrote" in capsys.readouterr().out
    assert (out / "news.jsonl").exists() and json.loads((out / "manifest.json").read_text())["tickers"] == ["AAPL"]
    assert "test-key" not in (out / "manifest.json").read_text()
    monkeypatch.delenv("FINNHUB_API_KEY")
    rc = main(["collect", "--tickers", "MSFT", "--start", "2015-01-05", "--end", "2015-01-09", "--out",
               str(tmp_path / "nokey"), "--cache-dir", str(tmp_path / "cache2"), "--no-prices"])
    assert rc != 0 and "FINNHUB_API_KEY" in capsys.readouterr().err
