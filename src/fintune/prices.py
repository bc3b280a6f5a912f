"""Daily prices for backtests: load, validate and reshape into aligned wide panels.

Sources:

* a directory of per-ticker CSVs in the StockNet / Yahoo layout (``<TICKER>.csv`` with header
  ``Date,Open,High,Low,Close,Adj Close,Volume``);
* a parquet (or CSV) file already in the long format below;
* ``yfinance:`` (``fetch_yfinance``) when online, cached on disk.

The long format is one row per (date, ticker) with columns ``date`` (datetime64), ``ticker`` (upper case),
``open, high, low, close, adj_close, volume``, sorted by ticker then date.

Adjustment convention: close-to-close returns use ``adj_close`` (dividends and splits folded in). Next-open fills
need an adjusted open on the same scale, derived as ``adj_open = open * adj_close / close``. A split therefore shows
as a jump in raw ``close`` but not in ``adj_close``; a daily ``adj_close`` move beyond
:data:`SUSPICIOUS_JUMP` is still flagged in the report (an unadjusted split or a data error), never silently traded.

Bad input: an unsorted or duplicated date, a non-positive or non-finite price (``inf``, ``-inf``), a negative or
infinite volume, a partly missing row, an empty or unreadable file, a number where a ticker or date string is
expected raises a one-line :class:`~fintune.errors.FintuneError` naming file, row and field: a bad price is never
used (one ``inf`` close would wipe out or inflate a portfolio and write a non-JSON ``Infinity``). A row whose price fields are *all* missing
(Yahoo's ``null`` rows, e.g. ``PTR.csv`` 2016-06-29) is a missing bar: it is dropped and counted in
``df.attrs["issues"]`` so the backtest can report it; no price or return is invented for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fintune.artifacts import atomic_write_text
from fintune.errors import FintuneError

PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close", "volume")
_CSV_COLUMNS = {"Date": "date", "Open": "open", "High": "high", "Low": "low", "Close": "close",
                "Adj Close": "adj_close", "Volume": "volume"}
_PRICE_FIELDS = ("open", "high", "low", "close", "adj_close")
SUSPICIOUS_JUMP = 0.5
"""|daily adj_close return| above this is reported as a suspicious jump (unadjusted split or bad tick)."""


def _new_issues() -> dict[str, Any]:
    return {"missing_bars_dropped": [], "suspicious_jumps": []}


def _shown(value: Any) -> str:
    """``repr`` and Python type of a cell (numpy scalars as plain Python values), for error messages."""
    value = value.item() if hasattr(value, "item") else value
    return f"{value!r} ({type(value).__name__})"


def _validate_frame(df: Any, where: str, issues: dict[str, Any], row_offset: int = 2, file_rows: Any = None) -> Any:
    """Validate one ticker's (or a whole long) frame in place order; returns the cleaned frame.

    Rows are reported as ``i + row_offset``, or ``file_rows[i]`` when given (a long file's rows for one ticker)."""
    import numpy as np
    import pandas as pd

    rows = np.asarray(file_rows) if file_rows is not None else np.arange(len(df)) + row_offset

    missing = [c for c in ("date", *_PRICE_FIELDS) if c not in df.columns]
    if missing:
        raise FintuneError(f"{where}: missing column(s) {missing}",
                           "expected Date,Open,High,Low,Close,Adj Close,Volume (or the long format)")
    if "volume" not in df.columns:
        df["volume"] = np.nan
    df = df.reset_index(drop=True)
    prices = df[list(_PRICE_FIELDS)].apply(pd.to_numeric, errors="coerce")
    all_missing = prices.isna().all(axis=1)
    for i in np.flatnonzero(all_missing.to_numpy()):
        issues["missing_bars_dropped"].append(f"{where} row {rows[i]} ({df['date'].iloc[i]})")
    some_missing = prices.isna().any(axis=1) & ~all_missing
    if some_missing.any():
        i = int(np.flatnonzero(some_missing.to_numpy())[0])
        field = next(c for c in _PRICE_FIELDS if pd.isna(prices[c].iloc[i]))
        raise FintuneError(f"{where} row {rows[i]}: field '{field}' is missing or not a number",
                           "fix or delete the row (a row with every price missing is skipped as a missing bar)")
    nonfinite = prices.isin([np.inf, -np.inf]).any(axis=1)
    if nonfinite.any():
        i = int(np.flatnonzero(nonfinite.to_numpy())[0])
        field = next(c for c in _PRICE_FIELDS if np.isinf(prices[c].iloc[i]))
        raise FintuneError(f"{where} row {rows[i]}: field '{field}' is {prices[field].iloc[i]} (not a finite "
                           "number)", "prices must be finite and > 0; fix or delete the row")
    nonpos = (prices <= 0).any(axis=1)
    if nonpos.any():
        i = int(np.flatnonzero(nonpos.to_numpy())[0])
        field = next(c for c in _PRICE_FIELDS if prices[c].iloc[i] <= 0)
        raise FintuneError(f"{where} row {rows[i]}: field '{field}' is {prices[field].iloc[i]} (not positive)",
                           "prices must be > 0; fix or delete the row")
    keep = ~all_missing.to_numpy()
    raw_dates = df["date"]
    if not pd.api.types.is_datetime64_any_dtype(raw_dates):
        not_text = np.flatnonzero(raw_dates.map(lambda v: not isinstance(v, str) and not pd.isna(v)).to_numpy())
        if not_text.size:
            i = int(not_text[0])
            raise FintuneError(f"{where} row {rows[i]}: field 'date' is {_shown(raw_dates.iloc[i])}, "
                               "not a date string",
                               "store dates as ISO YYYY-MM-DD strings or a datetime column")
    out = pd.DataFrame({"date": pd.to_datetime(raw_dates, errors="coerce", format="ISO8601")})
    bad_date = out["date"].isna()
    if bad_date.any():
        i = int(np.flatnonzero(bad_date.to_numpy())[0])
        raise FintuneError(f"{where} row {rows[i]}: field 'date' {df['date'].iloc[i]!r} is not a date",
                           "use ISO YYYY-MM-DD")
    for c in _PRICE_FIELDS:
        out[c] = prices[c].astype("float64")
    out["volume"] = pd.to_numeric(df["volume"], errors="coerce").astype("float64")
    bad_vol = (np.isinf(out["volume"]) | (out["volume"] < 0)).to_numpy() & keep
    if bad_vol.any():
        i = int(np.flatnonzero(bad_vol)[0])
        raise FintuneError(f"{where} row {rows[i]}: field 'volume' is {out['volume'].iloc[i]} (must be a "
                           "finite number >= 0, or empty when unknown)", "fix or delete the row")
    out["_row"] = rows
    return out[keep]


def _check_order(df: Any, where: str) -> None:
    """Dates must be strictly increasing within each ticker (reports the first offending row)."""
    import numpy as np

    dates = df["date"].to_numpy()
    if len(dates) < 2:
        return
    step = dates[1:] - dates[:-1]
    dup = np.flatnonzero(step == np.timedelta64(0))
    back = np.flatnonzero(step < np.timedelta64(0))
    if dup.size:
        i = dup[0] + 1
        raise FintuneError(f"{where} row {df['_row'].iloc[i]}: duplicate date {str(dates[i])[:10]} "
                           f"(also row {df['_row'].iloc[i - 1]})", "keep one row per date")
    if back.size:
        i = back[0] + 1
        raise FintuneError(f"{where} row {df['_row'].iloc[i]}: date {str(dates[i])[:10]} comes before the previous "
                           f"row's {str(dates[i - 1])[:10]} (dates must be sorted ascending)", "sort the file by date")


def _flag_jumps(df: Any, ticker: str, issues: dict[str, Any]) -> None:
    ret = df["adj_close"].pct_change().abs()
    for idx in ret.index[ret > SUSPICIOUS_JUMP]:
        issues["suspicious_jumps"].append(
            {"ticker": ticker, "date": str(df.loc[idx, "date"])[:10], "adj_return": float(ret.loc[idx])})


def _read_csv_dir(root: Path, tickers: list[str] | None, issues: dict[str, Any]) -> list[Any]:

    files = {p.stem.upper(): p for p in sorted(root.glob("*.csv"))}
    if not files:
        raise FintuneError(f"{root}: no <TICKER>.csv files", "point --prices at a directory of per-ticker CSVs")
    wanted = sorted(files) if tickers is None else tickers
    frames = []
    for t in wanted:
        if t not in files:
            raise FintuneError(f"{root}: no prices for ticker '{t}' (no {t}.csv)",
                               f"available: {', '.join(sorted(files)[:10])}...")
        raw = _read_table(files[t], dtype=str, keep_default_na=True, na_values=["null", "NaN", ""])
        raw = raw.rename(columns=_CSV_COLUMNS)
        df = _validate_frame(raw, str(files[t]), issues)
        _check_order(df, str(files[t]))
        if df.empty:
            raise FintuneError(f"{files[t]}: no price rows for ticker '{t}'")
        df.insert(1, "ticker", t)
        _flag_jumps(df, t, issues)
        frames.append(df)
    return frames


def _read_table(path: Path, **csv_kwargs: Any) -> Any:
    """Read a CSV or parquet file; an empty, unreadable or wrongly-typed file is a one-line error naming it."""
    import pandas as pd

    if path.stat().st_size == 0:
        raise FintuneError(f"{path}: empty file", "give a price file with a header and rows")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, **csv_kwargs)
    except pd.errors.EmptyDataError:
        raise FintuneError(f"{path}: empty file (no header)", "give a price file with a header and rows") from None
    except UnicodeDecodeError as exc:
        raise FintuneError(f"{path}: not UTF-8 text (byte {exc.start})", "save the prices as UTF-8 CSV") from None
    except pd.errors.ParserError as exc:
        raise FintuneError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    except (OSError, ValueError) as exc:  # pyarrow: not a parquet file, bad magic bytes, truncated footer
        kind = "parquet" if path.suffix.lower() == ".parquet" else "CSV"
        raise FintuneError(f"{path}: not a readable {kind} file ({str(exc).splitlines()[0][:120]})",
                           "check the file type (a .parquet must be Apache Parquet)") from None


def _read_long_file(path: Path, tickers: list[str] | None, issues: dict[str, Any]) -> list[Any]:
    import numpy as np

    df = _read_table(path, dtype={"ticker": str, "date": str, "Date": str})
    df = df.rename(columns={k: v for k, v in _CSV_COLUMNS.items() if k in df.columns})
    if "ticker" not in df.columns:
        raise FintuneError(f"{path}: missing column 'ticker'", "the long format needs date,ticker,open,...,adj_close")
    if df.empty:
        raise FintuneError(f"{path}: no price rows", "give a price file with a header and rows")
    # rows as reported: a parquet's 0-based row index, a CSV's line number (header = line 1)
    file_row = np.arange(len(df)) + (0 if path.suffix.lower() == ".parquet" else 2)
    bad_ticker = df["ticker"].map(lambda v: not (isinstance(v, str) and v.strip())).to_numpy()
    if bad_ticker.any():
        i = int(np.flatnonzero(bad_ticker)[0])
        raise FintuneError(f"{path} row {file_row[i]}: field 'ticker' is {_shown(df['ticker'].iloc[i])}, not a ticker string",
                           "store tickers as non-empty strings")
    df["ticker"] = df["ticker"].str.strip().str.upper()
    df["_file_row"] = file_row
    frames = []
    present = set(df["ticker"])
    for t in (sorted(present) if tickers is None else tickers):
        if t not in present:
            raise FintuneError(f"{path}: no prices for ticker '{t}'", "add its rows or drop it from --tickers")
        sub = df[df["ticker"] == t]
        clean = _validate_frame(sub.drop(columns=["ticker", "_file_row"]), f"{path} [{t}]", issues,
                                file_rows=sub["_file_row"].to_numpy())
        _check_order(clean, str(path))
        clean.insert(1, "ticker", t)
        _flag_jumps(clean, t, issues)
        frames.append(clean)
    return frames


def load_prices(src: str | Path, tickers: list[str] | None = None) -> Any:
    """Load and validate daily prices into the long format (see the module docstring).

    Args:
        src: a directory of ``<TICKER>.csv`` files, a ``.parquet``/``.csv`` long-format file, or
            ``yfinance:CACHE_DIR`` (then ``tickers`` is required; see :func:`fetch_yfinance`).
        tickers: restrict to these tickers (upper-cased); a ticker without prices is an error.

    Returns:
        ``pandas.DataFrame`` sorted by (ticker, date) with ``attrs["issues"]`` =
        ``{"missing_bars_dropped": [...], "suspicious_jumps": [...]}`` and ``attrs["source"]``.
    """
    import pandas as pd

    wanted = [t.strip().upper() for t in tickers] if tickers else None
    issues = _new_issues()
    src_str = str(src)
    if src_str.startswith("yfinance:"):
        if not wanted:
            raise FintuneError("--prices yfinance: needs --tickers", "name the tickers to download")
        return fetch_yfinance(wanted, cache_dir=src_str.split(":", 1)[1] or ".fintune_cache/yfinance")
    path = Path(src)
    if not path.exists():
        raise FintuneError(f"{path}: prices not found", "give a directory of <TICKER>.csv files or a .parquet file")
    frames = _read_csv_dir(path, wanted, issues) if path.is_dir() else _read_long_file(path, wanted, issues)
    df = pd.concat(frames, ignore_index=True).drop(columns=["_row"])
    df = df[["date", "ticker", *PRICE_COLUMNS]]
    df.attrs["issues"] = issues
    df.attrs["source"] = str(path)
    return df


def fetch_yfinance(tickers: list[str], start: str | None = None, end: str | None = None,
                   cache_dir: str | Path = ".fintune_cache/yfinance") -> Any:
    """Download daily bars with yfinance (optional, online only), cached as one CSV per ticker.

    Recent yfinance versions default to ``auto_adjust=True`` and drop the ``Adj Close`` column (Open/High/Low/Close
    are then already adjusted). Either way the cached CSV holds raw ``Close`` *and* ``Adj Close``: we request
    ``auto_adjust=False``; if ``Adj Close`` is still absent the prices are taken as adjusted and
    ``Adj Close = Close`` (then ``adj_open == open``, consistent with the convention above).
    """
    import pandas as pd

    cache = Path(cache_dir)
    missing = [t for t in tickers if not (cache / f"{t}.csv").exists()]
    if missing:
        try:
            import yfinance as yf
        except ImportError:
            raise FintuneError(f"{cache}: no cached prices for {missing} and yfinance is not installed",
                               "pip install yfinance (online) or use a CSV directory / parquet") from None

        for t in missing:
            raw = yf.download(t, start=start, end=end, auto_adjust=False, progress=False, actions=False)
            if raw is None or len(raw) == 0:
                raise FintuneError(f"yfinance: no prices for ticker '{t}'", "check the symbol (Yahoo style, BRK-A)")
            if isinstance(raw.columns, pd.MultiIndex):  # one-ticker downloads still come as (field, ticker)
                raw.columns = raw.columns.get_level_values(0)
            raw = raw.reset_index()
            if "Adj Close" not in raw.columns:
                raw["Adj Close"] = raw["Close"]
            raw["Date"] = pd.to_datetime(raw["Date"]).dt.strftime("%Y-%m-%d")
            cols = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]
            atomic_write_text(cache / f"{t}.csv", raw[cols].to_csv(index=False))
    return load_prices(cache, tickers)


def price_issues_summary(prices: Any) -> dict[str, Any]:
    """Counts (and the first few cases) of the data issues found while loading, for metrics.json/report."""
    issues = prices.attrs.get("issues", _new_issues())
    return {
        "missing_bars_dropped": len(issues["missing_bars_dropped"]),
        "missing_bars_examples": issues["missing_bars_dropped"][:10],
        "suspicious_jumps": len(issues["suspicious_jumps"]),
        "suspicious_jump_examples": issues["suspicious_jumps"][:10],
    }


def price_panel(prices: Any) -> dict[str, Any]:
    """Wide (date x ticker) float panels on the union trading calendar.

    Returns ``{"adj_close", "adj_open", "available", "dollar_volume"}``: ``adj_open = open * adj_close / close``;
    ``available`` is True where the ticker has a real bar (False before listing, after delisting and on dropped
    missing bars); ``dollar_volume = close * volume`` (raw close and shares traded; NaN when volume is unknown).
    Missing cells are NaN, never forward-filled here.
    """
    df = prices.assign(adj_open=prices["open"] * prices["adj_close"] / prices["close"],
                       dollar_volume=prices["close"] * prices["volume"])
    adj_close = df.pivot(index="date", columns="ticker", values="adj_close").sort_index()
    adj_open = df.pivot(index="date", columns="ticker", values="adj_open").reindex_like(adj_close)
    dollar_volume = df.pivot(index="date", columns="ticker", values="dollar_volume").reindex_like(adj_close)
    return {"adj_close": adj_close, "adj_open": adj_open, "available": adj_close.notna(),
            "dollar_volume": dollar_volume}


def describe_prices(prices: Any) -> str:
    """One-line JSON summary (tickers, rows, date range) for logs."""
    return json.dumps({"tickers": int(prices["ticker"].nunique()), "rows": len(prices),
                       "start": str(prices["date"].min())[:10], "end": str(prices["date"].max())[:10]})
