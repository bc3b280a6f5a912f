"""Online collectors for the forecaster set: Finnhub company news, profiles and basic financials (+ yfinance prices).

So users can rebuild a FinGPT-style Dow30 set themselves (``fingpt/FinGPT_Forecaster/data.py``: ``get_news`` asks
Finnhub ``company_news`` week by week, ``get_basics`` reads ``company_basic_financials(symbol, 'all')`` quarterly
series, ``prompt.py`` ``get_company_prompt`` reads ``company_profile2``).

* API key from ``FINNHUB_API_KEY`` (or the ``api_key`` argument); it is never written to the cache or manifest.
* Base URL configurable (``FINNHUB_BASE_URL``, default ``https://finnhub.io/api/v1``) - tests use a local server.
* Rate limited (default 55 requests/minute, under Finnhub's free 60/min), retries with exponential backoff on
  connection errors, 429 (honouring ``Retry-After``) and 5xx; other HTTP errors are one-line errors.
* Every response is cached on disk (one JSON file per request, keyed by endpoint + parameters without the key), so
  an interrupted collection resumes and a rerun makes no calls. Delete the cache to refresh recent windows.
* Prices come from :func:`fintune.prices.fetch_yfinance` (yfinance is optional and imported lazily; newer
  yfinance without ``Adj Close`` is handled there).

:func:`collect_forecaster_inputs` writes ``news.jsonl`` (Examples), ``profiles.json``, ``financials.json``,
``prices/<TICKER>.csv`` and ``manifest.json``; a recipe then builds the weekly set with
``sources: [{name: jsonl, path: DIR/news.jsonl, options: {prices: DIR/prices, profiles: DIR/profiles.json,
financials: DIR/financials.json}}]`` and ``data.task: forecaster``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fintune.artifacts import atomic_output_dir, atomic_write_json, check_output_dir, write_manifest
from fintune.errors import FintuneError
from fintune.http_retry import send_with_retries
from fintune.prices import fetch_yfinance
from fintune.records import Example, read_json_object, write_jsonl
from fintune.redact import redact

API_KEY_ENV = "FINNHUB_API_KEY"
BASE_URL_ENV = "FINNHUB_BASE_URL"
DEFAULT_BASE_URL = "https://finnhub.io/api/v1"
SPAM_SUMMARY = "Looking for stock market analysis and research with proves results?"
"""FinGPT drops news whose summary starts with this Zacks boilerplate (``prompt.py`` ``get_prompt_by_row``)."""


class FinnhubClient:
    """A small cached, rate-limited, retrying Finnhub REST client (plain httpx)."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None,
                 cache_dir: str | Path = ".fintune_cache/finnhub", requests_per_minute: float = 55.0,
                 max_retries: int = 5, backoff_seconds: float = 1.0, timeout_seconds: float = 30.0) -> None:
        self.api_key = api_key or os.environ.get(API_KEY_ENV)
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self.cache_dir = Path(cache_dir)
        self.interval = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self.max_retries, self.backoff_seconds, self.timeout_seconds = max_retries, backoff_seconds, timeout_seconds
        self.calls = 0
        self.cache_hits = 0
        self._next_start = 0.0
        self._http: Any = None

    def _cache_path(self, endpoint: str, params: dict[str, Any]) -> Path:
        key = json.dumps({"url": self.base_url, "endpoint": endpoint, "params": params}, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.cache_dir / endpoint.strip("/").replace("/", "_") / f"{digest}.json"

    def _wait(self) -> None:
        now = time.monotonic()
        if now < self._next_start:
            time.sleep(self._next_start - now)
        self._next_start = max(now, self._next_start) + self.interval

    def get(self, endpoint: str, **params: Any) -> Any:
        """GET ``{base_url}/{endpoint}`` with ``params`` (cached); returns the parsed JSON."""
        path = self._cache_path(endpoint, params)
        if path.exists():
            try:
                self.cache_hits += 1
                return json.loads(path.read_text(encoding="utf-8"))["response"]
            except (json.JSONDecodeError, KeyError):
                self.cache_hits -= 1  # a corrupt entry is fetched again
        if not self.api_key:
            raise FintuneError(f"finnhub {endpoint}: no API key", f"export {API_KEY_ENV}=... (free key at finnhub.io)")
        data = self._fetch(endpoint, params)
        atomic_write_json(path, {"endpoint": endpoint, "params": params, "fetched": time.strftime(
            "%Y-%m-%dT%H:%M:%S%z"), "response": data})
        return data

    def _fetch(self, endpoint: str, params: dict[str, Any]) -> Any:
        import httpx

        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout_seconds)
        url = f"{self.base_url}/{endpoint.strip('/')}"
        def count_and_wait() -> None:
            self._wait()
            self.calls += 1

        # the key travels in a header, never in the URL (which upstream errors and proxies echo)
        headers = {"X-Finnhub-Token": str(self.api_key)}
        resp, last = send_with_retries(lambda: self._http.get(url, params=params, headers=headers),
                                       self.max_retries, self.backoff_seconds, before_attempt=count_and_wait)
        last = redact(last, (str(self.api_key),))
        if resp is None:
            raise FintuneError(f"finnhub {endpoint}: failed after {self.max_retries + 1} tries (last: {last})",
                               "check the network / FINNHUB_BASE_URL; responses so far are cached and a rerun resumes")
        if resp.status_code == 200:
            try:
                return resp.json()
            except ValueError:
                raise FintuneError(f"finnhub {endpoint}: response is not JSON "
                                   f"({redact(resp.text[:120], (str(self.api_key),))!r})") from None
        snippet = redact(resp.text[:160].replace("\n", " "), (str(self.api_key),))
        raise FintuneError(f"finnhub {endpoint} {params}: HTTP {resp.status_code} ({snippet})",
                           f"check {API_KEY_ENV} and the symbol; cached responses are kept")

def _weeks(start: str, end: str) -> list[tuple[str, str]]:
    """Inclusive 7-day windows covering ``start``..``end`` (Finnhub caps the items a single call returns)."""
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    if last < first:
        raise FintuneError(f"collect: end {end} is before start {start}")
    out = []
    while first <= last:
        stop = min(first + timedelta(days=6), last)
        out.append((first.isoformat(), stop.isoformat()))
        first = stop + timedelta(days=1)
    return out


def collect_finnhub_news(client: FinnhubClient, tickers: Sequence[str], start: str, end: str
                         ) -> tuple[list[Example], dict[str, int]]:
    """Company news per ticker and week as Examples (text = headline; date = UTC day of publication).

    Returns the examples and counts: ``items``, ``spam_dropped`` (FinGPT's boilerplate filter),
    ``duplicates`` (same Finnhub id twice), ``no_headline``.
    """
    from tqdm.auto import tqdm

    examples: list[Example] = []
    counts = {"items": 0, "spam_dropped": 0, "duplicates": 0, "no_headline": 0}
    seen: set[str] = set()
    windows = _weeks(start, end)
    for ticker in tqdm(list(tickers), desc="finnhub news", unit="ticker"):
        for lo, hi in windows:
            items = client.get("company-news", symbol=ticker, **{"from": lo, "to": hi})
            if not isinstance(items, list):
                raise FintuneError(f"finnhub company-news {ticker} {lo}..{hi}: expected a JSON list, got "
                                   f"{type(items).__name__}")
            for n in items:
                counts["items"] += 1
                headline = str(n.get("headline") or "").strip()
                summary = str(n.get("summary") or "").strip()
                if not headline:
                    counts["no_headline"] += 1
                    continue
                if summary.startswith(SPAM_SUMMARY):
                    counts["spam_dropped"] += 1
                    continue
                key = f"{ticker}-{n.get('id', headline)}"
                if key in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(key)
                when = datetime.fromtimestamp(int(n["datetime"]), tz=timezone.utc)
                examples.append(Example(
                    id=f"finnhub-{ticker}-{n.get('id', len(examples))}", text=headline,
                    date=when.strftime("%Y-%m-%d"), ticker=ticker.upper(), source="finnhub",
                    extra={"headline": headline, "summary": summary, "created_at": when.strftime("%Y-%m-%dT%H:%M:%S"),
                           "publisher": n.get("source"), "url": n.get("url")}))
    examples.sort(key=lambda e: (e.ticker or "", e.extra["created_at"], e.id))
    return examples, counts


def collect_finnhub_profiles(client: FinnhubClient, tickers: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``stock/profile2`` per ticker (an empty profile, i.e. an unknown symbol, is an error)."""
    out = {}
    for ticker in tickers:
        profile = client.get("stock/profile2", symbol=ticker)
        if not isinstance(profile, dict) or not profile:
            raise FintuneError(f"finnhub stock/profile2: no profile for '{ticker}'", "check the symbol")
        out[ticker.upper()] = profile
    return out


def collect_finnhub_financials(client: FinnhubClient, tickers: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Quarterly basic financials per ticker from ``stock/metric?metric=all``: one record per fiscal period."""
    out: dict[str, list[dict[str, Any]]] = {}
    for ticker in tickers:
        data = client.get("stock/metric", symbol=ticker, metric="all")
        quarterly = ((data or {}).get("series") or {}).get("quarterly") or {}
        by_period: dict[str, dict[str, Any]] = {}
        for metric, values in quarterly.items():
            for v in values or []:
                if v.get("period") and v.get("v") is not None:
                    by_period.setdefault(str(v["period"])[:10], {})[metric] = v["v"]
        out[ticker.upper()] = [{"period": p, **m} for p, m in sorted(by_period.items())]
    return out


def collect_forecaster_inputs(tickers: Sequence[str], start: str, end: str, out: str | Path,
                              client: FinnhubClient | None = None, with_prices: bool = True,
                              history_days: int = 120, overwrite: bool = False) -> Path:
    """Collect news, profiles, financials (and yfinance prices) for ``tickers`` into ``out`` (atomically).

    Prices start ``history_days`` before ``start`` so the first prompts have past weeks and indicators.
    """
    tickers = [t.strip().upper() for t in tickers if t.strip()]
    if not tickers:
        raise FintuneError("collect: no tickers given", "e.g. AAPL MSFT")
    client = client or FinnhubClient()
    check_output_dir(out, overwrite, inputs=[client.cache_dir])  # before minutes of downloads
    news, counts = collect_finnhub_news(client, tickers, start, end)
    profiles = collect_finnhub_profiles(client, tickers)
    financials = collect_finnhub_financials(client, tickers)
    with atomic_output_dir(out, overwrite, inputs=[client.cache_dir]) as staging:
        write_jsonl(staging / "news.jsonl", news)
        atomic_write_json(staging / "profiles.json", profiles)
        atomic_write_json(staging / "financials.json", financials)
        if with_prices:
            first = (date.fromisoformat(start) - timedelta(days=history_days)).isoformat()
            last = (date.fromisoformat(end) + timedelta(days=8)).isoformat()  # the week after end has the label
            fetch_yfinance(tickers, start=first, end=last, cache_dir=staging / "prices")
        write_manifest(staging, "collect", seed=None,
                       tickers=tickers, start=start, end=end, news_counts=counts, news_examples=len(news),
                       finnhub={"base_url": client.base_url, "calls": client.calls, "cache_hits": client.cache_hits},
                       prices="yfinance" if with_prices else None)
    return Path(out)


# ------------------------------------------------------------------ reading collected files back


def read_profiles(path: Path) -> dict[str, dict[str, Any]]:
    """StockNet's ``StockTable.tsv`` (Sector, $Symbol, Company) or a JSON object ticker -> Finnhub profile."""
    import csv

    if path.suffix == ".json":
        data = read_json_object(path, "a JSON object ticker -> profile")
        return {str(k).upper(): v for k, v in data.items()}
    out = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.DictReader(fh, delimiter="\t"), start=2):
            symbol = (row.get("Symbol") or "").strip().lstrip("$").upper()
            if not symbol or not row.get("Company"):
                raise FintuneError(f"{path}:{lineno}: field 'Symbol' or 'Company' is empty",
                                   "expected StockNet's StockTable columns Sector, Symbol, Company")
            out[symbol] = {"name": row["Company"].strip(), "sector": (row.get("Sector") or "").strip() or None,
                           "ticker": symbol}
    return out


def read_financials(path: Path) -> dict[str, list[dict[str, Any]]]:
    """A JSON object ticker -> list of quarterly records ``{'period': 'YYYY-MM-DD', metric: value}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FintuneError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise FintuneError(f"{path}: expected a JSON object ticker -> list of quarterly records")
    for ticker, records in data.items():
        for i, rec in enumerate(records if isinstance(records, list) else [None]):
            if not isinstance(rec, dict) or len(str(rec.get("period", ""))) < 10:
                raise FintuneError(f"{path}: {ticker}[{i}]: field 'period' missing or not YYYY-MM-DD",
                                   "each record needs the fiscal period end date")
    return {str(k).upper(): v for k, v in data.items()}
