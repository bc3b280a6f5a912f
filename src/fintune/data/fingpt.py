"""Import published FinGPT-Forecaster rows (``prompt, answer, period, label, symbol``) as forecaster Examples.

The published sets (e.g. ``FinGPT/fingpt-forecaster-dow30-202305-202405``) store each prompt already rendered for
Llama-2: ``[INST]<<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user}[/INST]`` (``fingpt/FinGPT_Forecaster/data.py``,
``gpt4_to_llama``: ``B_INST + B_SYS + system + E_SYS + prompt + E_INST``), ``label`` as a phrase (``up by 2-3%``,
``down by more than 5%``) and ``period`` as ``"YYYY-MM-DD to YYYY-MM-DD"``. Importing undoes the Llama-2 wrapping
into plain messages (system / user / assistant), so the same rows can be rendered with any supported chat template
(:func:`convert_fingpt_rows`, via ``fintune.prompts.templates.render_messages``) or prepared like any other source.

A row whose prompt is not Llama-2 wrapped, whose label is not a FinGPT bin phrase, or whose answer states a
different prediction than its label is an error naming the file and row (never dropped silently).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fintune.data.registry import check_options, option
from fintune.errors import FintuneError
from fintune.labels import FORECAST_BINS
from fintune.prompts.parse import bin_to_text, parse_forecast
from fintune.prompts.templates import render_messages
from fintune.records import Example, iter_jsonl

B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
COLUMNS = ("prompt", "answer", "period", "label", "symbol")


def split_llama2_prompt(prompt: str, where: str) -> tuple[str | None, str]:
    """``(system, user)`` from a Llama-2 ``[INST]<<SYS>>...<</SYS>>...[/INST]`` prompt (system may be absent).

    FinGPT's own wrapping (``B_SYS = "<<SYS>>\\n"``, ``E_SYS = "\\n<</SYS>>\\n\\n"``) is undone exactly, so the system
    prompt and the user text come back byte for byte; other spacing is accepted and trimmed.
    """
    text = prompt.strip()
    if text.startswith("<s>"):
        text = text[3:].lstrip()
    if not text.startswith(B_INST) or not text.endswith(E_INST):
        raise FintuneError(f"{where}: field 'prompt' is not a Llama-2 [INST] ... [/INST] prompt",
                           "published FinGPT-Forecaster rows start with '[INST]<<SYS>>' and end with '[/INST]'")
    body = text[len(B_INST): -len(E_INST)]
    if body.startswith(B_SYS) and E_SYS in body:  # FinGPT's exact wrapping
        end = body.index(E_SYS)
        return body[len(B_SYS): end], body[end + len(E_SYS):]
    body = body.lstrip(" ")
    if body.startswith(B_SYS.strip()):
        end = body.find(E_SYS.strip())
        if end < 0:
            raise FintuneError(f"{where}: field 'prompt' opens <<SYS>> without closing <</SYS>>")
        system = body[len(B_SYS.strip()): end].strip("\n")
        return system, body[end + len(E_SYS.strip()):].strip()
    return None, body.strip()


def label_to_bin(label: str, where: str) -> str:
    """A FinGPT label phrase (``up by 2-3%``, ``Down by more than 5%``, or a bin like ``U3``) to its bin."""
    key = " ".join(str(label).strip().rstrip(".").lower().split())
    by_text = {bin_to_text(b): b for b in FORECAST_BINS}
    by_bin = {b.lower(): b for b in FORECAST_BINS}
    found = by_text.get(key) or by_bin.get(key)
    if found is None:
        raise FintuneError(f"{where}: field 'label' {label!r} is not a FinGPT-Forecaster bin",
                           f"expected one of {sorted(by_text)}")
    return found


def _period(period: str, where: str) -> tuple[str, str]:
    parts = [p.strip() for p in str(period).split(" to ")]
    if len(parts) != 2 or not all(len(p) == 10 and p[4] == "-" and p[7] == "-" for p in parts):
        raise FintuneError(f"{where}: field 'period' {period!r} is not 'YYYY-MM-DD to YYYY-MM-DD'")
    return parts[0], parts[1]


def fingpt_row_to_example(row: Mapping[str, Any], where: str, source: str = "fingpt_forecaster") -> Example:
    """One published row as an Example (text = user prompt body, label = bin, extra = answer/system/period)."""
    missing = [c for c in COLUMNS if c not in row or row[c] is None or str(row[c]).strip() == ""]
    if missing:
        raise FintuneError(f"{where}: missing or empty field(s) {missing}", f"FinGPT rows need {list(COLUMNS)}")
    system, user = split_llama2_prompt(str(row["prompt"]), where)
    label = label_to_bin(str(row["label"]), where)
    start, end = _period(str(row["period"]), where)
    answer = str(row["answer"]).strip()
    parsed = parse_forecast(answer)
    if parsed is None:
        raise FintuneError(f"{where}: field 'answer' has no single valid 'Prediction:' line",
                           "FinGPT answers contain '[Prediction & Analysis]:\\nPrediction: Up by 2-3%'")
    if parsed["bin"] != label:
        raise FintuneError(f"{where}: field 'answer' predicts {parsed['bin']} but 'label' is {label}",
                           "the row is inconsistent; fix or remove it")
    symbol = str(row["symbol"]).strip().upper()
    extra = {"answer": answer, "system_prompt": system, "period": f"{start} to {end}", "week_start": start,
             "week_end": end, "provenance": {"answer": "fingpt-published (GPT-4, label-aware)"}}
    if row.get("_split") in ("train", "validation", "test"):
        extra["split"] = row["_split"]  # the published split, used by split.method: predefined
    return Example(id=f"fingpt-{symbol}-{start}", text=user, label=label, date=start, ticker=symbol, source=source,
                   extra=extra)


def _dataset_rows(ds: Any, where: str, split: str | None) -> list[dict[str, Any]]:
    """Rows of a Dataset, or of every split of a DatasetDict tagged ``_split`` (for ``split.method: predefined``)."""
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        if split is not None:
            if split not in ds:
                raise FintuneError(f"{where}: no split '{split}'", f"available: {sorted(ds)}")
            return [dict(r) for r in ds[split]]
        names = {"valid": "validation", "val": "validation", "dev": "validation"}
        return [{**dict(r), "_split": names.get(name, name)} for name in ds for r in ds[name]]
    return _tag_split_column([dict(r) for r in ds], where)


SPLIT_COLUMN = "split"
"""A column of an exported file that names each row's split (``train`` / ``validation`` / ``test``)."""


def _load_dataset_error(what: str, exc: Exception, hint: str, noun: str = "dataset") -> FintuneError:
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return FintuneError(f"{what}: cannot load the {noun} ({type(exc).__name__}: {first})", hint)


def _tag_split_column(rows: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """Rows of an export with a ``split`` column: each row tagged ``_split`` (``valid``/``val`` = validation)."""
    if not rows or SPLIT_COLUMN not in rows[0]:
        return rows
    aliases = {"train": "train", "test": "test", "validation": "validation", "valid": "validation",
               "val": "validation", "dev": "validation"}
    for i, row in enumerate(rows, start=1):
        value = row.pop(SPLIT_COLUMN, None)
        split = aliases.get(str(value).strip().lower()) if value is not None else None
        if split is None:
            raise FintuneError(f"{where} row {i}: field '{SPLIT_COLUMN}' {value!r} is not train/validation/test")
        row["_split"] = split
    return rows


def _read_file(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        if suffix == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise FintuneError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(data, list):
                raise FintuneError(f"{path}: expected a JSON list of rows")
            return data
        return [row for _, row in iter_jsonl(path)]
    import pandas as pd

    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
    if suffix == ".parquet":
        return pd.read_parquet(path).to_dict("records")
    raise FintuneError(f"{path}: unsupported file type '{suffix}'", "use .jsonl, .json, .csv or .parquet")


def read_fingpt_rows(path: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of the FinGPT-Forecaster dataset as users have it, each tagged ``_split`` when its split is known.

    ``path`` may be:

    * the Hub id (``FinGPT/fingpt-forecaster-dow30-202305-202405``): ``datasets.load_dataset`` (all its splits);
    * a local snapshot of that Hub repo (``hf download ID --repo-type dataset --local-dir DIR``:
      ``DIR/data/train-*.parquet``, ``DIR/data/test-*.parquet``) or any folder with one file per split
      (``train.jsonl``, ``test.jsonl``, ...): ``datasets.load_dataset(DIR)`` infers the splits from the names;
    * a ``datasets.save_to_disk`` folder (``dataset_dict.json`` / ``state.json``): ``datasets.load_from_disk``;
    * one exported ``.jsonl``/``.json``/``.csv``/``.parquet`` file, with an optional ``split`` column.

    ``split`` keeps only that split.
    """
    import re

    import datasets

    raw = str(path)
    path = Path(path).expanduser()
    if not path.exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", raw):
        try:
            ds = datasets.load_dataset(raw)
        except Exception as exc:  # offline, unknown id, gated: all one line for the user
            raise _load_dataset_error(raw, exc, f"download it where the Hub is reachable (hf download {raw} "
                                      "--repo-type dataset --local-dir DIR) and point 'path' to DIR",
                                      "Hub dataset") from None
        return _dataset_rows(ds, raw, split)
    if not path.exists():
        raise FintuneError(f"{path}: file not found", "give the Hub id, a snapshot/save_to_disk folder or an export")
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            try:
                ds = datasets.load_from_disk(str(path))
            except (FileNotFoundError, ValueError) as exc:
                raise _load_dataset_error(str(path), exc, "is it a complete datasets.save_to_disk folder?") from None
        else:
            try:
                ds = datasets.load_dataset(str(path))
            except Exception as exc:  # no data files, mixed formats, unreadable parquet ...
                raise _load_dataset_error(str(path), exc, "a snapshot has data/train-*.parquet and "
                                          "data/test-*.parquet; or give one file per split (train.jsonl, ...)") from None
        return _dataset_rows(ds, str(path), split)
    rows = _tag_split_column(_read_file(path), str(path))
    if split is not None:
        rows = [r for r in rows if r.get("_split") == split]
        if not rows:
            raise FintuneError(f"{path}: no rows of split '{split}'", f"the file needs a '{SPLIT_COLUMN}' column")
    return rows


def import_fingpt_rows(rows: Iterable[Mapping[str, Any]], where: str = "<rows>") -> list[Example]:
    """Examples from published rows; row numbers in errors are 1-based; duplicate (symbol, week) is an error."""
    out, seen = [], {}
    for i, row in enumerate(rows, start=1):
        ex = fingpt_row_to_example(row, f"{where} row {i}")
        if ex.id in seen:
            raise FintuneError(f"{where} row {i}: duplicate symbol/period '{ex.id}' (first at row {seen[ex.id]})")
        seen[ex.id] = i
        out.append(ex)
    return out


def example_messages(example: Example, system_prompt: str | None = None) -> list[dict[str, str]]:
    """System / user / assistant messages of an imported row (``system_prompt`` overrides the row's own)."""
    system = system_prompt if system_prompt is not None else example.extra.get("system_prompt")
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": example.text})
    if example.extra.get("answer"):
        messages.append({"role": "assistant", "content": example.extra["answer"]})
    return messages


def convert_fingpt_rows(rows: Iterable[Mapping[str, Any]], template: str, tokenizer: Any = None,
                        where: str = "<rows>") -> list[dict[str, str]]:
    """Re-render published rows with another chat template: ``[{id, prompt, completion, label}]``."""
    out = []
    for ex in import_fingpt_rows(rows, where):
        prompt, completion = render_messages(example_messages(ex), template, tokenizer)
        out.append({"id": ex.id, "prompt": prompt, "completion": completion, "label": ex.label or ""})
    return out


def load_fingpt_source(cfg: Any, task: str, labels: Sequence[str] | None) -> list[Example]:
    """Registry loader for ``name: fingpt_forecaster`` (``path``: exported rows; option ``split``)."""
    check_options(cfg, ["split"])
    if not cfg.path:
        raise FintuneError("source 'fingpt_forecaster': 'path' is required",
                           "an exported file (.jsonl/.csv/.parquet), a save_to_disk directory or a Hub dataset id")
    path = cfg.path
    examples = import_fingpt_rows(read_fingpt_rows(path, option(cfg, "split") or cfg.hf_split), str(path))
    if labels is not None:
        bad = next((e for e in examples if e.label not in labels), None)
        if bad is not None:
            raise FintuneError(f"{path}: label {bad.label!r} of '{bad.id}' is not in the declared labels {list(labels)}")
    return examples
