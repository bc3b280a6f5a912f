"""Source registry: ``SourceConfig.name`` -> loader, plus the file helpers every loader shares.

Loaders are looked up lazily (``"module:function"`` strings) so that importing this module stays cheap and a loader
owned by another part of the package (``synth``, ``fingpt_forecaster``) is imported only when a recipe names it.
Every loader has the signature ``(cfg: SourceConfig, task: str, labels: tuple[str, ...] | None) -> list[Example]``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fintune.errors import FintuneError
from fintune.labels import labels_for_task
from fintune.recipe import SourceConfig
from fintune.records import Example, check_strings

Loader = Callable[[SourceConfig, str, "tuple[str, ...] | None"], list[Example]]

LOADERS: dict[str, str] = {
    "phrasebank": "fintune.data.phrasebank:load_phrasebank_source",
    "fiqa": "fintune.data.fiqa:load_fiqa_source",
    "tfns": "fintune.data.tfns:load_tfns_source",
    "gold": "fintune.data.gold:load_gold_source",
    "semeval": "fintune.data.semeval:load_semeval_source",
    "finner": "fintune.data.finner:load_finner_source",
    "stocknet": "fintune.data.stocknet:load_stocknet_source",
    "csv": "fintune.data.tabular:load_tabular_source",
    "jsonl": "fintune.data.tabular:load_tabular_source",
    "parquet": "fintune.data.tabular:load_tabular_source",
    "hf": "fintune.data.tabular:load_tabular_source",
    "alpaca": "fintune.data.tabular:load_tabular_source",
    "text": "fintune.data.text:load_text_source",
    "financebench": "fintune.data.text:load_financebench_source",
    "prepared": "fintune.data.prepare:load_prepared_source",
    "synth": "fintune.data.synth:load_synth_source",
    "fingpt_forecaster": "fintune.data.fingpt:load_fingpt_source",
}
"""Source name -> ``"module:function"`` of its loader."""


def get_loader(name: str) -> Loader:
    """Import and return the loader registered for ``name``; unknown or missing ones are one-line errors."""
    target = LOADERS.get(name)
    if target is None:
        raise FintuneError(f"data source '{name}': no loader registered", f"known sources: {sorted(LOADERS)}")
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise FintuneError(f"data source '{name}': loader module {module_name} is not available in this "
                               "install") from None
        raise
    return getattr(module, func_name)


def load_source(cfg: SourceConfig, task: str, labels: tuple[str, ...] | None) -> list[Example]:
    """Load one configured source as Examples, checked and trimmed to ``cfg.limit``.

    Args:
        cfg: the source block of a recipe (``name`` picks the loader).
        task: the recipe's ``data.task``; ``pretrain`` keeps text only (labels become None).
        labels: the declared label set; None means the task's default.

    Raises:
        FintuneError: bad input (missing file, unknown label, empty text, duplicate id, ...), one line.
    """
    labels = labels_for_task(task, labels)
    examples = get_loader(cfg.name)(cfg, task, labels)
    if cfg.limit is not None:
        examples = examples[: cfg.limit]
    where = f"source '{cfg.name}'" + (f" ({cfg.path})" if cfg.path else "")
    if not examples:
        raise FintuneError(f"{where}: no examples loaded", "check the path, tickers and options of this source")
    seen: dict[str, int] = {}
    for i, ex in enumerate(examples):
        if not ex.text or not ex.text.strip():
            raise FintuneError(f"{where}: example '{ex.id}' has empty text")
        if ex.id in seen:
            raise FintuneError(f"{where}: duplicate id '{ex.id}' (examples {seen[ex.id]} and {i})")
        seen[ex.id] = i
        if task == "pretrain":
            ex.label = None
    return examples


# ---------------------------------------------------------------- helpers shared by the loaders


def require_path(cfg: SourceConfig, what: str = "file or directory") -> Path:
    """``cfg.path`` as an existing Path, or a one-line error saying what to give."""
    if not cfg.path:
        raise FintuneError(f"source '{cfg.name}': 'path' is required", f"set data.sources[].path to the {what}")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise FintuneError(f"{path}: file not found (source '{cfg.name}')", f"point 'path' to the {what}")
    return path


def find_file(directory: Path, names: Sequence[str], source: str) -> Path:
    """The first of ``names`` that exists in ``directory`` (a one-line error listing them if none does)."""
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise FintuneError(f"{directory}: none of {list(names)} found (source '{source}')",
                       "point 'path' to the dataset folder or directly to the file")


def read_text(path: Path, encoding: str = "utf-8", legacy: str | None = None) -> str:
    """Read a whole text file strictly; a decoding error names the line and byte and suggests the fix.

    ``encoding="auto"``: strict UTF-8 first (a BOM is dropped), then ``legacy`` (the encoding a dataset's
    documentation declares, e.g. latin-1 for PhraseBank) -- a UTF-8 copy of a latin-1 dataset is never turned into
    mojibake, and a file that is neither is an error, never a guess. Any other value is used as given, strictly.
    """
    if path.is_dir():
        raise FintuneError(f"{path}: is a directory, not a text file")
    if not path.is_file():
        raise FintuneError(f"{path}: file not found")
    data = path.read_bytes()
    tries = ["utf-8-sig", *([legacy] if legacy else [])] if encoding == "auto" else [encoding]
    for k, enc in enumerate(tries):
        try:
            return data.decode(enc)
        except UnicodeDecodeError as exc:
            if k < len(tries) - 1:
                continue
            line = data[: exc.start].count(b"\n") + 1
            shown = "utf-8" if enc == "utf-8-sig" else enc
            raise FintuneError(f"{path}:{line}: not valid {shown} text (byte {exc.start}: "
                               f"{data[exc.start:exc.start + 1]!r})",
                               "re-save the file as UTF-8 or set options.encoding to its encoding") from None
        except LookupError:
            raise FintuneError(f"{path}: unknown encoding {enc!r}", "use e.g. utf-8, latin-1, cp1252") from None
    raise AssertionError("unreachable")


def require_text(value: Any, where: str, field: str) -> str:
    """A text field as a stripped string: a number, dict or list (which ``str()`` would turn into training text
    like ``"{'a': 1}"``), an empty string or a lone surrogate is an error naming ``where`` and ``field``."""
    if not isinstance(value, str):
        raise FintuneError(f"{where}: field '{field}' must be a string, got {type(value).__name__} "
                           f"{str(value)[:40]!r}", "quote the text or fix the field")
    check_strings(value, where, field)
    if not value.strip():
        raise FintuneError(f"{where}: field '{field}' is empty", "remove the row or fill in the text")
    return value.strip()


def option(cfg: SourceConfig, key: str, default: Any = None) -> Any:
    """A loader-specific option from ``cfg.options``."""
    return cfg.options.get(key, default)


def check_options(cfg: SourceConfig, allowed: Sequence[str]) -> None:
    """Reject unknown keys in ``cfg.options`` (a typo would otherwise be ignored)."""
    unknown = sorted(set(cfg.options) - set(allowed))
    if unknown:
        raise FintuneError(f"source '{cfg.name}': unknown option(s) {unknown}",
                           f"allowed options: {sorted(allowed)}")


def score_to_label(score: float, positive_threshold: float, negative_threshold: float) -> str:
    """Discretise a sentiment score: ``> positive_threshold`` positive, ``< negative_threshold`` negative, else
    neutral (FinGPT/FLARE use +-0.1)."""
    if score > positive_threshold:
        return "positive"
    if score < negative_threshold:
        return "negative"
    return "neutral"


def thresholds(cfg: SourceConfig) -> tuple[float, float]:
    """``(positive_threshold, negative_threshold)`` with FinGPT's +-0.1 default, validated."""
    pos = 0.1 if cfg.positive_threshold is None else cfg.positive_threshold
    neg = -0.1 if cfg.negative_threshold is None else cfg.negative_threshold
    if neg > pos:
        raise FintuneError(f"source '{cfg.name}': negative_threshold {neg} is above positive_threshold {pos}",
                           "use negative_threshold <= positive_threshold")
    return pos, neg


def parse_score(raw: Any, where: str) -> float:
    """A finite float from a raw score (string or number), else a one-line error naming ``where``."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise FintuneError(f"{where}: sentiment score {raw!r} is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise FintuneError(f"{where}: sentiment score is {value}", "give a finite number in [-1, 1]")
    return value
