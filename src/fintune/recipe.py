"""Recipes: YAML files that configure a run, validated strictly.

Keys use the Hugging Face names users already know (``model_name_or_path``, ``lora_r``,
``per_device_train_batch_size`` ...). An unknown key fails with "did you mean ...", a wrong type fails naming the
key path, and ``--set key.path=value`` overrides any key (values are parsed as YAML, so ``--set lora_r=8`` is an int).

Shipped recipes live in ``recipes/<model>/<task>_<method>.yaml``, each with its launch command in a top comment;
``fintune recipes ls | cp NAME DEST | validate [PATH...]`` manage them.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fintune.errors import FintuneError
from fintune.yamlio import load_yaml, load_yaml_text

BUDGET_SCHEDULES = ("cosine", "linear", "constant", "constant_with_warmup")
"""``lr_scheduler_type`` values a ``max_train_minutes`` run can lay out over time (:mod:`fintune.train.budget`)."""

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"

Task = Literal["sentiment", "forecaster", "ner", "headlines", "pretrain"]
SourceName = Literal[
    "phrasebank", "fiqa", "tfns", "gold", "semeval", "finner", "stocknet", "fingpt_forecaster",
    "csv", "jsonl", "parquet", "hf", "text", "financebench", "synth", "prepared", "alpaca",
]


class _Strict(BaseModel):
    # allow_inf_nan=False: `.inf` epochs or a `.nan` learning rate are errors, like any other out-of-range number
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class SourceConfig(_Strict):
    """One data source. ``name`` picks the loader; the other keys are the loader's options."""

    name: SourceName
    path: str | None = Field(None, description="file or directory (or HF dataset id for name=hf)")
    agreement: Literal["50", "66", "75", "all"] | None = Field(None, description="PhraseBank agreement level")
    positive_threshold: float | None = Field(None, description="score > this is positive (FiQA/SemEval)")
    negative_threshold: float | None = Field(None, description="score < this is negative (FiQA/SemEval)")
    text_column: str | None = None
    label_column: str | None = None
    id_column: str | None = None
    date_column: str | None = None
    ticker_column: str | None = None
    label_map: dict[str, str] | None = Field(None, description="raw label -> declared label")
    hf_config: str | None = None
    hf_split: str | None = None
    split: Literal["train", "validation", "test"] | None = Field(
        None, description="put every row of this source in this split (with another split method, the other "
                          "sources are split as if alone)")
    limit: int | None = Field(None, ge=1, description="keep the first N rows (for quick runs)")
    max_examples: int | None = Field(
        None, ge=1, description="keep a seeded random sample of at most N rows (in their order), before the split")
    weight: float | None = Field(
        None, gt=0.0, description="this source's share of a weighted mix (relative to the other sources' weights; "
                                  "every source needs one); sources are sampled down, never repeated")
    task: Task | None = Field(None, description="this source's task in a multi-task mix (default: data.task)")
    format: Literal["structured", "label", "forecaster", "ner", "headlines", "text"] | None = Field(
        None, description="this source's answer format in a multi-task mix (default: data.format)")
    options: dict[str, Any] = Field(default_factory=dict, description="loader-specific options")

    @field_validator("agreement", mode="before")
    @classmethod
    def _agreement_str(cls, v: Any) -> Any:
        return str(v).lower() if v is not None else v


class SplitConfig(_Strict):
    """How examples are split into train / validation / test without leakage."""

    method: Literal["fingpt", "stratified", "random", "chronological", "chronological_per_ticker", "predefined"] = \
        "stratified"
    test_size: float = Field(0.25, ge=0.0, lt=1.0)
    val_size: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int = Field(42, ge=0)
    cutoff_date: str | None = Field(None, description="chronological: test = dates on/after this day")


class DataConfig(_Strict):
    """What to load and how to turn it into instruction examples."""

    task: Task = "sentiment"
    sources: list[SourceConfig] = Field(default_factory=list)
    labels: list[str] | None = Field(None, description="declared label set (default: the task's)")
    canonical_labels: dict[str, str] | None = Field(
        None, description="declared label -> negative/neutral/positive (default: bearish/bullish synonyms)")
    split: SplitConfig = Field(default_factory=SplitConfig)
    format: Literal["structured", "label", "forecaster", "ner", "headlines", "text"] = "label"
    template: Literal["auto", "llama2", "llama3", "deepseek-r1-distill", "chatml", "none"] = "auto"
    system_prompt: str | None = None
    template_date: str = Field("26 Jul 2024", description="the date a dated chat template (Llama 3.x "
                               "'Today Date') renders, pinned so prompts are the same bytes on every day")
    drop_leaked: bool = Field(False, description="drop test/val texts that also occur in train")
    near_duplicate_threshold: float = Field(0.9, gt=0.0, le=1.0)
    max_train_examples: int | None = Field(None, ge=1)
    max_eval_examples: int | None = Field(None, ge=1)
    prepared: str | None = Field(None, description="a directory written by `fintune data` (skips loading)")

    @field_validator("template_date")
    @classmethod
    def _template_date(cls, v: str) -> str:
        from datetime import datetime

        try:
            datetime.strptime(v, "%d %b %Y")
        except ValueError:
            raise ValueError("must be a date like '26 Jul 2024' (day, English month abbreviation, year)") from None
        return v

    @model_validator(mode="after")
    def _weights_all_or_none(self) -> DataConfig:
        weighted = [s.weight is not None for s in self.sources]
        if any(weighted) and not all(weighted):
            missing = weighted.index(False)
            raise ValueError(f"sources.{missing}.weight is missing: give every source a weight, or none")
        return self


class EvalConfig(_Strict):
    """How `fintune eval` predicts and scores."""

    mode: Literal["score", "generate"] = "score"
    per_device_eval_batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(64, ge=1)
    temperature_scaling: bool = True
    bootstrap_samples: int = Field(1000, ge=0)
    split: Literal["validation", "test"] = "test"


class Recipe(_Strict):
    """A whole run: model, method, data, training and evaluation settings."""

    name: str = "run"
    description: str = ""
    stage: Literal["pretrain", "train"] = "train"

    # model
    model_name_or_path: str
    tokenizer_name_or_path: str | None = None
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    model_cutoff: str | None = Field(
        None, description="the base model's pretraining cutoff (ISO date YYYY-MM-DD): `fintune backtest` warns "
                          "when a backtest window precedes it (the model may have read that period)")

    # method
    method: Literal["lora", "qlora", "full"] = "lora"
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    modules_to_save: list[str] | None = None
    use_rslora: bool = Field(False, description="rank-stabilised LoRA: scale the update by alpha/sqrt(r), not alpha/r")
    loraplus_lr_ratio: float | None = Field(
        None, gt=0.0, description="LoRA+: the B matrices learn at this multiple of learning_rate (paper: 16)")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_use_double_quant: bool = True
    bnb_4bit_compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"

    # lineage (two-stage adaptation)
    init_from: str | None = Field(None, description="stage-1 run directory to start from")
    stage1_handoff: Literal["merge", "continue"] = "merge"

    # training (Hugging Face TrainingArguments names)
    per_device_train_batch_size: int = Field(8, ge=1)
    per_device_eval_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(2e-4, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    lr_scheduler_type: str = "cosine"
    optim: str = "adamw_torch"
    num_train_epochs: float = Field(1.0, gt=0.0)
    max_steps: int = Field(-1, ge=-1, description="-1 = train for num_train_epochs")
    class_weighting: Literal["none", "balanced"] = Field(
        "none", description="balanced: each training example's answer tokens weigh n / (classes x count of its "
                            "label) in the loss (sklearn's 'balanced'), for rare classes such as FiQA's neutral")
    max_train_minutes: float | None = Field(
        None, gt=0.0, description="stop after this many wall-clock minutes of training, with the learning-rate "
                                  "schedule laid out over the budget (epochs / max_steps stay an upper bound)")
    max_seq_length: int = Field(512, ge=8)
    packing: bool = True
    group_by_length: bool = False
    gradient_checkpointing: bool = False
    bf16: bool | Literal["auto"] = "auto"
    device: Literal["auto", "cuda", "mps", "cpu"] = Field("auto", description="auto = CUDA, else Apple MPS, else CPU")
    fp32_matmul_precision: Literal["auto", "ieee", "bf16", "tf32"] = "ieee"
    torch_compile: bool = Field(False, description="compile each decoder layer (one graph shared by all layers)")
    logging_steps: int = Field(10, ge=1)
    eval_steps: int | None = Field(None, ge=1)
    save_steps: int | None = Field(None, ge=1)
    save_total_limit: int | None = Field(2, ge=1)
    metric_for_best_model: str = "eval_loss"
    greater_is_better: bool | None = None
    load_best_model_at_end: bool = False
    report_to: list[Literal["none", "tensorboard", "wandb", "mlflow"]] | Literal[
        "none", "tensorboard", "wandb", "mlflow"] = "none"
    seed: int = Field(42, ge=0)
    output_dir: str | None = None

    data: DataConfig = Field(default_factory=DataConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("model_cutoff", mode="before")
    @classmethod
    def _model_cutoff(cls, v: Any) -> Any:
        return iso_date(v)

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        if self.max_train_minutes is not None and self.lr_scheduler_type not in BUDGET_SCHEDULES:
            raise ValueError(f"max_train_minutes needs lr_scheduler_type in {list(BUDGET_SCHEDULES)}, "
                             f"got {self.lr_scheduler_type!r}")
        if self.loraplus_lr_ratio is not None and self.method == "full":
            raise ValueError("loraplus_lr_ratio needs method lora or qlora")
        if self.method == "full" and self.init_from and self.stage1_handoff == "continue":
            raise ValueError("stage1_handoff=continue needs a LoRA/QLoRA stage 1; use merge for full fine-tuning")
        return self


# ---------------------------------------------------------------- loading, overrides, errors


def iso_date(value: Any) -> str | None:
    """``value`` as an ISO date string ``YYYY-MM-DD`` (a YAML date is accepted); ``ValueError`` otherwise."""
    import datetime as dt

    if value is None or isinstance(value, dt.date):
        return value.isoformat()[:10] if value is not None else None
    text = str(value).strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise ValueError("must be a real date YYYY-MM-DD")


def _submodel(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    field = model.model_fields.get(name)
    if field is None:
        return None
    ann = field.annotation
    candidates = [ann, *getattr(ann, "__args__", ())]
    for c in candidates:
        for inner in (c, *getattr(c, "__args__", ())):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] | None = Recipe
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        model = _submodel(model, part)
    return list(model.model_fields) if model is not None else []


def _format_error(err: dict[str, Any], source: str) -> str:
    loc = tuple(err["loc"])
    path = ".".join(str(p) for p in loc) or "<root>"
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _fields_at(loc), n=1, cutoff=0.5)
        hint = f" -- did you mean '{'.'.join([*map(str, loc[:-1]), close[0]])}'?" if close else ""
        return f"{source}: unknown key '{path}'{hint}"
    if err["type"] == "missing":
        return f"{source}: missing required key '{path}'"
    got = err.get("input")
    got_s = f", got {got!r}" if not isinstance(got, (dict, list)) else ""
    msg = err["msg"].replace("\n", " ")
    return f"{source}: key '{path}': {msg}{got_s}"


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``key.path=value`` into the key path and the YAML-parsed value."""
    if "=" not in item:
        raise FintuneError(f"--set {item!r}: expected key.path=value", "e.g. --set lora_r=8")
    key, raw = item.split("=", 1)
    if not key.strip():
        raise FintuneError(f"--set {item!r}: empty key")
    try:
        value = load_yaml_text(raw, f"--set {key.strip()}") if raw.strip() else ""
    except FintuneError as exc:
        if "invalid YAML" not in exc.message:  # size / duplicate-key errors stand; unparsable text is a string
            raise
        value = raw
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``--set key.path=value`` overrides to a raw recipe dict (in place; returns it)."""
    for item in overrides or []:
        keys, value = parse_override(item)
        node: Any = raw
        for i, k in enumerate(keys[:-1]):
            if isinstance(node, list):
                try:
                    node = node[int(k)]
                except (ValueError, IndexError):
                    raise FintuneError(f"--set {item}: '{'.'.join(keys[:i + 1])}' is not a valid list index") from None
                continue
            if not isinstance(node, dict):
                raise FintuneError(f"--set {item}: '{'.'.join(keys[:i])}' is {_kind(node)}, not a mapping",
                                   f"set '{'.'.join(keys[:i])}' itself, e.g. --set {'.'.join(keys[:i])}=VALUE")
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            node = nxt
        last = keys[-1]
        if isinstance(node, list):
            try:
                node[int(last)] = value
            except (ValueError, IndexError):
                raise FintuneError(f"--set {item}: '{last}' is not a valid list index") from None
        elif isinstance(node, dict):
            node[last] = value
        else:
            parent = ".".join(keys[:-1])
            raise FintuneError(f"--set {item}: '{parent}' is {_kind(node)}, not a mapping",
                               f"set '{parent}' itself, e.g. --set {parent}=VALUE")
    return raw


def _kind(value: Any) -> str:
    return f"a {type(value).__name__} ({value!r})"


def resolve_recipe_path(name_or_path: str | Path) -> Path:
    """A path as given, or a shipped recipe name (``smollm2-135m/fpb_lora``)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    shipped = RECIPES_DIR / (str(name_or_path).removesuffix(".yaml") + ".yaml")
    if shipped.exists():
        return shipped
    names = [n for n in list_recipes()]
    close = difflib.get_close_matches(str(name_or_path), names, n=1, cutoff=0.4)
    hint = f"did you mean '{close[0]}'?" if close else "see `fintune recipes ls`"
    raise FintuneError(f"recipe not found: {name_or_path}", hint)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed recipe (recursively).

    Shipped recipes point at data as ``${FINTUNE_DATA:-../shared/data}/financial_phrasebank`` so one file works on
    every machine. An unset variable without a default is an error (a silently empty path would be wrong).
    """
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    if not isinstance(value, str):
        return value

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise FintuneError(f"recipe refers to ${{{name}}} but it is not set", f"export {name}=... or use ${{{name}:-default}}")
        return default

    return _ENV_REF.sub(repl, value)


def load_recipe_dict(path: str | Path) -> dict[str, Any]:
    """Read a recipe YAML file into a dict (``${VAR:-default}`` expanded), with a one-line error for bad YAML."""
    path = Path(path)
    if path.is_dir():
        names = sorted(p.name for p in path.glob("*.yaml"))[:3]
        raise FintuneError(f"{path}: is a directory, not a recipe file",
                           f"give a .yaml file{' such as ' + str(path / names[0]) if names else ''}")
    raw = load_yaml(path)
    if raw is None:
        raise FintuneError(f"{path}: empty recipe")
    if not isinstance(raw, dict):
        raise FintuneError(f"{path}: a recipe is a mapping of keys to values, got {type(raw).__name__}")
    try:
        return expand_env(raw)
    except FintuneError as exc:
        raise FintuneError(f"{path}: {exc.message}", exc.hint) from None


def validate_recipe_dict(raw: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate a raw dict; the first problem becomes a one-line :class:`FintuneError` naming the key path."""
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        first = _format_error(errors[0], source)
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise FintuneError(first + more) from None


def load_recipe(name_or_path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Load, override and validate a recipe (path or shipped name)."""
    path = resolve_recipe_path(name_or_path)
    raw = apply_overrides(load_recipe_dict(path), overrides)
    return validate_recipe_dict(raw, str(path))


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The fully resolved recipe (defaults filled in), JSON-ready, for manifests."""
    return recipe.model_dump(mode="json")


# ---------------------------------------------------------------- `fintune recipes ls | cp | validate`


def list_recipes() -> list[str]:
    """Names of the shipped recipes (``model/task_method``), sorted."""
    if not RECIPES_DIR.exists():
        return []
    return sorted(str(p.relative_to(RECIPES_DIR).with_suffix("")) for p in RECIPES_DIR.rglob("*.yaml"))


def launch_command(path: str | Path) -> str | None:
    """The launch command from a recipe's top comment (``# Launch: fintune train ...``), if any."""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if line.lower().startswith("# launch:"):
            return line.split(":", 1)[1].strip()
    return None


def recipes_ls() -> list[dict[str, str]]:
    """Shipped recipes with their description and launch command (what ``fintune recipes ls`` prints)."""
    rows = []
    for name in list_recipes():
        path = RECIPES_DIR / f"{name}.yaml"
        raw = load_recipe_dict(path)
        rows.append({"name": name, "description": str(raw.get("description", "")),
                     "launch": launch_command(path) or ""})
    return rows


def recipes_cp(name: str, dest: str | Path) -> Path:
    """Copy a shipped recipe to ``dest`` (a file, or a directory to copy into) for editing."""
    src = resolve_recipe_path(name)
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / src.name
    if dest.exists():
        raise FintuneError(f"{dest}: already exists", "choose another destination or remove it first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def recipes_validate(paths: list[str] | None = None) -> list[tuple[str, str | None]]:
    """Validate recipes (all shipped ones when no path is given): ``[(path, error or None)]``."""
    targets = [Path(p) for p in paths] if paths else [RECIPES_DIR / f"{n}.yaml" for n in list_recipes()]
    results = []
    for path in targets:
        try:
            load_recipe(path)
            if not launch_command(path):
                raise FintuneError(f"{path}: no '# Launch: ...' comment on top",
                                   "add the command that runs this recipe as the first comment")
            results.append((str(path), None))
        except FintuneError as exc:
            results.append((str(path), exc.one_line()))
    return results
