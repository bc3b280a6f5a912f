"""Naive weekly forecasts for the prepared forecaster test split, as `fintune backtest` predictions (JSONL).

The baselines of the StockNet forecaster result in README, traded exactly like the model's predictions:

    python benchmarks/forecaster_baselines.py --data runs/stocknet-forecaster-cpu/data --out runs/fc-baselines

writes ``momentum.jsonl`` (up when the prompt's last shown week rose, else down: the move the model also sees) and
``always_up.jsonl``. Each row keeps the example's ticker, date (the predicted week's first day) and
``extra.asof`` (the close the prompt's information ends at), so the backtest places them the same way.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

MOVE = re.compile(r"stock price (increased|decreased) from ([0-9]+(?:\.[0-9]+)?) to ([0-9]+(?:\.[0-9]+)?)")


def main() -> None:
    """Parse arguments and write the two JSONL files."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="prepared forecaster directory (fintune data)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", required=True, help="output directory")
    a = ap.parse_args()
    rows = pd.read_parquet(Path(a.data) / f"{a.split}.parquet")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {"rows": len(rows), "momentum_up": 0, "momentum_down": 0}
    with open(out / "momentum.jsonl", "w", encoding="utf-8") as mom, \
            open(out / "always_up.jsonl", "w", encoding="utf-8") as up:
        for row in rows.itertuples():
            extra = row.extra if isinstance(row.extra, dict) else json.loads(row.extra)
            moves = MOVE.findall(row.text)
            if not moves:
                raise SystemExit(f"{row.id}: no weekly price move in the prompt")
            rose = float(moves[-1][2]) >= float(moves[-1][1])  # the last block is the week before the predicted one
            counts["momentum_up" if rose else "momentum_down"] += 1
            base = {"id": row.id, "ticker": row.ticker, "date": row.date, "gold": row.label,
                    "extra": {"asof": extra["items_latest_date"]}}
            mom.write(json.dumps({**base, "label": "U1" if rose else "D1"}) + "\n")
            up.write(json.dumps({**base, "label": "U1"}) + "\n")
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
