"""Any CSV / TSV, JSONL / JSON, parquet file or Hugging Face dataset, mapped to Examples by column names.

Recipe keys: ``text_column`` (default ``text``), ``label_column`` (default ``label``), ``id_column``,
``date_column``, ``ticker_column``, ``label_map`` (raw -> declared label); ``hf_config`` / ``hf_split`` for
``name: hf``; ``options``: ``sep``, ``encoding``, ``unlabelled`` (true: no label column expected).
Every other column is kept in ``extra``. Missing columns, empty text, NaN, unknown labels, bad dates and duplicate
ids are one-line errors naming the file and line/row and column.

Instruction rows (``instruction, input, output``, the Alpaca / FinGPT shape) load through ``name: alpaca``, or
through ``csv``/``jsonl``/``parquet`` when the rows have that shape and no ``text`` column is configured: the text is
``input`` (``instruction`` when ``input`` is empty), the label is the answer's ``SENTIMENT:`` line (or the whole
answer when it is a single label word), and a structured answer's ``CONFIDENCE`` (level or number, as written) and
``ANALYSIS`` go to ``extra`` so the structured format trains the same answer back. ``instruction`` and ``output``
stay in ``extra``. An answer without a label of the declared set is an error naming the row and field ``output``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fintune.data.registry import check_options, option, read_text, require_path
from fintune.errors import FintuneError
from fintune.labels import SENTIMENT, normalize_label
from fintune.prompts.parse import parse_label, parse_structured
from fintune.recipe import SourceConfig
from fintune.records import CSV_FIELD_LIMIT, Example, check_strings, iter_jsonl

Rows = Iterable[tuple[str, dict[str, Any]]]


@dataclass
class ColumnMap:
    """Which column holds what (``label=None``: unlabelled rows)."""

    text: str = "text"
    label: str | None = "label"
    id: str | None = None
    date: str | None = None
    ticker: str | None = None
    label_map: Mapping[str, str] | None = None


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        import pandas as pd

        return bool(value is pd.NaT or (not isinstance(value, (str, list, dict)) and pd.isna(value)))
    except (TypeError, ValueError, ImportError):
        return False


def _jsonable(value: Any) -> Any:
    if _is_missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def normalize_date(value: Any, where: str) -> str:
    """A date/timestamp value -> ``YYYY-MM-DD`` (or ``YYYY-MM-DDTHH:MM:SS`` when it has a time of day)."""
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        return value.isoformat()
    elif not isinstance(value, str):  # 20230105 would parse as a "basic format" ISO date: a guess
        raise FintuneError(f"{where}: date must be a string or a date, got {type(value).__name__} {value!r}",
                           "write it as \"YYYY-MM-DD\"")
    else:
        text = str(value).strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise FintuneError(f"{where}: date {value!r} is not ISO 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM:SS'",
                               "convert the column to ISO dates") from None
    if parsed.tzinfo is not None:
        from datetime import timezone

        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    if (parsed.hour, parsed.minute, parsed.second) == (0, 0, 0):
        return parsed.date().isoformat()
    return parsed.strftime("%Y-%m-%dT%H:%M:%S")


def _raw_label(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


def rows_to_examples(rows: Rows, columns: ColumnMap, labels: Sequence[str] | None, source: str, prefix: str,
                     file_label: str) -> list[Example]:
    """Map ``(where, row)`` pairs to Examples with strict checks (see module doc)."""
    examples: list[Example] = []
    seen: dict[str, str] = {}
    need = [c for c in (columns.text, columns.label, columns.id, columns.date, columns.ticker) if c]
    used = set(need)
    for n, (where, row) in enumerate(rows):
        missing = [c for c in need if c not in row]
        if missing:
            hint = f"columns present: {sorted(row)}"
            if columns.label in missing:
                hint += "; set label_column, or options.unlabelled: true for unlabelled data"
            # The first row names the file: a column missing everywhere is a header problem, not a row one.
            raise FintuneError(f"{file_label if n == 0 else where}: missing column(s) {missing}", hint)
        text = row[columns.text]
        if _is_missing(text):
            raise FintuneError(f"{where} column '{columns.text}': empty or missing text",
                               "remove the row or fill in the text")
        if not isinstance(text, str):  # a number / dict / list would become training text like "{'a': 1}"
            raise FintuneError(f"{where} column '{columns.text}': text must be a string, got "
                               f"{type(text).__name__} {str(text)[:40]!r}", "quote the text or fix the column")
        if not text.strip():
            raise FintuneError(f"{where} column '{columns.text}': empty or missing text",
                               "remove the row or fill in the text")
        check_strings(text, where, columns.text)
        label = None
        if columns.label:
            raw = row[columns.label]
            if labels is None:
                raise FintuneError(f"{file_label}: a label column is set but the task declares no labels",
                                   "declare data.labels or use options.unlabelled: true")
            label = normalize_label(None if _is_missing(raw) else _raw_label(raw), labels,
                                    f"{where} column '{columns.label}'", columns.label_map)
        if columns.id:
            raw_id = row[columns.id]
            if _is_missing(raw_id) or not str(_raw_label(raw_id)).strip():
                raise FintuneError(f"{where} column '{columns.id}': empty id")
            ex_id = str(_raw_label(raw_id)).strip()
        else:
            ex_id = f"{prefix}-{n:06d}"
        if ex_id in seen:
            raise FintuneError(f"{where} column '{columns.id}': duplicate id '{ex_id}' (first at {seen[ex_id]})",
                               "ids must be unique; drop id_column to number rows instead")
        seen[ex_id] = where
        ex_date = None
        if columns.date:
            if _is_missing(row[columns.date]) or not str(row[columns.date]).strip():
                raise FintuneError(f"{where} column '{columns.date}': missing date")
            ex_date = normalize_date(row[columns.date], f"{where} column '{columns.date}'")
        ticker = None
        if columns.ticker and not _is_missing(row[columns.ticker]):
            if not isinstance(row[columns.ticker], str):
                raise FintuneError(f"{where} column '{columns.ticker}': ticker must be a string, got "
                                   f"{type(row[columns.ticker]).__name__} {row[columns.ticker]!r}",
                                   "quote the symbol (e.g. \"AAPL\")")
            ticker = row[columns.ticker].strip().upper() or None
        extra = {k: _jsonable(v) for k, v in row.items() if k not in used}
        examples.append(Example(id=ex_id, text=str(text).strip(), label=label, date=ex_date, ticker=ticker,
                                source=source, extra=extra))
    return examples


def csv_rows(file: Path, sep: str | None = None, encoding: str = "utf-8") -> Iterator[tuple[str, dict[str, Any]]]:
    """``(file:line, row)`` for each CSV/TSV data row (``sep`` defaults to TAB for .tsv, else comma)."""
    sep = sep or ("\t" if file.suffix.lower() == ".tsv" else ",")
    reader = csv.reader(io.StringIO(read_text(file, encoding), newline=""), delimiter=sep)
    try:
        yield from _csv_records(file, reader, sep)
    except csv.Error as exc:
        raise FintuneError(f"{file}:{reader.line_num}: unreadable CSV ({exc})",
                           f"fields over {CSV_FIELD_LIMIT} bytes are refused; check quoting") from None


def _csv_records(file: Path, reader: Any, sep: str) -> Iterator[tuple[str, dict[str, Any]]]:
    header = next(reader, None)
    if not header:
        raise FintuneError(f"{file}: empty file", "the first line must be the header")
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise FintuneError(f"{file}:1: duplicate column name(s) {dupes}")
    for row in reader:
        if not row or not any(cell.strip() for cell in row):
            continue
        where = f"{file}:{reader.line_num}"
        if len(row) != len(header):
            raise FintuneError(f"{where}: {len(row)} fields, header has {len(header)}",
                               f"quote fields that contain the separator {sep!r}")
        # An empty CSV cell is a missing value (NaN), like pandas reads it.
        yield where, {h: (cell if cell.strip() else None) for h, cell in zip(header, row, strict=True)}


def jsonl_rows(file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(file:line, object)`` for JSONL, or ``(file: item i, object)`` for a ``.json`` array."""
    if file.suffix.lower() == ".json":
        try:
            data = json.loads(read_text(file))
        except json.JSONDecodeError as exc:
            raise FintuneError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(data, list):
            raise FintuneError(f"{file}: expected a JSON array of objects")
        check_strings(data, str(file))
        items: Iterable[tuple[Any, Any]] = ((f"{file}: item {i}", r) for i, r in enumerate(data))
    else:
        items = ((f"{file}:{lineno}", r) for lineno, r in iter_jsonl(file))
    for where, row in items:
        if not isinstance(row, dict):
            raise FintuneError(f"{where}: expected a JSON object")
        yield where, row


def parquet_rows(file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(file: row i, row)`` for a parquet file."""
    import pandas as pd

    try:
        frame = pd.read_parquet(file)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise FintuneError(f"{file}: cannot read parquet ({type(exc).__name__}: {str(exc)[:200]})") from None
    for i, row in enumerate(frame.to_dict("records")):
        yield f"{file}: row {i}", row


def hf_rows(dataset_id: str, config: str | None, split: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(hf:id[split] row i, row)`` from ``datasets.load_dataset`` (or ``load_from_disk`` for a saved folder)."""
    import datasets

    split = split or "train"
    try:
        if Path(dataset_id).is_dir() and (Path(dataset_id) / "dataset_info.json").exists():
            ds = datasets.load_from_disk(dataset_id)
            ds = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        else:
            ds = datasets.load_dataset(dataset_id, config, split=split)
    except Exception as exc:  # the Hub client raises many types; all mean "cannot load"
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FintuneError(f"hf dataset '{dataset_id}' ({config or 'default'}, split {split}): cannot load: "
                           f"{msg[:200]}", "check the id/config/split, or the network (HF_HUB_OFFLINE)") from None
    for i, row in enumerate(ds):
        yield f"hf:{dataset_id}[{split}] row {i}", row


INSTRUCTION_COLUMNS = ("instruction", "input", "output")


def _alpaca_label(output: Any, labels: Sequence[str], where: str) -> tuple[str, dict[str, Any]]:
    """``(raw label, extra)`` from an instruction row's answer: its SENTIMENT line, or a single label word."""
    text = "" if _is_missing(output) else str(output)
    accepted = tuple(dict.fromkeys([*labels, *SENTIMENT]))  # canonical names load into a declared vocabulary
    parsed = parse_structured(text, accepted)
    if parsed is not None:
        extra: dict[str, Any] = {}
        if parsed["confidence_level"] is not None:
            extra["confidence"] = parsed["confidence_level"]
        elif parsed["confidence"] is not None:
            extra["confidence"] = parsed["confidence"]
        if parsed["analysis"] is not None:
            extra["analysis"] = parsed["analysis"]
        return parsed["sentiment"], extra
    word = parse_label(text, accepted)
    if word is not None and len([ln for ln in text.splitlines() if ln.strip()]) == 1:
        return word, {}
    raise FintuneError(f"{where} field 'output': no 'SENTIMENT: <label>' line with a label of {list(labels)}",
                       "declare the answers' labels in data.labels (e.g. [bearish, neutral, bullish]); answers look "
                       "like 'SENTIMENT: BULLISH' + optional CONFIDENCE/ANALYSIS lines, or a single label word")


def instruction_rows(rows: Rows, labels: Sequence[str] | None, labelled: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """Instruction rows (``instruction, input, output``) as ``text`` / ``label`` rows (see the module doc)."""
    for where, row in rows:
        missing = [c for c in ("instruction", "output") if c not in row]
        if missing:
            raise FintuneError(f"{where}: missing field(s) {missing}",
                               f"instruction rows need {list(INSTRUCTION_COLUMNS)} (input may be empty)")
        text = row.get("input")
        if _is_missing(text) or not str(text).strip():
            text = row["instruction"]
        out = {k: v for k, v in row.items() if k not in ("input", "text", "label")}
        out["text"] = text
        if labelled:
            if labels is None:
                raise FintuneError(f"{where}: instruction rows carry labels but the task declares none",
                                   "use data.task: sentiment (or declare data.labels)")
            out["label"], extra = _alpaca_label(row["output"], labels, where)
            out.update(extra)
        yield where, out


def _peek(rows: Rows) -> tuple[dict[str, Any] | None, Rows]:
    import itertools

    it = iter(rows)
    first = next(it, None)
    if first is None:
        return None, iter(())
    return first[1], itertools.chain([first], it)


def load_tabular_source(cfg: SourceConfig, task: str, labels: tuple[str, ...] | None) -> list[Example]:
    """Registry entry for ``name: csv | jsonl | parquet | hf | alpaca``."""
    check_options(cfg, ["sep", "encoding", "unlabelled"])
    unlabelled = bool(option(cfg, "unlabelled", False)) or task in ("ner", "pretrain")
    columns = ColumnMap(text=cfg.text_column or "text",
                        label=None if unlabelled else (cfg.label_column or "label"),
                        id=cfg.id_column, date=cfg.date_column, ticker=cfg.ticker_column, label_map=cfg.label_map)
    if cfg.name == "alpaca":
        file = require_path(cfg, "instruction file (.jsonl/.json/.csv/.parquet)")
        suffix = file.suffix.lower()
        rows = (csv_rows(file, option(cfg, "sep"), option(cfg, "encoding", "utf-8")) if suffix in (".csv", ".tsv")
                else parquet_rows(file) if suffix == ".parquet" else jsonl_rows(file))
        return rows_to_examples(instruction_rows(rows, labels, columns.label is not None), columns, labels,
                                cfg.name, file.stem, str(file))
    if cfg.name == "hf":
        if not cfg.path:
            raise FintuneError("source 'hf': 'path' is required", "set it to a Hugging Face dataset id or folder")
        rows: Rows = hf_rows(cfg.path, cfg.hf_config, cfg.hf_split)
        label, prefix = f"hf:{cfg.path}", "hf-" + Path(cfg.path).name
    else:
        file = require_path(cfg, f"{cfg.name} file")
        if file.is_dir():
            raise FintuneError(f"{file}: is a directory (source '{cfg.name}')", "point 'path' to one file")
        if cfg.name == "csv":
            rows = csv_rows(file, option(cfg, "sep"), option(cfg, "encoding", "utf-8"))
        elif cfg.name == "jsonl":
            rows = jsonl_rows(file)
        else:
            rows = parquet_rows(file)
        label, prefix = str(file), file.stem
    first, rows = _peek(rows)
    if (first is not None and cfg.text_column is None and "text" not in first
            and all(c in first for c in ("instruction", "output"))):
        # the instruction/input/output shape, recognised: the answer's SENTIMENT line is the label
        rows = instruction_rows(rows, labels, columns.label is not None)
    return rows_to_examples(rows, columns, labels, cfg.name, prefix, label)
