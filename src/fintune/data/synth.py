"""``fintune synth``: labelled synthetic financial news (and matching prices) from a scenario grammar, no model needed.

Each item is a headline or a two-sentence snippet about a fictional company (or the market, for macro items) with a
label in negative / neutral / positive, a stated confidence, a one-sentence analysis and a plausible expected move.
A controlled share of items are *hard cases* (mixed news) with lower confidence and smaller moves.

With ``prices=True`` it also writes daily prices per ticker in the StockNet layout, in which news dated ``t`` drifts
the price over the days *after the open of* ``t+1`` (see :func:`synth_prices`), never before: a backtest that fills
at the next open can earn money from reading the news right, and loses it by reading it wrong. Everything is
deterministic for a seed.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fintune.artifacts import atomic_output_dir, atomic_write_text, hash_paths, write_manifest
from fintune.data import synth_grammar as G
from fintune.errors import FintuneError
from fintune.labels import SENTIMENT, canonical_map, normalize_label
from fintune.records import Example, read_examples, write_jsonl

if TYPE_CHECKING:
    from fintune.recipe import SourceConfig

SOURCE = "synth"
_PRICE_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"


@dataclass
class SynthParams:
    """What to generate. Defaults give a balanced, mildly hard set over 8 fictional tickers from 2023-01-02.

    Attributes:
        n: number of examples.
        seed: random seed (same seed and params -> byte-identical output).
        balance: label -> relative weight (default equal thirds).
        hard_fraction: share of hard items: tricky wording (negation, hedges, entity swaps, numbers that decide
            the label; full-size moves) or mixed news (lower confidence, smaller moves), see ``TRICKY_SHARE``.
        snippet_fraction: share of items with a second, detail sentence.
        n_tickers: fictional companies in the universe.
        start: first business day of the calendar (``YYYY-MM-DD``).
        scenarios: scenario kinds to draw from (see ``synth_grammar.SCENARIOS``).
        news_impact: how much of an item's expected move its price realises over the following days (prices only).
        news_noise: relative noise of that realised move (``move * (1 + news_noise * z)``; prices only).
        daily_vol: idiosyncratic daily return volatility (prices only).
    """

    n: int = 600
    seed: int = 0
    balance: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SENTIMENT, 1.0))
    hard_fraction: float = 0.3
    snippet_fraction: float = 0.35
    n_tickers: int = 8
    start: str = "2023-01-02"
    scenarios: tuple[str, ...] = G.SCENARIOS
    news_impact: float = 0.4
    news_noise: float = 1.0
    daily_vol: float = 0.015

    def validate(self, where: str = "synth") -> None:
        """Raise a one-line FintuneError for any out-of-range parameter."""
        if self.n < 1:
            raise FintuneError(f"{where}: n must be >= 1, got {self.n}")
        unknown = sorted(set(self.balance) - set(SENTIMENT))
        if unknown:
            raise FintuneError(f"{where}: balance has unknown label(s) {unknown}", f"use labels from {list(SENTIMENT)}")
        if any((not isinstance(w, (int, float))) or w < 0 or math.isnan(w) for w in self.balance.values()) \
                or sum(self.balance.values()) <= 0:
            raise FintuneError(f"{where}: balance weights must be non-negative numbers with a positive sum",
                               "e.g. positive=1,negative=1,neutral=2")
        for name in ("hard_fraction", "snippet_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise FintuneError(f"{where}: {name} must be in [0, 1], got {value}")
        if not 1 <= self.n_tickers <= len(G.COMPANY_ROOTS):
            raise FintuneError(f"{where}: n_tickers must be in [1, {len(G.COMPANY_ROOTS)}], got {self.n_tickers}")
        bad = sorted(set(self.scenarios) - set(G.SCENARIOS))
        if bad or not self.scenarios:
            raise FintuneError(f"{where}: unknown or empty scenarios {bad or list(self.scenarios)}",
                               f"choose from {list(G.SCENARIOS)}")
        if self.news_impact < 0 or self.daily_vol < 0 or self.news_noise < 0:
            raise FintuneError(f"{where}: news_impact, news_noise and daily_vol must be >= 0")
        try:
            date.fromisoformat(self.start)
        except ValueError:
            raise FintuneError(f"{where}: start {self.start!r} is not a YYYY-MM-DD date") from None


def make_universe(r: random.Random, n_tickers: int) -> list[dict[str, str]]:
    """Draw ``n_tickers`` fictional companies (name, unique ticker, sector), sectors spread evenly."""
    sectors = list(G.SECTORS)
    roots = r.sample(G.COMPANY_ROOTS, n_tickers)
    universe, used = [], set()
    for i, root in enumerate(roots):
        sector = sectors[i % len(sectors)]
        suffix = r.choice(G.SECTORS[sector]["suffixes"])
        letters = [c for c in root.upper() if c.isalpha()]
        ticker = letters[0] + "".join(letters[1:][j] for j in sorted(r.sample(range(len(letters) - 1), 2))) + suffix[0]
        while ticker in used:  # rare collision: vary the last letter
            ticker = ticker[:3] + chr(ord("A") + r.randrange(26))
        used.add(ticker)
        universe.append({"name": f"{root} {suffix}", "ticker": ticker, "sector": sector})
    return universe


def label_counts(n: int, balance: Mapping[str, float]) -> dict[str, int]:
    """Exact counts per label summing to ``n`` (largest-remainder rounding of the weights)."""
    total = sum(balance.values())
    raw = {lab: n * balance.get(lab, 0.0) / total for lab in SENTIMENT}
    counts = {lab: math.floor(v) for lab, v in raw.items()}
    for lab in sorted(raw, key=lambda k: (-(raw[k] - counts[k]), k))[: n - sum(counts.values())]:
        counts[lab] += 1
    return counts


def business_days(start: str, count: int) -> list[str]:
    """``count`` consecutive Monday-Friday dates from ``start`` (rolled forward to a weekday), as ISO strings."""
    d = date.fromisoformat(start)
    out = []
    while len(out) < count:
        if d.weekday() < 5:
            out.append(d.isoformat())
        d += timedelta(days=1)
    return out


def _expected_move(r: random.Random, label: str, strength: float, hard: bool, macro: bool) -> float:
    if label == "neutral":
        move = max(-0.8, min(0.8, r.gauss(0.0, 0.4 if hard else 0.2)))
    else:
        sign = 1.0 if label == "positive" else -1.0
        size = (0.3 + 1.7 * strength) if hard else (0.8 + 6.5 * strength) * r.uniform(0.85, 1.15)
        move = sign * size * (1.1 if sign < 0 else 1.0)  # bad news tends to move prices a little more
    return round(move * (0.5 if macro else 1.0), 2)


def _confidence(r: random.Random, label: str, strength: float, hard: bool) -> float:
    if hard:
        return round(r.uniform(0.45, 0.65), 2)
    if label == "neutral":
        return round(r.uniform(0.7, 0.92), 2)
    return round(min(0.98, max(0.6, 0.72 + 0.24 * strength + r.gauss(0.0, 0.02))), 2)


TRICKY_SHARE = 0.6
"""Share of hard cases drawn from ``synth_grammar.TRICKY`` (negation, hedges, entity swaps, numbers) rather than
``MIXED`` (mixed news with a dominant element)."""


def _one_item(r: random.Random, scenario: str, label: str, company: dict[str, str], hard: bool,
              snippet: bool) -> tuple[str, dict[str, Any]]:
    strength = r.random()
    tricky = hard and scenario != "macro" and r.random() < TRICKY_SHARE
    if tricky:
        strength = 0.4 + 0.6 * strength  # numbers far enough apart to read once rounded
    facts = G.scenario_facts(r, company, label, strength)
    if tricky:
        template, analysis, kind = r.choice(G.TRICKY[label])
        scenario_name = f"tricky-{kind}"
        hard = False  # real news in tricky words: full-size confidence and move
    elif hard:
        template, analysis = r.choice(G.MIXED[label])
        scenario_name = "mixed"
    else:
        template = r.choice(G.HEADLINES[scenario][label])
        analysis = r.choice(G.ANALYSES[scenario][label])
        scenario_name = scenario
        if snippet:
            template = template + ". " + r.choice(G.DETAILS[scenario][label])
    text = template.format(**facts)
    text = text[0].upper() + text[1:]
    extra = {
        "confidence": _confidence(r, label, strength, hard),
        "analysis": analysis.format(**facts),
        "expected_move": _expected_move(r, label, strength, hard, scenario == "macro"),
        "scenario": scenario_name,
        "hard": hard or tricky,
        "strength": round(strength, 3),
        "company": None if scenario == "macro" else company["name"],
        "sector": None if scenario == "macro" else company["sector"],
    }
    return text, extra


def generate_synth(params: SynthParams) -> tuple[list[Example], list[dict[str, str]]]:
    """Generate the labelled examples and the company universe they talk about.

    Returns ``(examples, universe)``: examples sorted by date then ticker, ids ``synth-000001``...; macro items have
    ``ticker=None`` (market-wide). Every (ticker, date) pair carries at most one item, every market date at most one
    macro item, and no date is the calendar's last day (so each item has a next day to move).
    """
    params.validate()
    r = random.Random(params.seed)
    universe = make_universe(r, params.n_tickers)
    counts = label_counts(params.n, params.balance)
    labels = [lab for lab in SENTIMENT for _ in range(counts[lab])]
    r.shuffle(labels)
    scenarios = [r.choice(params.scenarios) for _ in labels]
    n_macro = sum(s == "macro" for s in scenarios)
    n_company = len(labels) - n_macro
    # Enough days that company items fill at most ~70% of the (ticker, day) grid and macro items fit one per day.
    n_days = max(30, math.ceil(n_company / (0.7 * params.n_tickers)), math.ceil(n_macro / 0.7)) + 1
    days = business_days(params.start, n_days)
    company_slots = r.sample(range((n_days - 1) * params.n_tickers), n_company)
    macro_days = r.sample(range(n_days - 1), n_macro)
    n_hard = round(params.hard_fraction * len(labels))
    hard_idx = set(r.sample([i for i, s in enumerate(scenarios) if s != "macro"], min(n_hard, n_company)))

    rows, seen = [], set()
    macro_placeholder = {"name": "", "ticker": "", "sector": "financials"}
    for i, (label, scenario) in enumerate(zip(labels, scenarios, strict=True)):
        if scenario == "macro":
            company, day = macro_placeholder, days[macro_days.pop()]
        else:
            slot = company_slots.pop()
            company, day = universe[slot % params.n_tickers], days[slot // params.n_tickers]
        for _attempt in range(50):  # redraw the rare exact duplicate instead of emitting it
            text, extra = _one_item(r, scenario, label, company, i in hard_idx, r.random() < params.snippet_fraction)
            if text not in seen:
                break
        else:
            raise FintuneError(f"synth: could not draw a new distinct text after 50 tries at item {i}",
                               "lower n or add scenarios")
        seen.add(text)
        rows.append((day, company["ticker"] or "", text, label, extra))
    rows.sort(key=lambda row: (row[0], row[1]))
    examples = [Example(id=f"synth-{k:06d}", text=text, label=label, date=day, ticker=ticker or None,
                        source=SOURCE, extra=extra)
                for k, (day, ticker, text, label, extra) in enumerate(rows, start=1)]
    return examples, universe


PriceRow = tuple[str, float, float, float, float, int]
"""(date, open, high, low, close, volume)"""


DRIFT_WEIGHTS = (0.5, 0.3, 0.2)
"""Share of an item's realised move on the 1st, 2nd and 3rd trading day after its date. Day 1's share comes after
that day's open (intraday), later days' shares split 40/60 between their overnight gap and their session: nothing
moves between the item's close and the next open, so a model that reads the news on day ``t`` and fills at the open
of ``t+1`` can capture the whole move (and a wrong reading loses it)."""
_LATER_GAP_SHARE = 0.4


def synth_prices(examples: Sequence[Example], universe: Sequence[dict[str, str]],
                 params: SynthParams) -> dict[str, list[PriceRow]]:
    """Daily OHLCV per ticker in which news dated ``t`` drifts the price over the days after the next open.

    Returns ticker -> rows ``(date, open, high, low, close, volume)``. The calendar runs from ``params.start`` to
    ``len(DRIFT_WEIGHTS)`` business days after the last item. An item's realised move is
    ``news_impact * expected_move * (1 + news_noise * z)`` (``z`` standard normal, so big news usually but not always
    moves the way its label says), spread over the next days by :data:`DRIFT_WEIGHTS`, starting *after* the open of
    ``t+1``. Company items move their own ticker; macro items move a market factor every ticker loads on
    (beta 0.6-1.4). On top: market and idiosyncratic noise (``daily_vol``), 30% of it in the overnight gap.
    """
    import numpy as np

    params.validate()
    if not examples:
        raise FintuneError("synth: no examples to build prices from")
    horizon = len(DRIFT_WEIGHTS)
    last = max(ex.date for ex in examples if ex.date)
    days = business_days(params.start, 64)
    while days[-1] <= last:
        days = business_days(params.start, len(days) + 64)
    n_through_last = sum(d <= last for d in days)
    days = business_days(params.start, n_through_last + horizon)
    index = {d: k for k, d in enumerate(days)}
    tickers = [c["ticker"] for c in universe]
    col = {t: j for j, t in enumerate(tickers)}
    n_days, n_tk = len(days), len(tickers)
    # [0]: overnight gap part, [1]: intraday part, per day and ticker (company) or per day (market)
    news = np.zeros((2, n_days, n_tk))
    market_news = np.zeros((2, n_days))
    noise_rng = np.random.default_rng([params.seed, 2])
    for ex in examples:
        k = index.get(ex.date or "")
        if k is None:
            raise FintuneError(f"synth: example {ex.id} date {ex.date!r} is not a business day of the calendar")
        if ex.ticker is not None and ex.ticker not in col:
            raise FintuneError(f"synth: example {ex.id} ticker {ex.ticker!r} is not in the universe")
        move = params.news_impact * float(ex.extra["expected_move"]) / 100.0
        move *= 1.0 + params.news_noise * noise_rng.standard_normal()
        for d, w in enumerate(DRIFT_WEIGHTS, start=1):
            gap_part = 0.0 if d == 1 else _LATER_GAP_SHARE
            for part, share in ((0, gap_part), (1, 1.0 - gap_part)):
                if ex.ticker is None:
                    market_news[part, k + d] += w * share * move
                else:
                    news[part, k + d, col[ex.ticker]] += w * share * move

    rng = np.random.default_rng([params.seed, 1])
    market_noise = 0.0002 + rng.normal(0.0, 0.008, n_days)
    beta = rng.uniform(0.6, 1.4, n_tk)
    vol = params.daily_vol * rng.uniform(0.8, 1.3, n_tk)
    p0 = rng.uniform(15.0, 250.0, n_tk)
    base_volume = rng.uniform(2e5, 5e6, n_tk)
    idio = rng.normal(0.0, 1.0, (n_days, n_tk)) * vol
    noise = beta * market_noise[:, None] + idio
    news_gap = news[0] + beta * market_news[0][:, None]
    news_intra = news[1] + beta * market_news[1][:, None]
    gap = news_gap + 0.3 * noise
    day_ret = 0.0003 + noise + news_gap + news_intra
    close = p0 * np.exp(np.cumsum(day_ret, axis=0))
    prev_close = np.vstack([p0[None, :], close[:-1]])
    open_ = prev_close * np.exp(gap)
    wick = np.abs(rng.normal(0.0, 0.004, (2, n_days, n_tk)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = base_volume * np.exp(rng.normal(0.0, 0.3, (n_days, n_tk))) * (
        1.0 + 25.0 * np.abs(news_gap + news_intra))
    out: dict[str, list[PriceRow]] = {}
    for j, t in enumerate(tickers):
        out[t] = [(days[k], float(open_[k, j]), float(high[k, j]), float(low[k, j]), float(close[k, j]),
                   int(volume[k, j])) for k in range(n_days)]
    return out


def write_price_csv(path: str | Path, rows: Sequence[PriceRow]) -> None:
    """One ticker's rows as a StockNet-layout CSV (``Adj Close`` = ``Close``: no splits or dividends), atomically."""
    lines = [_PRICE_HEADER] + [f"{d},{o:.6f},{h:.6f},{lo:.6f},{c:.6f},{c:.6f},{v}" for d, o, h, lo, c, v in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_synth(out: str | Path, params: SynthParams, prices: bool = False, overwrite: bool = False) -> Path:
    """Generate and write ``examples.jsonl`` (+ ``prices/<TICKER>.csv``) and ``manifest.json`` to ``out`` atomically."""
    examples, universe = generate_synth(params)
    with atomic_output_dir(out, overwrite=overwrite) as stage:
        write_jsonl(stage / "examples.jsonl", examples)
        price_info = None
        if prices:
            table = synth_prices(examples, universe, params)
            for ticker, rows in table.items():
                write_price_csv(stage / "prices" / f"{ticker}.csv", rows)
            any_rows = next(iter(table.values()))
            price_info = {"tickers": sorted(table), "first_date": any_rows[0][0], "last_date": any_rows[-1][0],
                          "rows_per_ticker": len(any_rows), "layout": "stocknet price_raw",
                          "news_effect": "item dated t drifts the price after the open of t+1, shares "
                                         f"{list(DRIFT_WEIGHTS)} over the next {len(DRIFT_WEIGHTS)} days"}
        summary = synth_summary(examples)
        hashes = {str(Path(p).relative_to(stage)): h for p, h in hash_paths([stage]).items()}
        write_manifest(stage, "synth", seed=params.seed, data_hashes=hashes,
                       params={**params.__dict__, "scenarios": list(params.scenarios)},
                       n=len(examples), balance=summary["labels"], summary=summary, universe=universe,
                       prices=price_info,
                       note="fictional companies, brokers and people; generated text, not real news")
    return Path(out)


def synth_summary(examples: Sequence[Example]) -> dict[str, Any]:
    """Counts per label, scenario and ticker, hard-case count and distinct-n-gram ratios (for the manifest)."""
    return {
        "labels": dict(sorted(Counter(ex.label for ex in examples).items())),
        "scenarios": dict(sorted(Counter(ex.extra["scenario"] for ex in examples).items())),
        "tickers": dict(sorted(Counter(ex.ticker or "<market>" for ex in examples).items())),
        "hard": sum(bool(ex.extra.get("hard")) for ex in examples),
        "distinct_2": round(distinct_ngram_ratio([ex.text for ex in examples], 2), 4),
        "distinct_3": round(distinct_ngram_ratio([ex.text for ex in examples], 3), 4),
    }


def distinct_ngram_ratio(texts: Sequence[str], n: int) -> float:
    """Distinct word n-grams / all word n-grams over the corpus (the usual "distinct-n" diversity measure)."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = text.lower().split()
        grams.extend(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


_OPTION_TYPES = {"n": int, "seed": int, "balance": dict, "hard_fraction": float, "snippet_fraction": float,
                 "n_tickers": int, "start": str, "scenarios": list, "news_impact": float, "news_noise": float,
                 "daily_vol": float}


def params_from_options(options: Mapping[str, Any], where: str) -> SynthParams:
    """SynthParams from a recipe's ``options`` mapping; unknown keys and wrong types raise naming the key."""
    unknown = sorted(set(options) - set(_OPTION_TYPES))
    if unknown:
        raise FintuneError(f"{where}: unknown synth option(s) {unknown}", f"allowed: {sorted(_OPTION_TYPES)}")
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        want = _OPTION_TYPES[key]
        ok = isinstance(value, want) or (want is float and isinstance(value, int))
        if not ok or isinstance(value, bool):
            raise FintuneError(f"{where}.{key}: expected {want.__name__}, got {value!r}")
        kwargs[key] = tuple(value) if key == "scenarios" else (float(value) if want is float else value)
    if "balance" in kwargs:
        kwargs["balance"] = {str(k): v for k, v in kwargs["balance"].items()}
    params = SynthParams(**kwargs)
    params.validate(where)
    return params


def load_synth_source(cfg: SourceConfig, task: str, labels: Sequence[str] | None) -> list[Example]:
    """Registry loader for ``sources: [{name: synth, options: {n: 600, seed: 0}}]`` or ``{name: synth, path: DIR}``.

    With ``path`` it reads ``DIR/examples.jsonl`` (or the JSONL file itself) written by ``fintune synth``; otherwise
    it generates from ``options`` (see :class:`SynthParams`). Only the sentiment task
    with the negative/neutral/positive label set is supported.
    """
    where = f"sources[{cfg.name}]"
    if task != "sentiment":
        raise FintuneError(f"{where}: synth produces sentiment examples, not task '{task}'", "set data.task: sentiment")

    declared = labels if labels else SENTIMENT
    meaning = {v: k for k, v in canonical_map("sentiment", declared).items()}  # positive -> bullish, ...
    if len(declared) != len(SENTIMENT) or set(meaning) != set(SENTIMENT):
        raise FintuneError(f"{where}: synth labels are {list(SENTIMENT)}, the recipe declares {list(declared)}",
                           "remove data.labels, or declare three labels that mean these (data.canonical_labels)")
    if cfg.path:
        path = Path(cfg.path)
        path = path / "examples.jsonl" if path.is_dir() else path
        if cfg.options:
            raise FintuneError(f"{where}: options {sorted(cfg.options)} are ignored when path is set",
                               "remove options or path")
        examples = read_examples(path)
        for k, ex in enumerate(examples, start=1):
            ex.label = normalize_label(ex.label, declared, f"{path}: record {k} (id {ex.id}) field 'label'")
    else:
        examples, _ = generate_synth(params_from_options(cfg.options, f"{where}.options"))
    for ex in examples:  # into the declared vocabulary (identity for negative/neutral/positive)
        ex.label = meaning.get(ex.label, ex.label) if ex.label is not None else None
    return examples  # registry.load_source applies cfg.limit
