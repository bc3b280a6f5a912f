"""The analyzer behind ``fintune analyze`` and ``fintune serve``: load a run once, predict batches of texts.

Score mode (the default for closed label sets) ranks the run's labels by the log-probability of the exact answer
text training taught, so there is nothing to parse; a temperature fitted by ``fintune eval`` (its
``calibration.json``) makes ``confidence`` a calibrated probability. Forecaster runs (free-text answers) generate
and parse strictly, which yields ``expected_move``. The label set, answer format, template and system prompt come
from the run's manifest; a plain model or the embedded alias uses the sentiment labels, the ``label`` format and
the model's own chat template.

Batch files (JSONL or CSV with ``text`` and optional ``id``, ``ticker``, ``date``, ``label``) stream through
:func:`analyze_file`, which appends one :class:`~fintune.records.Prediction` per line after each batch and, on a
restart, skips the ids already written (a line cut by a kill is detected and dropped first).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fintune.artifacts import (
    atomic_write_bytes,
    atomic_write_json,
    build_manifest,
    sha256_file,
    strict_json,
)
from fintune.errors import FintuneError
from fintune.labels import SENTIMENT, canonical_map, labels_for_task
from fintune.models import context_length
from fintune.predict.predictor import Predictor
from fintune.predict.rows import (
    generation_prompt,
    label_prompts,
    predictions_from_generations,
    predictions_from_scores,
)
from fintune.prompts.tasks import build_messages
from fintune.prompts.templates import TEMPLATE_DATE, render_messages
from fintune.prompts.tokenize import encode_prompt, encode_text
from fintune.records import CSV_FIELD_LIMIT, Example, Prediction, decode_line, iter_jsonl
from fintune.run import SCORABLE_FORMATS, read_run

INPUT_FIELDS = ("id", "text", "ticker", "date", "label")
EXPLAIN_MAX_NEW_TOKENS = 64


@dataclass
class AnalyzeItem:
    """One text to analyse (``where`` names it in errors: ``file:line`` or ``request``)."""

    text: str
    id: str = ""
    ticker: str | None = None
    date: str | None = None
    gold: str | None = None
    where: str = "input"


@dataclass
class PreparedItem:
    """An item with its rendered prompt and candidate answers, checked against the model's context."""

    item: AnalyzeItem
    prompt: str
    continuations: list[str] = field(default_factory=list)


def find_temperature(run: str | Path, labels: Sequence[str] | None,
                     calibration: str | Path | None = None) -> tuple[float | None, str | None]:
    """The fitted calibration temperature for ``run`` and the file it came from, or ``(None, None)``.

    ``fintune eval`` writes ``calibration.json`` into its output directory, whose manifest names the run as
    ``parent_run``. Looked up in order: ``calibration`` (a calibration.json or an eval directory), the run's own
    manifest ``temperature``, ``RUN/calibration.json``, then ``RUN/*/calibration.json`` of eval directories whose
    parent is this run. A temperature fitted on a different label set is refused.
    """
    run = Path(run)
    candidates: list[Path] = []
    if calibration is not None:
        cpath = Path(calibration)
        cpath = cpath / "calibration.json" if cpath.is_dir() else cpath
        if not cpath.exists():
            raise FintuneError(f"--calibration {calibration}: no calibration.json there",
                               "give the output directory of `fintune eval` (score mode)")
        candidates.append(cpath)
    elif run.is_dir():
        manifest_path = run / "manifest.json"
        if manifest_path.exists():
            temp = read_run(run).temperature
            if temp is not None and temp > 0:
                return float(temp), str(manifest_path)
        candidates.append(run / "calibration.json")
        for sub in sorted(run.glob("*/calibration.json")):
            if (sub.parent / "manifest.json").exists():
                parent = read_run(sub.parent).parent_run
                if parent and Path(parent).resolve() == run.resolve():
                    candidates.append(sub)
    for cpath in candidates:
        if not cpath.exists():
            continue
        try:
            cal = json.loads(cpath.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise FintuneError(f"{cpath}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        if not cal.get("fitted_on"):
            continue  # eval ran without a labelled validation split: T=1 was not fitted
        temp = cal.get("temperature")
        if not isinstance(temp, (int, float)) or isinstance(temp, bool) or temp <= 0:
            raise FintuneError(f"{cpath}: field 'temperature' must be a positive number, got {temp!r}")
        if labels and cal.get("labels") and list(cal["labels"]) != list(labels):
            raise FintuneError(f"{cpath}: temperature fitted on labels {cal['labels']} but the run has {list(labels)}",
                               "rerun `fintune eval` on this run")
        return float(temp), str(cpath)
    return None, None


class Analyzer:
    """A :class:`~fintune.predict.Predictor` plus what analysing raw texts needs: the run's messages for a text,
    a context-length check, calibration, and ``analysis`` text.

    Not thread-safe: one thread runs :meth:`predict_prepared` at a time (the server's batcher guarantees it).
    """

    def __init__(self, predictor: Predictor, temperature: float | None = None,
                 temperature_source: str | None = None) -> None:
        self.predictor = predictor
        spec = predictor.spec
        if spec.format not in (*SCORABLE_FORMATS, "forecaster"):
            raise FintuneError(f"{predictor.model_name}: runs with the '{spec.format}' format cannot be analysed",
                               "analyze serves sentiment/classification and forecaster runs")
        if not predictor.labels:
            predictor.spec = spec.model_copy(update={"labels": list(labels_for_task(spec.task) or SENTIMENT)})
        self.temperature = temperature
        self.temperature_source = temperature_source
        predictor.temperature = temperature
        self.context = context_length(predictor.model) or 2048
        # declared label -> negative/neutral/positive (BULLISH -> positive), for the public 'sentiment' field
        self.canonical = canonical_map(self.task, self.labels, predictor.spec.canonical_labels)

    # the spec-derived attributes callers (serve, tests) read
    model = property(lambda self: self.predictor.model)
    tokenizer = property(lambda self: self.predictor.tokenizer)
    model_name = property(lambda self: self.predictor.model_name)
    labels = property(lambda self: self.predictor.labels)
    mode = property(lambda self: self.predictor.mode)
    task = property(lambda self: self.predictor.spec.task)
    fmt = property(lambda self: self.predictor.spec.format)
    template = property(lambda self: self.predictor.spec.template)
    template_date = property(lambda self: self.predictor.spec.template_date)  # pinned at training
    system_prompt = property(lambda self: self.predictor.spec.system_prompt)
    max_new_tokens = property(lambda self: self.predictor.max_new_tokens)
    batch_size = property(lambda self: self.predictor.batch_size)

    @classmethod
    def load(cls, run_or_model: str, dtype: str = "auto", batch_size: int = 16,
             calibration: str | None = None, max_new_tokens: int = 128, backend: str = "torch") -> Analyzer:
        """Load a run directory, model directory, hub id or alias once (eval mode) with its calibration."""
        predictor = Predictor.load(run_or_model, dtype=dtype, backend=backend, batch_size=batch_size,
                                   max_new_tokens=max_new_tokens)
        if predictor.temperature and not calibration:
            temp, source = float(predictor.temperature), "manifest"
        else:
            temp, source = find_temperature(run_or_model, predictor.labels, calibration)
        return cls(predictor, temperature=temp, temperature_source=source)

    def describe(self) -> dict[str, Any]:
        """What is being served: model, base model, labels, format, template, mode, backend, calibration."""
        return {**self.predictor.describe(), "canonical_labels": self.canonical,
                "template_date": self.template_date, "temperature": self.temperature,
                "calibrated": self.temperature is not None, "temperature_source": self.temperature_source,
                "context_length": self.context}

    # ------------------------------------------------------------ prompts

    def _messages(self, item: AnalyzeItem) -> list[dict[str, str]]:
        example = Example(id=item.id or "request", text=item.text, ticker=item.ticker, date=item.date)
        return build_messages(example, self.fmt, self.labels, self.system_prompt, with_answer=False)

    def prepare(self, item: AnalyzeItem) -> PreparedItem:
        """Render one item's prompt (and candidate answers) and check it fits the model; errors name the item."""
        if not isinstance(item.text, str) or not item.text.strip():
            raise FintuneError(f"{item.where}: field 'text' is missing or empty", "give the text to analyse")
        row = {"id": item.id, "messages": self._messages(item), "extra": {}}
        if self.mode == "score":
            prompt, conts = label_prompts(row, self.labels, self.fmt, self.template, self.tokenizer,
                                          self.template_date)
            longest = max(len(encode_text(self.tokenizer, c)) for c in conts)
        else:
            prompt, conts = generation_prompt(row, self.template, self.tokenizer, self.template_date), []
            longest = self.max_new_tokens
        n = len(encode_prompt(self.tokenizer, prompt))
        if n + longest > self.context:
            raise FintuneError(f"{item.where}: text is too long for the model ({n} prompt tokens + {longest} "
                               f"answer tokens > context {self.context})", "shorten the text")
        return PreparedItem(item=item, prompt=prompt, continuations=list(conts))

    # ------------------------------------------------------------ inference

    def predict_prepared(self, prepared: Sequence[PreparedItem], explain: bool = False) -> list[Prediction]:
        """One batched pass over already prepared items; ``extra`` carries ``latency_ms`` and ``model``."""
        if not prepared:
            return []
        t0 = time.perf_counter()
        rows = [{"id": p.item.id, "ticker": p.item.ticker, "date": p.item.date, "label": p.item.gold}
                for p in prepared]
        if self.mode == "score":
            logprobs = self.predictor.score([p.prompt for p in prepared], [p.continuations for p in prepared])
            preds = predictions_from_scores(rows, self.labels, logprobs, self.temperature or 1.0, self.model_name)
            if explain:
                for pred, text in zip(preds, self._explanations(prepared, preds), strict=True):
                    pred.raw_output = text
                    pred.extra["analysis"] = text.strip() or None
        else:
            texts = self.predictor.generate([p.prompt for p in prepared])
            preds = predictions_from_generations(rows, texts, self.fmt, self.labels, self.model_name)
            for pred in preds:
                pred.extra["analysis"] = (pred.sections or {}).get("analysis")
        ms = (time.perf_counter() - t0) * 1000.0
        for pred in preds:
            pred.extra.update(latency_ms=round(ms, 3), model=self.model_name, calibrated=self.temperature is not None)
        return preds

    def _explanations(self, prepared: Sequence[PreparedItem], preds: Sequence[Prediction]) -> list[str]:
        """A short generated explanation of each scored label, asked in the run's own chat template."""
        prompts = []
        for p, pred in zip(prepared, preds, strict=True):
            ask = (f"Explain in one or two sentences why the sentiment of this financial text is {pred.label}.\n"
                   f"Text: {p.item.text}")
            messages = [{"role": "user", "content": ask},
                        {"role": "assistant", "content": ""}]
            if self.system_prompt:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            prompts.append(render_messages(messages, self.template, self.tokenizer,
                                           self.template_date or TEMPLATE_DATE)[0])
        return self.predictor.generate(prompts, max_new_tokens=EXPLAIN_MAX_NEW_TOKENS)

    def predict(self, items: Sequence[AnalyzeItem], explain: bool = False) -> list[Prediction]:
        """Prepare and predict ``items`` in one batched pass (the first bad item raises)."""
        return self.predict_prepared([self.prepare(i) for i in items], explain=explain)


def public_result(pred: Prediction, analyzer: Analyzer) -> dict[str, Any]:
    """The JSON people and programs get: label, sentiment, confidence, probabilities, expected_move, analysis,
    model, latency_ms (plus id/ticker/date). ``label`` is the run's own label (``BULLISH``), ``sentiment`` its
    canonical meaning (``positive``)."""
    sentiment = analyzer.canonical.get(pred.label, pred.label) if analyzer.task == "sentiment" else None
    return {
        "id": pred.id, "label": pred.label, "sentiment": sentiment, "confidence": pred.confidence,
        "calibrated": bool(pred.extra.get("calibrated")) and analyzer.mode == "score",
        "probabilities": pred.probabilities, "expected_move": pred.expected_move,
        "analysis": pred.extra.get("analysis"), "ticker": pred.ticker, "date": pred.date,
        "model": analyzer.model_name, "latency_ms": pred.extra.get("latency_ms"),
    }


# ---------------------------------------------------------------- batch files


def _clean(value: Any, where: str = "", name: str = "", numbers: bool = False) -> str | None:
    """A stripped string field (None when absent); a number where a string is expected is an error (``id`` may be
    a whole number: ``numbers``)."""
    if value is None:
        return None
    if isinstance(value, bool) or (not isinstance(value, str) and not (numbers and isinstance(value, int))):
        raise FintuneError(f"{where}: field '{name}' must be a string, got {type(value).__name__} {value!r}",
                           f"quote it, e.g. \"{name}\": \"{value}\"")
    text = str(value).strip()
    return text or None


def _item_from_row(row: dict[str, Any], where: str, lineno: int) -> AnalyzeItem:
    unknown = sorted(k for k in row if k not in INPUT_FIELDS)
    if unknown:
        raise FintuneError(f"{where}: unknown field(s) {unknown}", f"allowed fields: {list(INPUT_FIELDS)}")
    text = row.get("text")
    if text is not None and not isinstance(text, str):
        raise FintuneError(f"{where}: field 'text' must be a string, got {type(text).__name__} {str(text)[:40]!r}",
                           "quote the text")
    if not isinstance(text, str) or not text.strip():
        raise FintuneError(f"{where}: field 'text' is missing or empty", "every row needs the text to analyse")
    ticker = _clean(row.get("ticker"), where, "ticker")
    return AnalyzeItem(text=text, id=_clean(row.get("id"), where, "id", numbers=True) or f"line-{lineno:06d}",
                       ticker=ticker.upper() if ticker else None, date=_clean(row.get("date"), where, "date"),
                       gold=_clean(row.get("label"), where, "label"), where=where)


def read_input_rows(path: str | Path) -> Iterator[AnalyzeItem]:
    """Stream items from a JSONL or CSV file (by extension); bad rows raise naming ``file:line`` and the field.

    A row without ``id`` gets ``line-NNNNNN`` (its line number), stable across restarts.
    """
    path = Path(path)
    if path.is_dir():
        raise FintuneError(f"{path}: is a directory", "give a .jsonl or .csv file")
    if not path.exists():
        raise FintuneError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("rb") as raw:
            lines = (decode_line(line, path, k) for k, line in enumerate(raw, start=1))
            reader = csv.DictReader(lines)
            try:
                if not reader.fieldnames or "text" not in reader.fieldnames:
                    raise FintuneError(f"{path}:1: CSV header has no 'text' column",
                                       f"columns allowed: {list(INPUT_FIELDS)}")
                for row in reader:
                    lineno = reader.line_num
                    if None in row:
                        raise FintuneError(f"{path}:{lineno}: more values than header columns")
                    yield _item_from_row(row, f"{path}:{lineno}", lineno)
            except csv.Error as exc:
                raise FintuneError(f"{path}:{reader.line_num}: unreadable CSV ({exc})",
                                   f"fields over {CSV_FIELD_LIMIT} bytes are refused; check quoting") from None
        return
    if suffix not in (".jsonl", ".json", ".ndjson"):
        raise FintuneError(f"{path}: unsupported input type '{suffix}'", "give a .jsonl or .csv file")

    for lineno, row in iter_jsonl(path):
        if not isinstance(row, dict):
            raise FintuneError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield _item_from_row(row, f"{path}:{lineno}", lineno)


ROW_HASH = "input_sha256"
"""Key in a prediction's ``extra`` holding the hash of the input row it answers (what resume compares)."""


def row_hash(item: AnalyzeItem) -> str:
    """sha256 of everything about an input row that decides its prediction (text, ticker, date, label)."""
    key = json.dumps([item.text, item.ticker, item.date, item.gold], ensure_ascii=False)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _resume_state(out: Path) -> dict[str, tuple[str | None, bytes]]:
    """Rows already written to ``out``: id -> (input hash recorded with it, the line); a truncated last line (a
    kill mid-write) is removed from the file."""
    if not out.exists():
        return {}
    if out.is_dir():
        raise FintuneError(f"--out {out}: is a directory", "give a .jsonl file path")
    data = out.read_bytes()
    lines = data.split(b"\n")
    done: dict[str, tuple[str | None, bytes]] = {}
    keep = 0  # bytes of complete, valid lines
    for i, raw in enumerate(lines):
        last = i == len(lines) - 1
        if not raw.strip():
            keep += len(raw) + (0 if last else 1)
            continue
        try:
            row = json.loads(raw)
            if last:  # no newline after it: the write was cut before the line ended
                raise ValueError("unterminated")
            extra = row.get("extra") if isinstance(row.get("extra"), dict) else {}
            done[str(row["id"])] = (extra.get(ROW_HASH), raw)
        except (ValueError, KeyError, TypeError, AttributeError):
            if not last:
                raise FintuneError(f"{out}:{i + 1}: corrupt prediction line in the middle of the file",
                                   "delete the file (or that line) and rerun") from None
            print(f"{out}:{i + 1}: dropping an incomplete last line (interrupted run)", file=sys.stderr)
            atomic_write_bytes(out, data[:keep])
            break
        keep += len(raw) + 1
    return done


def check_analyze_input(src: str | Path, out: str | Path) -> list[AnalyzeItem]:
    """Read and check ``src`` (every row, unique ids) and ``out`` (a file, not an input, a resumable JSONL) before
    any model is loaded; returns the items."""
    src, out = Path(src), Path(out)
    if out.resolve() == src.resolve():
        raise FintuneError(f"--out {out}: is the input file", "choose another --out (the input is never overwritten)")
    if out.is_dir():
        raise FintuneError(f"--out {out}: is a directory", "give a .jsonl file path")
    items = list(read_input_rows(src))
    if not items:
        raise FintuneError(f"{src}: no rows", "the file is empty")
    seen: dict[str, str] = {}
    for it in items:
        if it.id in seen:
            raise FintuneError(f"{it.where}: duplicate id '{it.id}' (first at {seen[it.id]})")
        seen[it.id] = it.where
    stray = sorted(set(_resume_state(out)) - set(seen))
    if stray:
        raise FintuneError(f"{out}: holds id '{stray[0]}' that is not in {src}",
                           "it belongs to another input: choose another --out")
    return items


FLUSH_EVERY_BATCHES = 16
"""Batches predicted as one group by :func:`analyze_file` before a flush: the predictor sorts a group's documents
by length (less padding than input-order batches; `benchmarks/analyze_throughput.py` times it switched off) and a
killed run loses at most one group."""


def analyze_file(analyzer: Analyzer, src: str | Path, out: str | Path, batch_size: int = 16,
                 explain: bool = False, progress: bool = True,
                 items: list[AnalyzeItem] | None = None) -> dict[str, Any]:
    """Analyse every row of ``src`` into ``out`` (JSONL of Predictions), resumably; returns a summary.

    Rows are validated up front (a bad row fails before any model work; ``items`` from
    :func:`check_analyze_input` skips reading them again); then every :data:`FLUSH_EVERY_BATCHES` batches are
    predicted together (sorted by length inside the group, so batches carry little padding), appended in input order
    and flushed to disk, so a killed run loses at most one group and a rerun continues where it stopped. Resume compares content, not only
    ids: each prediction records the hash of its input row, and a row whose text (or ticker, date, label) changed
    since -- or one written without a hash -- is predicted again (counted as ``recomputed_changed``). A
    ``<out>.manifest.json`` records the model, input hash and settings.
    """
    from tqdm.auto import tqdm

    src, out = Path(src), Path(out)
    items = items if items is not None else check_analyze_input(src, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _resume_state(out)
    hashes = {it.id: row_hash(it) for it in items}
    changed = {i for i, (h, _) in done.items() if h != hashes.get(i)}
    if changed:
        print(f"{out}: {len(changed)} row(s) changed in {src} since they were predicted (or carry no input hash); "
              "predicting them again", file=sys.stderr)
        kept = b"".join(line + b"\n" for i, (_, line) in done.items() if i not in changed)
        atomic_write_bytes(out, kept)
    reused = len(done) - len(changed)
    todo = [it for it in items if it.id not in done or it.id in changed]
    t0 = time.perf_counter()
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc="analyze", unit="row", disable=not progress)
    group = batch_size * FLUSH_EVERY_BATCHES
    with out.open("a", encoding="utf-8") as fh:
        for start in range(0, len(todo), group):
            batch = todo[start:start + group]
            preds = analyzer.predict(batch, explain=explain)
            for item, pred in zip(batch, preds, strict=True):
                pred.extra[ROW_HASH] = hashes[item.id]
            fh.write("".join(json.dumps(strict_json(p.to_dict(), f"{out} id {p.id}"), ensure_ascii=False,
                                        allow_nan=False) + "\n" for p in preds))
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(len(batch))
    bar.close()
    seconds = time.perf_counter() - t0
    summary = {"input": str(src), "out": str(out), "rows": len(items), "skipped_already_done": reused,
               "recomputed_changed": len(changed), "predicted": len(todo), "seconds": round(seconds, 3),
               "rows_per_s": round(len(todo) / seconds, 3) if todo and seconds > 0 else None}
    # the output is a file, so its manifest sits beside it under its own name (never over a run's manifest.json)
    atomic_write_json(out.with_name(out.name + ".manifest.json"), build_manifest(
        "analyze", recipe={"batch_size": batch_size, "explain": explain}, data_hashes={str(src): sha256_file(src)},
        parent=analyzer.model_name, model=analyzer.describe(), summary=summary))
    return summary
