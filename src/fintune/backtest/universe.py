"""Point-in-time universe membership: trade a name only on the days it was in the universe.

A membership file is a CSV with header ``ticker,from,to`` (ISO dates, inclusive; an empty ``to`` = still a member).
A ticker may have several rows (left and re-joined). A signal whose signal day falls outside every membership
interval of its ticker is dropped and counted (``signals_outside_universe``); without a file, every ticker with
prices is a member on every day, which for a hand-picked list like StockNet's 88 large caps is survivorship-biased.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from fintune.errors import FintuneError


def read_universe(path: str | Path) -> list[tuple[str, Any, Any]]:
    """``[(TICKER, from, to)]`` with pandas Timestamps (``to`` = None when open); one-line errors name row/field."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise FintuneError(f"{p}: universe file not found", "give a CSV with header ticker,from,to")
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            header = [c.strip().lower() for c in (rows[0].keys() if rows else [])]
    except UnicodeDecodeError as exc:
        raise FintuneError(f"{p}: not UTF-8 text (byte {exc.start})", "save the file as UTF-8 CSV") from None
    if not rows or header[:3] != ["ticker", "from", "to"]:
        raise FintuneError(f"{p}: expected a header ticker,from,to and at least one row")
    out = []
    for i, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row["ticker"]:
            raise FintuneError(f"{p} row {i}: field 'ticker' is empty")
        dates = []
        for f in ("from", "to"):
            if f == "to" and not row[f]:
                dates.append(None)
                continue
            try:
                dates.append(pd.Timestamp(row[f]))
            except (ValueError, TypeError):
                raise FintuneError(f"{p} row {i}: field '{f}' {row[f]!r} is not a date", "use YYYY-MM-DD") from None
        if dates[1] is not None and dates[1] < dates[0]:
            raise FintuneError(f"{p} row {i}: 'to' {row['to']} is before 'from' {row['from']}")
        out.append((row["ticker"].upper(), dates[0], dates[1]))
    return out


def membership_mask(members: list[tuple[str, Any, Any]], calendar: Any, tickers: list[str]) -> Any:
    """(bar x ticker) boolean DataFrame: True where the ticker is a member on that bar."""
    import numpy as np
    import pandas as pd

    mask = np.zeros((len(calendar), len(tickers)), dtype=bool)
    col = {t: j for j, t in enumerate(tickers)}
    days = calendar.to_numpy()
    for t, start, end in members:
        if t not in col:
            continue
        inside = days >= start.to_datetime64()
        if end is not None:
            inside &= days <= end.to_datetime64()
        mask[:, col[t]] |= inside
    return pd.DataFrame(mask, index=calendar, columns=tickers)


def apply_universe(scores: Any, mask: Any) -> tuple[Any, int]:
    """Scores with signals outside the universe set to NaN, and how many were dropped."""
    outside = scores.notna() & ~mask.reindex_like(scores).fillna(False).astype(bool)
    return scores.mask(outside), int(outside.to_numpy().sum())
