"""FinGPT-Forecaster weekly examples built point-in-time from dated news (or tweets) and daily prices.

One example per (ticker, predicted week). The prompt follows FinGPT-Forecaster's construction
(``AI4Finance-Foundation/FinGPT``, ``fingpt/FinGPT_Forecaster/prompt.py`` ``get_company_prompt`` /
``get_prompt_by_row`` / ``get_all_prompts`` and ``app.py`` ``get_all_prompts_online``) so results stay comparable:

    [Company Introduction]: ...                      (only when a profile is given)
    From <d0> to <d1>, <T>'s stock price increased from X to Y. Company news during this period are listed below:
    [Headline]: ...  (+ [Summary]: ... when the source has summaries), at most ``max_headlines_per_week``
    ... one block per past week (``past_weeks``) ...
    [Technical Indicators] ...                       (optional, fintune addition)
    [Basic Financials]: ... | No basic financial reported.
    Based on all the information before <week_start>, let's first analyze ... Then make your prediction of the
    <T> stock price movement for next week (<week_start> to <week_end>). Provide a summary analysis ...

Decisions (documented because they change numbers):

* **Weeks** are pandas ``W-FRI`` periods (Saturday..Friday), so a week's block pairs the news published between
  two Friday closes with the price move between those closes. Weekend items belong to the *following* week; the
  predicted week's own weekend items are therefore never in its prompt (conservative, nothing is dropped: they
  show up in later prompts).
* **Weekly return** = ``adj_close`` on the last trading day of the week / ``adj_close`` on the last trading day of
  the previous week - 1 (FinGPT resamples Adj Close weekly the same way). The block prices shown are the same
  adjusted closes, so the prompt's moves and the label measure one quantity.
* **Label** = :func:`fintune.prompts.parse.move_to_bin` (U/D + ceil(|r| x 100), capped at 5+; a flat week is U1).
* **Point in time**: every headline, price, indicator and financial in a prompt is dated strictly before the
  predicted week's first day (its Saturday); ``extra['items_latest_date']`` records the latest one and the builder
  raises if the guarantee would break. Basic financials count as known ``basics_lag_days`` (default 45) after
  their fiscal period end (FinGPT uses the period date itself, which is before the filing: look-ahead).
* **Gaps**: a price week is *complete* for a ticker when it has the market calendar's last trading day of that
  week (calendar = union of all loaded tickers' dates). An example needs complete weeks for the predicted week,
  the week before it and every shown past week, otherwise it is skipped as ``price_gap`` (never interpolated).
* **No news**: ``no_news='skip'`` (default) skips an example whose past weeks hold no headline at all
  (``no_news`` count); ``no_news='prompt'`` keeps it with FinGPT's "No relative news reported." line per week.
  Inside a kept prompt, an empty week always gets that line (FinGPT does the same).
* **Headlines** are de-duplicated per week (StockNet has many retweets) and sampled deterministically: the sample
  of a (ticker, week) depends only on ``seed``, ticker and week, so every prompt that shows that week shows the
  same headlines; kept in time order.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fintune.data.collectors import read_financials, read_profiles
from fintune.data.forecaster_answers import TeacherConfig, add_teacher_answers
from fintune.data.indicators import compute_indicators, indicators_block
from fintune.data.registry import check_options, option, require_path
from fintune.data.stocknet import load_stocknet_tweets
from fintune.errors import FintuneError
from fintune.prices import load_prices
from fintune.prompts.forecaster import SYSTEM_PROMPT  # noqa: F401 (re-exported: the builder's prompt)
from fintune.prompts.parse import bin_to_text, move_to_bin
from fintune.records import Example, read_examples

if TYPE_CHECKING:
    import pandas as pd

    from fintune.recipe import SourceConfig

NO_NEWS_LINE = "No relative news reported."
NO_BASICS = "[Basic Financials]:\n\nNo basic financial reported."
SKIP_REASONS = ("insufficient_history", "price_gap", "no_news", "no_label")
BUILDER_VERSION = "fintune-forecaster-1"


@dataclass
class ForecasterOptions:
    """How weekly examples are built (every field is a ``data.sources[].options`` key of the recipe)."""

    past_weeks: int = 3
    min_past_weeks: int | None = None  # None = past_weeks (always show exactly past_weeks blocks)
    max_headlines_per_week: int = 5
    no_news: Literal["skip", "prompt"] = "skip"
    indicators: bool = False
    basics_lag_days: int = 45
    seed: int = 42
    start: str | None = None  # first predicted week (any date inside it); default: first week after news starts
    end: str | None = None  # last predicted week; default: the week after the last news item
    source_name: str = "stocknet-forecaster"

    def __post_init__(self) -> None:
        for name in ("past_weeks", "max_headlines_per_week", "basics_lag_days", "seed", "min_past_weeks"):
            value = getattr(self, name)
            if not (value is None and name == "min_past_weeks") and (isinstance(value, bool)
                                                                     or not isinstance(value, int)):
                raise FintuneError(f"forecaster option {name}={value!r}: must be an integer")
        if not isinstance(self.indicators, bool):
            raise FintuneError(f"forecaster option indicators={self.indicators!r}: must be true or false")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) != 10 or value[4] != "-"):
                raise FintuneError(f"forecaster option {name}={value!r}: must be a 'YYYY-MM-DD' date string")
        if self.past_weeks < 1:
            raise FintuneError(f"forecaster option past_weeks={self.past_weeks}", "use 1 or more")
        if self.min_past_weeks is not None and not 1 <= self.min_past_weeks <= self.past_weeks:
            raise FintuneError(f"forecaster option min_past_weeks={self.min_past_weeks}",
                               f"use a value between 1 and past_weeks ({self.past_weeks})")
        if self.max_headlines_per_week < 1:
            raise FintuneError(f"forecaster option max_headlines_per_week={self.max_headlines_per_week}",
                               "use 1 or more")
        if self.no_news not in ("skip", "prompt"):
            raise FintuneError(f"forecaster option no_news={self.no_news!r}", "use 'skip' or 'prompt'")
        if self.basics_lag_days < 0:
            raise FintuneError(f"forecaster option basics_lag_days={self.basics_lag_days}", "use 0 or more")


@dataclass
class ForecasterBuild:
    """The built examples and the report of what was kept and skipped (goes into the manifest)."""

    examples: list[Example]
    report: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ small pieces


def answer_for_label(bin_label: str) -> str:
    """The label-only target answer in FinGPT's format: ``[Prediction & Analysis]:\\nPrediction: Up by 2-3%``."""
    return f"[Prediction & Analysis]:\nPrediction: {bin_to_text(bin_label).capitalize()}"


def company_block(profile: Mapping[str, Any] | None) -> str:
    """The ``[Company Introduction]`` block from a Finnhub ``profile2``-like dict (or ``name``/``sector``).

    FinGPT's template also states the market capitalisation and shares outstanding "as of today"; those are
    collected now, not at the prompt date, so they are left out (point in time). Missing fields drop their clause.
    """
    if not profile:
        return ""
    name = profile.get("name") or profile.get("ticker")
    industry = profile.get("finnhubIndustry") or profile.get("sector")
    parts = [f"{name} is a leading entity in the {industry} sector." if industry else f"{name} is a listed company."]
    if profile.get("ipo"):
        parts.append(f"Incorporated and publicly traded since {profile['ipo']}, the company has established its "
                     "reputation as one of the key players in the market.")
    text = "[Company Introduction]:\n\n" + " ".join(parts)
    where = []
    if profile.get("country"):
        where.append(f"{name} operates primarily in the {profile['country']}")
    if profile.get("ticker") and profile.get("exchange"):
        where.append(f"trading under the ticker {profile['ticker']} on the {profile['exchange']}")
    if where:
        text += "\n\n" + ", ".join(where) + "."
    return text


def basics_block(ticker: str, basics: Mapping[str, Any] | None) -> str:
    """FinGPT's ``[Basic Financials]`` block for one quarterly record (``period`` + metric values)."""
    if not basics:
        return NO_BASICS
    body = "\n".join(f"{k}: {v}" for k, v in basics.items() if k != "period")
    return (f"Some recent basic financials of {ticker}, reported at {basics['period']}, are presented below:\n\n"
            f"[Basic Financials]:\n\n{body}")


def prompt_end(ticker: str, week_start: str, week_end: str) -> str:
    """FinGPT's closing instruction (the label-free version used for training and inference)."""
    return (f"\n\nBased on all the information before {week_start}, let's first analyze the positive developments "
            f"and potential concerns for {ticker}. Come up with 2-4 most important factors respectively and keep "
            "them concise. Most factors should be inferred from company related news. Then make your prediction of "
            f"the {ticker} stock price movement for next week ({week_start} to {week_end}). Provide a summary "
            "analysis to support your prediction.")


def _news_line(item: Example) -> str:
    headline = item.extra.get("headline") or item.text
    summary = item.extra.get("summary")
    return f"[Headline]: {headline}\n[Summary]: {summary}\n" if summary else f"[Headline]: {headline}\n"


def _stable_rng(*parts: Any) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def _sample_week(items: list[Example], k: int, seed: int, ticker: str, week: Any) -> list[Example]:
    if len(items) <= k:
        return items
    rng = _stable_rng(seed, ticker, week)
    return [items[i] for i in sorted(rng.sample(range(len(items)), k))]


def _day(value: str | None, where: str) -> str:
    if not value or len(value) < 10:
        raise FintuneError(f"{where}: missing or bad date {value!r}", "news items need an ISO date (YYYY-MM-DD)")
    return value[:10]


# ------------------------------------------------------------------ the builder


def _group_news(news: Sequence[Example]) -> tuple[dict[tuple[str, Any], list[Example]], int]:
    import pandas as pd

    grouped: dict[tuple[str, Any], list[Example]] = defaultdict(list)
    seen: set[tuple[str, Any, str]] = set()
    duplicates = 0
    for item in news:
        if not item.ticker:
            raise FintuneError(f"news item '{item.id}': missing ticker", "every news item needs its ticker")
        day = _day(item.date, f"news item '{item.id}'")
        week = pd.Period(day, freq="W-FRI")
        key = (item.ticker.upper(), week, " ".join(item.text.lower().split()))
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        grouped[(item.ticker.upper(), week)].append(item)
    for items in grouped.values():
        items.sort(key=lambda e: (e.extra.get("created_at") or e.date or "", e.id))
    return grouped, duplicates


def _weekly_closes(prices: pd.DataFrame) -> tuple[dict[str, dict[Any, tuple[str, str, float]]], dict[Any, str]]:
    """Per ticker: W-FRI period -> (first day, last day, adj_close on last day), complete weeks only.

    Also returns the market calendar's last trading day per period (union of all tickers' dates).
    """
    frame = prices[["date", "ticker", "adj_close"]].copy()
    frame["week"] = frame["date"].dt.to_period("W-FRI")
    calendar_last = frame.groupby("week")["date"].max().dt.strftime("%Y-%m-%d").to_dict()
    out: dict[str, dict[Any, tuple[str, str, float]]] = {}
    for ticker, g in frame.groupby("ticker", sort=True):
        agg = g.groupby("week").agg(first=("date", "min"), last=("date", "max"), close=("adj_close", "last"))
        weeks: dict[Any, tuple[str, str, float]] = {}
        for week, row in agg.iterrows():
            last = row["last"].strftime("%Y-%m-%d")
            if last == calendar_last[week]:
                weeks[week] = (row["first"].strftime("%Y-%m-%d"), last, float(row["close"]))
        out[str(ticker)] = weeks
    return out, calendar_last


def _pick_basics(records: Sequence[Mapping[str, Any]], cutoff_day: str, lag_days: int) -> dict[str, Any] | None:
    import pandas as pd

    best = None
    for rec in records:
        period = str(rec.get("period", ""))[:10]
        known = (pd.Timestamp(period) + pd.Timedelta(days=lag_days)).strftime("%Y-%m-%d")
        if known < cutoff_day and (best is None or period > best[0]):
            best = (period, known, rec)
    if best is None:
        return None
    return {"period": best[0], "known_from": best[1], **{k: v for k, v in best[2].items() if k != "period"}}


def build_forecaster_examples(news: Sequence[Example], prices: pd.DataFrame,
                              options: ForecasterOptions | None = None,
                              profiles: Mapping[str, Mapping[str, Any]] | None = None,
                              financials: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                              tickers: Sequence[str] | None = None) -> ForecasterBuild:
    """Build one point-in-time example per (ticker, predicted week); see the module docstring for the rules.

    Args:
        news: dated items (tweets or headlines) with ``ticker`` and ``date``; ``extra['headline']`` /
            ``extra['summary']`` are used when present, else ``text``.
        prices: long daily prices (``fintune.prices.load_prices``): date, ticker, adj_close, ...
        options: builder settings (defaults: 3 past weeks, 5 headlines a week, skip weeks without news).
        profiles: ticker -> profile dict for the ``[Company Introduction]`` block (optional).
        financials: ticker -> quarterly records ``{'period': 'YYYY-MM-DD', metric: value, ...}`` (optional).
        tickers: restrict to these tickers (default: every ticker that has news).

    Returns:
        :class:`ForecasterBuild` with examples sorted by (week, ticker) and a report (counts of weeks, tickers,
        skips per reason, tickers without prices, label distribution).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    opts = options or ForecasterOptions()
    min_weeks = opts.min_past_weeks or opts.past_weeks
    grouped, duplicates = _group_news(news)
    news_tickers = sorted({t for t, _ in grouped})
    wanted = sorted({t.upper() for t in tickers}) if tickers else news_tickers
    closes, calendar_last = _weekly_closes(prices)
    if not calendar_last:
        raise FintuneError("forecaster: the price table is empty", "load prices for the tickers first")
    without_prices = [t for t in wanted if t not in closes]
    without_news = [t for t in wanted if t not in news_tickers]
    news_weeks = sorted(w for _, w in grouped)
    if not news_weeks and (opts.start is None or opts.end is None):
        raise FintuneError("forecaster: no news items to build prompts from",
                           "check the news source (tickers, dates) or give options.start and options.end")
    first = pd.Period(opts.start, freq="W-FRI") if opts.start else news_weeks[0] + 1
    last = pd.Period(opts.end, freq="W-FRI") if opts.end else news_weeks[-1] + 1
    market_weeks = [w for w in sorted(calendar_last) if first <= w <= last]
    indicator_cache: dict[str, Any] = {}
    skipped: Counter[tuple[str, str]] = Counter()
    examples: list[Example] = []
    for ticker in tqdm([t for t in wanted if t in closes], desc="forecaster weeks", unit="ticker"):
        weeks = closes[ticker]
        for week in market_weeks:
            ex = _build_one(ticker, week, weeks, grouped, opts, min_weeks, profiles, financials, prices,
                            indicator_cache, move_to_bin, skipped)
            if ex is not None:
                examples.append(ex)
    examples.sort(key=lambda e: (e.date or "", e.ticker or ""))
    labels = Counter(e.label for e in examples)
    report = {
        "builder": BUILDER_VERSION,
        "options": asdict(opts),
        "tickers_requested": len(wanted),
        "tickers_with_examples": len({e.ticker for e in examples}),
        "tickers_without_prices": without_prices,
        "tickers_without_news": without_news,
        "weeks_in_range": len(market_weeks),
        "first_week": str(market_weeks[0]) if market_weeks else None,
        "last_week": str(market_weeks[-1]) if market_weeks else None,
        "weeks_with_examples": len({e.date for e in examples}),
        "candidates": len(examples) + sum(skipped.values()),
        "examples": len(examples),
        "skipped": {reason: sum(n for (r, _), n in skipped.items() if r == reason) for reason in SKIP_REASONS},
        "skipped_by_ticker": {reason: {t: n for (r, t), n in sorted(skipped.items()) if r == reason}
                              for reason in SKIP_REASONS},
        "duplicate_news_items_removed": duplicates,
        "label_distribution": {b: labels[b] for b in sorted(labels)},
    }
    return ForecasterBuild(examples, report)


def _build_one(ticker: str, week: Any, weeks: dict[Any, tuple[str, str, float]],
               grouped: dict[tuple[str, Any], list[Example]], opts: ForecasterOptions, min_weeks: int,
               profiles: Mapping[str, Mapping[str, Any]] | None,
               financials: Mapping[str, Sequence[Mapping[str, Any]]] | None, prices: pd.DataFrame,
               indicator_cache: dict[str, Any], move_to_bin: Any,
               skipped: Counter[tuple[str, str]]) -> Example | None:
    """One example for ``ticker`` predicting ``week`` or None (the skip reason is counted)."""
    first_week, last_week = next(iter(weeks), None), next(reversed(weeks), None)  # keys are in period order
    listed = first_week is not None and first_week < week
    if week not in weeks:
        # before listing there is no history, after the data ends no label; a hole inside is a price gap
        skipped[("insufficient_history" if not listed else "no_label" if week > last_week else "price_gap",
                 ticker)] += 1
        return None
    n_past = opts.past_weeks
    if min_weeks < opts.past_weeks:
        n_past = _stable_rng(opts.seed, ticker, week, "n").randint(min_weeks, opts.past_weeks)
    needed = [week - k for k in range(1, n_past + 2)]  # past blocks + the week before the oldest block
    if first_week > needed[-1]:
        skipped[("insufficient_history", ticker)] += 1
        return None
    if any(w not in weeks for w in needed):
        skipped[("price_gap", ticker)] += 1
        return None
    block_weeks = sorted(needed[:-1])
    blocks, n_headlines, latest = [], 0, ""
    for w in block_weeks:
        prev_close, (_, end_day, close) = weeks[w - 1][2], weeks[w]
        start_day = weeks[w - 1][1]
        term = "increased" if close > prev_close else "decreased"
        head = (f"From {start_day} to {end_day}, {ticker}'s stock price {term} from {prev_close:.2f} to "
                f"{close:.2f}. Company news during this period are listed below:\n\n")
        items = _sample_week(grouped.get((ticker, w), []), opts.max_headlines_per_week, opts.seed, ticker, w)
        n_headlines += len(items)
        latest = max([latest, end_day, *(_day(i.date, i.id) for i in items)])
        blocks.append("\n" + head + ("\n".join(_news_line(i) for i in items) if items else NO_NEWS_LINE))
    if n_headlines == 0 and opts.no_news == "skip":
        skipped[("no_news", ticker)] += 1
        return None
    week_start, week_end, close = weeks[week]
    prev_close = weeks[week - 1][2]
    cutoff = week.start_time.strftime("%Y-%m-%d")  # the predicted week's Saturday
    text = company_block((profiles or {}).get(ticker)) + "\n" + "".join(blocks)
    if opts.indicators:
        asof = weeks[week - 1][1]
        block = _indicator_block(ticker, asof, prices, indicator_cache)
        if block:
            text += "\n" + block + "\n"
            latest = max(latest, asof)
    basics = _pick_basics((financials or {}).get(ticker, []), cutoff, opts.basics_lag_days)
    if basics:
        latest = max(latest, basics.pop("known_from"))
    text += "\n" + basics_block(ticker, basics) + prompt_end(ticker, week_start, week_end)
    if latest >= cutoff:  # a bug, not bad input: refuse to emit a leaking example
        raise AssertionError(f"point-in-time violated for {ticker} {week}: item dated {latest} >= {cutoff}")
    ret = close / prev_close - 1.0
    label = move_to_bin(ret)
    return Example(
        id=f"fc-{ticker}-{week_start}", text=text.strip(), label=label, date=week_start, ticker=ticker,
        source=opts.source_name,
        extra={
            "answer": answer_for_label(label), "next_week_return": round(ret * 100, 6),
            "week_start": week_start, "week_end": week_end, "prev_close_date": weeks[week - 1][1],
            "n_headlines": n_headlines, "past_weeks": len(block_weeks), "items_latest_date": latest,
            "basics_period": basics["period"] if basics else None,
            "provenance": {"answer": "label-only", "builder": BUILDER_VERSION, "seed": opts.seed},
        },
    )


def _indicator_block(ticker: str, asof: str, prices: pd.DataFrame, cache: dict[str, Any]) -> str:
    if ticker not in cache:
        one = prices[prices["ticker"] == ticker].set_index("date")["adj_close"]
        cache[ticker] = compute_indicators(one)  # causal: row t uses closes <= t only (tested)
    frame = cache[ticker]
    row = frame.loc[frame.index <= asof].iloc[-1]
    return indicators_block({k: (None if math.isnan(v) else float(v)) for k, v in row.items()}, asof, ticker)


# ------------------------------------------------------------------ recipe glue

_BUILDER_KEYS = ("past_weeks", "min_past_weeks", "max_headlines_per_week", "no_news", "indicators",
                 "basics_lag_days", "seed", "start", "end")
SOURCE_OPTIONS = (*_BUILDER_KEYS, "tickers", "prices", "profiles", "financials", "teacher")


def build_forecaster_source(cfg: SourceConfig) -> ForecasterBuild:
    """Build the weekly set a recipe source describes (``data.task: forecaster``).

    ``name: stocknet`` reads tweets from ``path`` (prices default to ``path/price_raw``, profiles to
    ``path/StockTable.tsv``); ``name: jsonl`` reads news Examples written by
    :func:`fintune.data.collectors.collect_finnhub_news` and needs ``options.prices``. Other options: the
    :class:`ForecasterOptions` fields, ``tickers``, ``profiles`` (TSV or JSON), ``financials`` (JSON) and
    ``teacher`` (see :mod:`fintune.data.forecaster_answers`).
    """
    check_options(cfg, SOURCE_OPTIONS)
    root = require_path(cfg, "StockNet folder" if cfg.name == "stocknet" else "news JSONL file")
    tickers = option(cfg, "tickers")
    if tickers is not None and (not isinstance(tickers, list) or not all(isinstance(t, str) for t in tickers)):
        raise FintuneError(f"source '{cfg.name}': options.tickers must be a list of symbols, e.g. [AAPL, MSFT]")

    def _path(key: str, default: Path | None) -> Path | None:
        value = option(cfg, key)
        path = Path(value).expanduser() if value else default
        if value and not path.exists():
            raise FintuneError(f"{path}: file not found (source '{cfg.name}' options.{key})")
        return path if path is not None and path.exists() else None

    if cfg.name == "stocknet":
        base = root if root.is_dir() else root.parent
        news = load_stocknet_tweets(root)
        source_name = "stocknet-forecaster"
        prices_path, profiles_path = _path("prices", base / "price_raw"), _path("profiles", base / "StockTable.tsv")
    elif cfg.name == "jsonl":
        news = read_examples(root)
        source_name = "news-forecaster"
        prices_path, profiles_path = _path("prices", None), _path("profiles", None)
    else:
        raise FintuneError(f"source '{cfg.name}': not a forecaster news source",
                           "data.task forecaster reads name: stocknet or name: jsonl (collected news)")
    if prices_path is None:
        raise FintuneError(f"source '{cfg.name}': options.prices is required",
                           "a directory of <TICKER>.csv files or a long-format parquet")
    prices = load_prices(prices_path)
    wanted = [t.upper() for t in tickers] if tickers else sorted(
        {str(t) for t in prices["ticker"].unique()} | {str(e.ticker).upper() for e in news if e.ticker})
    opts = ForecasterOptions(source_name=source_name,
                             **{k: cfg.options[k] for k in _BUILDER_KEYS if k in cfg.options})
    profiles = read_profiles(profiles_path) if profiles_path else None
    fin_path = _path("financials", None)
    build = build_forecaster_examples(news, prices, opts, profiles=profiles,
                                      financials=read_financials(fin_path) if fin_path else None, tickers=wanted)
    if not build.examples:
        raise FintuneError(f"source '{cfg.name}' ({root}): no forecaster examples built (skipped: "
                           f"{build.report['skipped']})", "check tickers, dates and options.start/end")
    build.report["price_issues"] = {k: len(v) for k, v in prices.attrs.get("issues", {}).items()}
    teacher = option(cfg, "teacher")
    if teacher:
        build.report["teacher"] = add_teacher_answers(build.examples, TeacherConfig.from_options(teacher))
    return build


def load_forecaster_source(cfg: SourceConfig, task: str, labels: tuple[str, ...] | None) -> list[Example]:
    """Loader signature (``(cfg, task, labels) -> list[Example]``) around :func:`build_forecaster_source`."""
    return build_forecaster_source(cfg).examples
