"""The run contract: one typed (pydantic) manifest per stage, read through :func:`read_run`.

Every stage writes ``manifest.json`` (``fintune.artifacts.write_manifest``); every later stage reads it back here
as a :class:`DataManifest`, :class:`TrainManifest`, :class:`EvalManifest`, :class:`AnalyzeManifest`,
:class:`BacktestManifest`, :class:`SynthManifest`, :class:`CollectManifest`, :class:`DemoManifest` or
:class:`EnsembleManifest` (other stages: :class:`RunManifest`). They share the base model and lineage, the :class:`TaskSpec` (task, format,
labels and their mapping, template, system prompt, pinned template date and the recipe's ``eval:`` block), data
hashes and licenses, package versions, git SHA, seed and world size.

Older run directories (written before ``task_spec`` was recorded) still read: the spec is rebuilt from the keys
they do have (``labels``, ``template``, ``format`` and the recorded recipe). A directory that lacks a field a
stage needs is a one-line error naming the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fintune.errors import FintuneError
from fintune.labels import labels_for_task
from fintune.recipe import EvalConfig, iso_date

MANIFEST = "manifest.json"
LLAMA3_TEMPLATE_DATE = "26 Jul 2024"
"""The 'Today Date' dated chat templates render unless the recipe pins another (``data.template_date``)."""
SCORABLE_FORMATS = ("label", "structured", "headlines")
"""Formats with a closed answer set, which score mode can rank by log-probability."""


class TaskSpec(BaseModel):
    """What a model was taught to answer and how its prompts are written: everything inference must repeat."""

    model_config = ConfigDict(extra="ignore")

    task: str = "sentiment"
    format: str = "label"
    labels: list[str] | None = None
    label_maps: dict[str, dict[str, str]] = Field(default_factory=dict,
                                                  description="source name -> raw label -> declared label")
    template: str = "auto"
    system_prompt: str | None = None
    template_date: str | None = None
    canonical_labels: dict[str, str] | None = None
    eval: EvalConfig = Field(default_factory=EvalConfig)
    eval_set: list[str] = Field(default_factory=list, description="eval keys the recipe set (not defaults)")

    @property
    def default_mode(self) -> str:
        """``score`` for closed label sets, ``generate`` for free-text formats."""
        return "score" if self.format in SCORABLE_FORMATS else "generate"

    @classmethod
    def from_recipe(cls, recipe: Any, labels: list[str] | None = None, template: str | None = None) -> TaskSpec:
        """The spec a :class:`~fintune.recipe.Recipe` (or its dict) declares; ``labels``/``template`` override."""
        rec = recipe if isinstance(recipe, dict) else recipe.model_dump(mode="json")
        ev = EvalConfig(**(rec.get("eval") or {}))
        if isinstance(recipe, dict):  # a recorded recipe lists every key: count the ones off their default
            eval_set = sorted(k for k, v in ev.model_dump().items() if v != EvalConfig.model_fields[k].default)
        else:
            eval_set = sorted(recipe.eval.model_fields_set)
        data = rec.get("data") or {}
        task = str(data.get("task") or "sentiment")
        tmpl = str(template or data.get("template") or "auto")
        maps = {str(s.get("name")): dict(s["label_map"]) for s in data.get("sources") or []
                if isinstance(s, dict) and s.get("label_map")}
        declared = labels if labels is not None else data.get("labels")
        resolved = labels_for_task(task, declared)
        return cls(task=task, format=str(data.get("format") or "label"),
                   labels=list(resolved) if resolved else None, label_maps=maps, template=tmpl,
                   system_prompt=data.get("system_prompt"),
                   template_date=data.get("template_date") or LLAMA3_TEMPLATE_DATE,
                   canonical_labels=data.get("canonical_labels"),
                   eval=ev, eval_set=eval_set)


class RunManifest(BaseModel):
    """Fields every stage's manifest carries (unknown keys are kept: stages add their own)."""

    model_config = ConfigDict(extra="allow")
    stages: ClassVar[tuple[str, ...]] = ()

    stage: str
    created: str | None = None
    fintune_git_sha: str | None = None
    command: str | None = None
    seed: int | None = None
    parent_run: str | None = None
    recipe: dict[str, Any] | None = None
    data_sha256: dict[str, str] = Field(default_factory=dict)
    licenses: dict[str, str] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    world_size: int = 1
    base_model: str | None = None
    merged_adapters: list[str] = Field(default_factory=list)
    task_spec: TaskSpec | None = None
    temperature: float | None = None
    model_cutoff: str | None = Field(None, description="the base model's pretraining cutoff (recipe "
                                                       "``model_cutoff``, ISO date), when the stage knows it")

    @model_validator(mode="before")
    @classmethod
    def _legacy_task_spec(cls, raw: Any) -> Any:
        """Manifests written before ``task_spec`` / ``model_cutoff`` existed: rebuild them from what they recorded."""
        if isinstance(raw, dict) and raw.get("model_cutoff") is None and isinstance(raw.get("recipe"), dict) \
                and raw["recipe"].get("model_cutoff"):
            raw = {**raw, "model_cutoff": raw["recipe"]["model_cutoff"]}
        if not isinstance(raw, dict) or raw.get("task_spec") is not None:
            return raw
        recipe = raw.get("recipe") if isinstance(raw.get("recipe"), dict) else {}
        if not (recipe.get("data") or raw.get("labels") or raw.get("format")):
            return raw
        data = dict(recipe.get("data") or {})
        if isinstance(raw.get("task"), str):
            data["task"] = raw["task"]
        if raw.get("format"):
            data["format"] = raw["format"]
        try:
            spec = TaskSpec.from_recipe({"data": data, "eval": recipe.get("eval") or {}},
                                        labels=raw.get("labels") or None, template=raw.get("template"))
        except (ValueError, FintuneError):
            return raw
        return {**raw, "task_spec": spec}

    @field_validator("model_cutoff", mode="before")
    @classmethod
    def _cutoff_date(cls, v: Any) -> Any:
        return iso_date(v)

    @property
    def spec(self) -> TaskSpec:
        """The task spec (the defaults when the stage recorded none: sentiment labels, ``label`` format)."""
        return self.task_spec or TaskSpec(labels=list(labels_for_task("sentiment") or []))


class LeakageCounts(BaseModel):
    """Duplicates between two splits (``leakage.across[pair]`` of a data manifest)."""

    model_config = ConfigDict(extra="allow")

    exact: int
    normalized: int
    near: int
    cross_source: int | None = Field(None, description="of them, texts found in another source of the mix "
                                                        "(None in manifests written before it was counted)")


class LeakageSummary(BaseModel):
    """The leakage check a data manifest records (the full report is ``leakage.json``)."""

    model_config = ConfigDict(extra="allow")

    across: dict[str, LeakageCounts] = Field(default_factory=dict)
    dropped: dict[str, int] | None = Field(None, description="rows dropped per split (``data.drop_leaked``)")


class SourceSummary(BaseModel):
    """One recipe source as a data manifest records it (loader-specific keys are kept)."""

    model_config = ConfigDict(extra="allow")

    name: str
    path: str | None = None
    examples: int | None = None


class DataManifest(RunManifest):
    """``fintune data``: prepared splits of one task."""

    stages: ClassVar[tuple[str, ...]] = ("data",)
    task_spec: TaskSpec
    counts: dict[str, int]
    task: str | None = None
    format: str | None = None
    template: str | None = None
    labels: list[str] = Field(default_factory=list)
    split_method: str | None = None
    label_counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    date_range: dict[str, list[str | None]] = Field(default_factory=dict)
    sources: list[SourceSummary] = Field(default_factory=list)
    leakage: LeakageSummary = Field(default_factory=LeakageSummary)
    mix: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict,
                                                      description="split -> source -> examples and share")
    warnings: list[str] = Field(default_factory=list)


class TrainManifest(RunManifest):
    """``fintune train`` / ``pretrain`` (and ``models merge``): weights or an adapter on a base model."""

    stages: ClassVar[tuple[str, ...]] = ("train", "pretrain", "merge")
    base_model: str
    data_dir: str | None = None
    training: dict[str, Any] = Field(default_factory=dict, description="the trainer's summary (steps, loss ...)")


class EvalManifest(RunManifest):
    """``fintune eval`` (and ``eval --suite``): predictions and metrics of one model on one dataset."""

    stages: ClassVar[tuple[str, ...]] = ("eval", "eval-suite")
    model: str
    sweep_trial: int | None = Field(None, description="the sweep trial these predictions come from "
                                                      "(``fintune sweep`` writes RUN/validation/)")


class EnsembleMember(BaseModel):
    """One member of a seed ensemble: the eval it averages, the run that eval scored and what that run cost."""

    model_config = ConfigDict(extra="forbid")

    eval_dir: str
    run_dir: str | None = Field(None, description="the eval's parent run (None when it was not a run directory)")
    model: str | None = None
    seed: int | None = Field(None, description="the training seed the run recorded")
    predictions_sha256: str
    train_minutes: float | None = Field(None, description="wall-clock training minutes the run recorded")
    train_minutes_from: str | None = Field(None, description="where train_minutes was read")
    eval_seconds: float | None = Field(None, description="the member's scoring time of this split (eval speed)")


class EnsembleCost(BaseModel):
    """What an ensemble costs: every member's training, and every member's forward passes at inference."""

    model_config = ConfigDict(extra="forbid")

    train_minutes: float | None = Field(description="sum of the members' training minutes; None unless every "
                                                    "member's run recorded them")
    forward_passes_per_text: int = Field(description="each text is scored by every member: N model passes")
    eval_seconds: float | None = Field(None, description="sum of the members' scoring seconds on this split")
    note: str = ""


class EnsembleManifest(EvalManifest):
    """``fintune ensemble``: the mean of several classification evals' calibrated probabilities on one split.

    It is an eval directory (predictions.jsonl, metrics.json) too, so whatever reads an eval reads it.
    """

    stages: ClassVar[tuple[str, ...]] = ("ensemble",)
    members: list[EnsembleMember] = Field(min_length=2)
    cost: EnsembleCost
    labels: list[str]


class AnalyzeManifest(RunManifest):
    """``fintune analyze --file``: predictions of a run on unlabelled texts."""

    stages: ClassVar[tuple[str, ...]] = ("analyze",)
    model: dict[str, Any] | str


class BacktestManifest(RunManifest):
    """``fintune backtest``: predictions + prices -> returns."""

    stages: ClassVar[tuple[str, ...]] = ("backtest",)


class WalkForwardWindow(BaseModel):
    """One retrain-per-window window of ``fintune walkforward`` (inclusive ISO dates of predicted weeks)."""

    model_config = ConfigDict(extra="forbid")

    window: int
    train_first_week: str | None
    train_last_week: str | None = Field(description="the last week a training label spans")
    purge_first_week: str | None = Field(description="first purged week before the test window (None: no purge)")
    test_first_week: str
    test_last_week: str
    embargo_last_week: str | None = Field(description="last embargoed week after the test window (None: none)")
    n_train: int
    n_purged: int
    n_embargoed: int
    n_test: int
    run_dir: str


class WalkForwardManifest(RunManifest):
    """``fintune walkforward``: one forecaster retrained per window, its test weeks predicted out of sample."""

    stages: ClassVar[tuple[str, ...]] = ("walkforward",)
    base_model: str
    windows: list[WalkForwardWindow]
    purge_weeks: int
    embargo_weeks: int
    two_sided: bool = False
    test_weeks: int
    n_predictions: int


class SynthSummary(BaseModel):
    """Counts of a synthetic corpus (:func:`fintune.data.synth.synth_summary`)."""

    model_config = ConfigDict(extra="allow")

    labels: dict[str, int]
    hard: int
    distinct_3: float
    scenarios: dict[str, int] = Field(default_factory=dict)


class SynthManifest(RunManifest):
    """``fintune synth``: a synthetic news corpus of fictional companies (and their prices)."""

    stages: ClassVar[tuple[str, ...]] = ("synth",)
    n: int
    summary: SynthSummary
    universe: list[dict[str, str]] = Field(default_factory=list, description="ticker, name, sector ... per company")
    prices: dict[str, Any] | None = None
    note: str | None = None


class CollectManifest(RunManifest):
    """``fintune collect``: news (Finnhub) and prices of a list of tickers over a date range."""

    stages: ClassVar[tuple[str, ...]] = ("collect",)
    tickers: list[str]
    start: str
    end: str
    news_examples: int
    news_counts: dict[str, Any] = Field(default_factory=dict)
    finnhub: dict[str, Any] = Field(default_factory=dict, description="base URL, API calls and cache hits")
    prices: str | None = None


class DemoManifest(RunManifest):
    """``fintune demo``: the whole pipeline in one directory; ``runs`` lists its stage directories."""

    stages: ClassVar[tuple[str, ...]] = ("demo",)
    runs: list[str]
    summary: dict[str, Any] = Field(default_factory=dict)


MANIFEST_TYPES: tuple[type[RunManifest], ...] = (DataManifest, TrainManifest, EvalManifest, EnsembleManifest,
                                                 AnalyzeManifest, BacktestManifest, WalkForwardManifest,
                                                 SynthManifest, CollectManifest, DemoManifest)
Expected = Literal["data", "train", "eval", "ensemble", "analyze", "backtest", "walkforward", "synth", "collect",
                   "demo"]


def manifest_type(stage: str) -> type[RunManifest]:
    """The manifest class that reads ``stage`` (:class:`RunManifest` for stages without their own)."""
    for cls in MANIFEST_TYPES:
        if stage in cls.stages:
            return cls
    return RunManifest


def parse_manifest(raw: Any, where: str = MANIFEST) -> RunManifest:
    """Validate a manifest dict into its stage's type; a one-line error names ``where`` and the field."""
    if not isinstance(raw, dict):
        raise FintuneError(f"{where}: expected a JSON object")
    stage = raw.get("stage")
    if not isinstance(stage, str) or not stage:
        raise FintuneError(f"{where}: missing field 'stage'", "is this a fintune run directory?")
    cls = manifest_type(stage)
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "?"
        what = "missing field" if err["type"] == "missing" else f"field '{field}': {err['msg']} -"
        raise FintuneError(f"{where}: {what} '{field}' ({stage} manifest)" if err["type"] == "missing"
                           else f"{where}: {what} got {err.get('input')!r} ({stage} manifest)",
                           "was it written by this version of fintune? re-run that stage") from None


def read_run(path: str | Path, expect: Expected | None = None) -> RunManifest:
    """Read ``path/manifest.json`` (or a manifest file) as its stage's type.

    ``expect`` names the kind of directory the caller needs (``"train"`` accepts train, pretrain and merge
    manifests); another kind is a one-line error.
    """
    path = Path(path)
    file = path if path.is_file() else path / MANIFEST
    if not file.exists():
        raise FintuneError(f"{file}: no manifest", "is this a fintune run directory?")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FintuneError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    manifest = parse_manifest(raw, str(file))
    if expect is not None:
        want = {"data": DataManifest, "train": TrainManifest, "eval": EvalManifest, "ensemble": EnsembleManifest,
                "analyze": AnalyzeManifest, "backtest": BacktestManifest, "walkforward": WalkForwardManifest, "synth": SynthManifest,
                "collect": CollectManifest, "demo": DemoManifest}[expect]
        if not isinstance(manifest, want):
            raise FintuneError(f"{file}: a '{manifest.stage}' directory, not a {expect} run",
                               f"give a directory written by `fintune {expect}`")
    return manifest


def find_run(directory: str | Path) -> RunManifest | None:
    """The typed manifest of ``directory`` when it holds a fintune one; None when it has no ``manifest.json`` or
    another tool's (not JSON, no ``stage``). A fintune manifest that does not validate is a one-line error."""
    file = Path(directory) / MANIFEST
    try:
        raw = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or "stage" not in raw:
        return None
    return parse_manifest(raw, str(file))


def recorded_path(value: str | Path | None, manifest_dir: str | Path) -> Path | None:
    """Where a path a manifest recorded (``parent_run``, an eval's ``data``) is now; None when it is not found.

    Stages record paths as the user gave them, often relative to the directory the command ran in. Tried in order:
    the path as given (absolute, or relative to the current directory), then relative to each directory above
    ``manifest_dir`` (``runs/x-eval`` recorded ``runs/x`` when run from the project root). The first existing one
    wins.
    """
    if value is None or str(value) == "":
        return None
    given = Path(value)
    if given.exists():
        return given
    if given.is_absolute():
        return None
    for base in Path(manifest_dir).resolve().parents:
        if (base / given).exists():
            return base / given
    return None
