"""StockNet (Xu & Cohen, ACL 2018) tweets: one unlabelled Example per tweet, keyed by ticker and day.

Prices are not loaded here (``fintune.prices.load_prices`` reads ``price_raw/``). The tweets file is the lossless
concatenation ``tweets_preprocessed.jsonl.gz``: ``{"symbol", "date", "text": [tokens], "created_at", "user_id_str"}``.
``date`` is the authors' day bucket (used for alignment); ``created_at`` is converted to ISO UTC.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

from fintune.data.registry import check_options, option, require_path
from fintune.errors import FintuneError
from fintune.recipe import SourceConfig
from fintune.records import Example

TWEETS_FILE = "tweets_preprocessed.jsonl.gz"


_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                        "Nov", "Dec"), start=1)}


def _iso_created_at(raw: object, where: str) -> str:
    """Twitter's ``Wed Jan 01 03:59:03 +0000 2014`` -> ``2014-01-01T03:59:03`` (UTC).

    Parsed by hand for the common ``+0000`` case (``strptime`` is the bottleneck on 106k tweets); any other offset
    goes through ``strptime`` and is converted to UTC.
    """
    parts = raw.split() if isinstance(raw, str) else []
    if len(parts) == 6 and parts[4] == "+0000" and parts[1] in _MONTHS and len(parts[3]) == 8 \
            and parts[2].isdigit() and parts[5].isdigit():
        return f"{parts[5]}-{_MONTHS[parts[1]]:02d}-{int(parts[2]):02d}T{parts[3]}"
    try:
        parsed = datetime.strptime(str(raw), "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        raise FintuneError(f"{where}: field 'created_at' {raw!r} is not Twitter's 'Wed Jan 01 03:59:03 +0000 2014'"
                           " format") from None
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def load_stocknet_tweets(root: str | Path, tickers: list[str] | None = None) -> list[Example]:
    """Load StockNet tweets.

    Args:
        root: the StockNet folder (holding ``tweets_preprocessed.jsonl.gz``) or that file.
        tickers: keep only these symbols (case-insensitive); None keeps all.

    Returns:
        Examples with ``text`` = tokens joined by spaces, ``date`` = ``YYYY-MM-DD``, ``ticker`` upper-case and
        ``extra = {"created_at": ISO UTC, "user_id": str}``, in file order (symbol, day, original order).
    """
    root = Path(root)
    file = root / TWEETS_FILE if root.is_dir() else root
    if not file.is_file():
        raise FintuneError(f"{file}: file not found", "point 'path' to the StockNet folder")
    wanted = {t.upper() for t in tickers} if tickers else None
    examples = []
    per_day: dict[tuple[str, str], int] = {}
    opener = gzip.open if file.suffix == ".gz" else open
    try:
        with opener(file, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{file}:{lineno}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise FintuneError(f"{where}: invalid JSON ({exc.msg})") from None
                if row.get("symbol") is not None and not isinstance(row["symbol"], str):
                    raise FintuneError(f"{where}: field 'symbol' must be a string, got {row['symbol']!r}")
                symbol = (row.get("symbol") or "").strip().upper()
                if not symbol:
                    raise FintuneError(f"{where}: missing field 'symbol'")
                if wanted is not None and symbol not in wanted:
                    continue
                tokens, day = row.get("text"), row.get("date")
                if not isinstance(tokens, list) or not tokens:
                    raise FintuneError(f"{where}: field 'text' must be a non-empty list of tokens")
                if not isinstance(day, str) or len(day) != 10:
                    raise FintuneError(f"{where}: field 'date' must be 'YYYY-MM-DD', got {day!r}")
                n = per_day.get((symbol, day), 0)
                per_day[(symbol, day)] = n + 1
                examples.append(Example(
                    id=f"stocknet-{symbol}-{day}-{n:04d}", text=" ".join(map(str, tokens)), date=day,
                    ticker=symbol, source="stocknet",
                    extra={"created_at": _iso_created_at(row.get("created_at"), where),
                           "user_id": str(row.get("user_id_str", ""))}))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise FintuneError(f"{file}: cannot read ({type(exc).__name__}: {exc})",
                           "expected a gzip (.gz) or plain UTF-8 JSONL file") from None
    if wanted:
        missing = sorted(wanted - {s for s, _ in per_day})
        if missing:
            raise FintuneError(f"{file}: no tweets for ticker(s) {missing}", "check the symbols (Yahoo style)")
    return examples


def load_stocknet_source(cfg: SourceConfig, task: str, labels: tuple[str, ...] | None) -> list[Example]:
    """Registry entry: ``name: stocknet`` (option ``tickers``: list of symbols). Tweets carry no label."""
    check_options(cfg, ["tickers"])
    tickers = option(cfg, "tickers")
    if tickers is not None and (not isinstance(tickers, list) or not all(isinstance(t, str) for t in tickers)):
        raise FintuneError("source 'stocknet': options.tickers must be a list of symbols, e.g. [AAPL, MSFT]")
    return load_stocknet_tweets(require_path(cfg, "StockNet folder"), tickers)
