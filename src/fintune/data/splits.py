"""Train / validation / test splits, deterministic for a seed.

Methods (``SplitConfig.method``):

* ``fingpt``: FinGPT's FPB split, reproduced exactly: the examples in FILE ORDER go through
  ``datasets.Dataset.train_test_split(test_size, seed)`` (FinGPT: ``Sentences_50Agree``, default 0.25, seed 42 ->
  3634 train / 1212 test, the same 1212 sentences, in the same order, as FinLoRA's ``fpb_test.jsonl``).
* ``stratified`` / ``random``: scikit-learn ``train_test_split`` (stratified on source + label for ``stratified``).
* ``chronological``: test = examples dated on/after ``cutoff_date``, or the last ``test_size`` fraction of the date
  range. No test example is dated before a train example.
* ``chronological_per_ticker``: the same inside each ticker's own date range.
* ``predefined``: ``SourceConfig.split`` of each source, else the split a loader tagged (``extra["split"]``).

With any other method, a source that has its own ``split`` key (say ``split: train`` for an extra training source in
a multi-task mix) goes to that split whole, and the method splits the remaining sources exactly as it would alone.

Examples sharing ``extra["group_id"]`` (one headline asked six questions, a headline with two target companies) are
kept on one side of every random split. ``val_size`` carves a validation set out of train, as a fraction of train.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from fintune.errors import FintuneError
from fintune.recipe import SplitConfig
from fintune.records import Example

SPLITS = ("train", "validation", "test")


def _groups(examples: Sequence[Example]) -> list[list[int]]:
    """Indices grouped by ``extra['group_id']`` (an example without one is its own group), first-seen order."""
    by_key: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        key = ex.extra.get("group_id") if isinstance(ex.extra, dict) else None
        by_key.setdefault(str(key) if key is not None else f"\0{i}", []).append(i)
    return list(by_key.values())


def random_split(examples: Sequence[Example], test_size: float, seed: int,
                 stratify: bool) -> tuple[list[Example], list[Example]]:
    """Split into (rest, held-out) with scikit-learn, by group; stratified on the first example of each group
    (source + label) if asked."""
    from sklearn.model_selection import train_test_split

    if test_size <= 0:
        return list(examples), []
    groups = _groups(examples)
    if len(groups) < 2:
        raise FintuneError(f"cannot split {len(examples)} example(s) into two parts", "load more data")
    strat = None
    if stratify:
        # Stratify on (source, label): one source's label balance, and in a multi-task mix each source's share,
        # are kept on both sides; unlabelled rows (NER, raw text) are stratified by source alone.
        strat = [f"{examples[g[0]].source}/{examples[g[0]].label}" for g in groups]
        counts = Counter(strat)
        rare = sorted(k for k, v in counts.items() if v < 2)
        if rare:
            raise FintuneError(f"split.method stratified: source/label class(es) {rare} have fewer than 2 "
                               "examples", "use split.method: random, or add examples")
    try:
        rest, held = train_test_split(list(range(len(groups))), test_size=test_size, random_state=seed,
                                      shuffle=True, stratify=strat)
    except ValueError as exc:
        raise FintuneError(f"split: {exc}", "adjust split.test_size / split.val_size or use method random") from None
    return ([examples[i] for g in rest for i in groups[g]], [examples[i] for g in held for i in groups[g]])


def fingpt_split(examples: Sequence[Example], test_size: float = 0.25,
                 seed: int = 42) -> tuple[list[Example], list[Example]]:
    """FinGPT's split: ``datasets.Dataset.train_test_split(test_size, seed)`` over the examples in given order."""
    import datasets

    if test_size <= 0:
        return list(examples), []
    index = datasets.Dataset.from_dict({"i": list(range(len(examples)))})
    parts = index.train_test_split(test_size=test_size, seed=seed)
    return [examples[i] for i in parts["train"]["i"]], [examples[i] for i in parts["test"]["i"]]


def parse_when(value: str, where: str) -> datetime:
    """An ISO date or timestamp as a naive datetime (one-line error naming ``where``)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        raise FintuneError(f"{where}: date {value!r} is not ISO 'YYYY-MM-DD[THH:MM:SS]'") from None
    return parsed.replace(tzinfo=None)


def _dated(examples: Sequence[Example], method: str) -> list[datetime]:
    whens = []
    for ex in examples:
        if not ex.date:
            raise FintuneError(f"split.method {method}: example '{ex.id}' (source {ex.source}) has no date",
                               "use a source with dates (date_column) or another split method")
        whens.append(parse_when(ex.date, f"example '{ex.id}'"))
    return whens


def _cutoff(whens: Sequence[datetime], test_size: float, cutoff_date: str | None) -> datetime:
    """The first instant that belongs to test: ``cutoff_date``, else the day at ``1 - test_size`` of the range."""
    if cutoff_date:
        return parse_when(cutoff_date, "split.cutoff_date")
    lo, hi = min(whens), max(whens)
    point = lo + (hi - lo) * (1.0 - test_size)
    # Cut on a day boundary so one day's news never straddles train and test.
    day = datetime.combine(point.date(), datetime.min.time())
    return day if day > lo else day + timedelta(days=1)


def chronological_split(examples: Sequence[Example], test_size: float, cutoff_date: str | None = None,
                        method: str = "chronological") -> tuple[list[Example], list[Example]]:
    """(before, on/after) the cutoff; both sides sorted by date (stable)."""
    if not examples:
        return [], []
    whens = _dated(examples, method)
    if test_size <= 0 and not cutoff_date:
        return list(examples), []
    cut = _cutoff(whens, test_size, cutoff_date)
    order = sorted(range(len(examples)), key=lambda i: whens[i])
    before = [examples[i] for i in order if whens[i] < cut]
    after = [examples[i] for i in order if whens[i] >= cut]
    return before, after


def chronological_per_ticker(examples: Sequence[Example], test_size: float,
                             cutoff_date: str | None = None) -> tuple[list[Example], list[Example]]:
    """Chronological split inside each ticker (examples without a ticker are an error)."""
    by_ticker: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        if not ex.ticker:
            raise FintuneError(f"split.method chronological_per_ticker: example '{ex.id}' has no ticker",
                               "use a source with tickers (ticker_column) or split.method chronological")
        by_ticker[ex.ticker].append(ex)
    before: list[Example] = []
    after: list[Example] = []
    for ticker in sorted(by_ticker):
        b, a = chronological_split(by_ticker[ticker], test_size, cutoff_date, "chronological_per_ticker")
        before += b
        after += a
    return before, after


def _split_name(split: str) -> str:
    return "validation" if split == "valid" else split


def _predefined(examples: Sequence[Example], split_of: dict[str, str | None]) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for ex in examples:
        split = split_of.get(ex.id) or (ex.extra.get("split") if isinstance(ex.extra, dict) else None)
        if split == "valid":
            split = "validation"
        if split not in SPLITS:
            raise FintuneError(f"split.method predefined: example '{ex.id}' (source {ex.source}) has no split",
                               "set data.sources[].split: train|validation|test for that source")
        out[str(split)].append(ex)
    return out


def split_examples(examples: Sequence[Example], cfg: SplitConfig,
                   split_of: dict[str, str | None] | None = None) -> dict[str, list[Example]]:
    """Split examples into ``{"train", "validation", "test"}`` following ``cfg`` (see module doc).

    Args:
        examples: all loaded examples, in load (file) order.
        cfg: the recipe's ``data.split``.
        split_of: example id -> split forced by its source's ``split`` key (predefined method).
    """
    method = cfg.method
    split_of = split_of or {}
    if method == "predefined":
        out = _predefined(examples, split_of)
    else:
        # sources with their own `split` key (a training-only source in a mix) go there whole; the method splits
        # the rest exactly as it would alone (fingpt: the same 1212 FPB test sentences with or without a mix)
        forced = [ex for ex in examples if split_of.get(ex.id)]
        if forced:
            rest_only = [ex for ex in examples if not split_of.get(ex.id)]
            if not rest_only:
                raise FintuneError(f"split.method {method}: every source has a `split` key, nothing left to split",
                                   "use split.method predefined")
            out = split_examples(rest_only, cfg)
            for ex in forced:
                out[_split_name(str(split_of[ex.id]))].append(ex)
            return out
        if method == "fingpt":
            rest, test = fingpt_split(examples, cfg.test_size, cfg.seed)
        elif method in ("stratified", "random"):
            rest, test = random_split(examples, cfg.test_size, cfg.seed, stratify=method == "stratified")
        elif method == "chronological":
            rest, test = chronological_split(examples, cfg.test_size, cfg.cutoff_date)
        elif method == "chronological_per_ticker":
            rest, test = chronological_per_ticker(examples, cfg.test_size, cfg.cutoff_date)
        else:  # pragma: no cover - the recipe schema forbids other values
            raise FintuneError(f"split.method {method!r} is not supported")
        out = {"train": rest, "validation": [], "test": test}
    if cfg.val_size > 0 and not out["validation"]:
        out["train"], out["validation"] = carve_validation(out["train"], cfg)
    if not out["train"]:
        raise FintuneError(f"split.method {method}: the train split is empty",
                           "lower split.test_size / split.val_size or move split.cutoff_date later")
    return out


def carve_validation(train: Sequence[Example], cfg: SplitConfig) -> tuple[list[Example], list[Example]]:
    """Take ``cfg.val_size`` of train as validation: the latest part for chronological methods, else random
    (stratified for ``stratified``)."""
    if cfg.method == "chronological":
        return chronological_split(train, cfg.val_size)
    if cfg.method == "chronological_per_ticker":
        return chronological_per_ticker(train, cfg.val_size)
    return random_split(train, cfg.val_size, cfg.seed, stratify=cfg.method == "stratified")


def date_bounds(examples: Sequence[Example]) -> tuple[str | None, str | None]:
    """(earliest, latest) ``date`` among examples that have one."""
    dates = sorted(ex.date for ex in examples if ex.date)
    return (dates[0], dates[-1]) if dates else (None, None)
