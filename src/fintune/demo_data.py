"""Where ``fintune demo`` gets its text: ``--data`` if given, else a real open dataset from the Hub, else synthetic.

Order (the first that works):

1. ``data=DIR``: a folder laid out like ``../shared/data`` (Financial PhraseBank, TFNS, StockNet prices).
2. The Hugging Face Hub: Twitter Financial News Sentiment (``zeroshot/twitter-financial-news-sentiment``, MIT),
   through ``datasets.load_dataset`` (its cache counts: a copy fetched once keeps working offline).
3. The synthetic generator (``fintune synth``), with a banner saying the text is generated.

Whatever the text source, the backtest trades the synthetic market (prices in which news moves after it is tradable)
unless ``--data`` brings StockNet prices: real sentiment sets carry no tickers or dates to trade on.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

HUB_DATASET = "zeroshot/twitter-financial-news-sentiment"
HUB_LICENSE = "MIT"
HUB_LABEL_MAP = {"0": "negative", "1": "positive", "2": "neutral"}  # the dataset card: 0 Bearish, 1 Bullish, 2 Neutral
SYNTH_BANNER = ("NOTE: no --data folder and the Hugging Face Hub is not reachable, so this demo uses SYNTHETIC "
                "news (fictional companies, generated text) and a synthetic market. Numbers show the pipeline "
                "working, not how the model does on real news.")


@dataclass
class DemoData:
    """The demo's text source: ``kind`` is ``folder``, ``hub`` or ``synth``; ``sources`` are recipe sources."""

    kind: str
    sources: list[dict[str, Any]]
    split: dict[str, Any]
    description: str
    license: str
    banner: str | None = None
    notes: list[str] = field(default_factory=list)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A TCP connection to the Hub's host within ``timeout`` s (behind a proxy: assume yes and let the client try).

    Without it an offline machine waits ~30 s in the Hub client's retries before falling back."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def hub_source(limit: int) -> tuple[dict[str, Any] | None, str]:
    """A recipe source for TFNS from the Hub (``limit`` rows of its train split), or ``(None, why not)``.

    Tries ``datasets.load_dataset`` once; any failure (offline, no cache, Hub down) means "not reachable".
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("1", "true", "yes") and not _hub_reachable():
        return None, f"{HUB_DATASET}: huggingface.co not reachable (no network)"
    try:
        import datasets

        ds = datasets.load_dataset(HUB_DATASET, split="train")
        n_rows = len(ds)
    except Exception as exc:  # the Hub client raises many types; each means "not reachable from here"
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        return None, f"{HUB_DATASET}: {type(exc).__name__}: {msg}"
    if n_rows < 60:
        return None, f"{HUB_DATASET}: only {n_rows} rows"
    return {"name": "hf", "path": HUB_DATASET, "hf_split": "train", "label_map": dict(HUB_LABEL_MAP),
            "limit": min(limit, n_rows)}, f"{HUB_DATASET}: {n_rows} rows"


def choose_data(data: str | Path | None, n_examples: int, seed: int, synth_dir: Path | None,
                real_sources: Any = None) -> DemoData:
    """Pick the demo's text source in the order of the module docstring.

    Args:
        data: ``--data`` folder or ``None``.
        n_examples: rows to use.
        seed: split seed.
        synth_dir: the synthetic set already written (``fintune synth``), used when nothing real is available.
        real_sources: ``fn(folder) -> sources`` for ``--data`` (the demo's FPB/TFNS reader).
    """
    stratified = {"method": "stratified", "test_size": 0.3, "val_size": 0.25, "seed": seed}
    if data is not None:
        return DemoData("folder", real_sources(Path(data)), stratified, f"your data folder {data}",
                        "as stated in each source's PROVENANCE.md")
    source, why = hub_source(n_examples)
    if source is not None:
        return DemoData("hub", [source], stratified,
                        f"Twitter Financial News Sentiment from the Hugging Face Hub ({HUB_DATASET}, {why})",
                        HUB_LICENSE)
    if synth_dir is None:
        raise ValueError("synth_dir is required when neither --data nor the Hub is available")
    return DemoData("synth", [{"name": "synth", "path": str(synth_dir)}],
                    {"method": "chronological", "test_size": 0.3, "val_size": 0.25, "seed": seed},
                    "synthetic news from fintune's grammar (fictional companies)", "Apache-2.0 (generated)",
                    banner=SYNTH_BANNER, notes=[f"Hub not reachable: {why}"])
