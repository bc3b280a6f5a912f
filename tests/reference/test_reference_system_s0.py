"""S0, the Llama-3.2-3B-Instruct QLoRA sentiment analyser, end to end as its users run it, on a tiny random Llama.

The shipped recipe ``llama-3.2-3b/sentiment_qlora`` runs unchanged but for the model (``model_name_or_path``) and
sizes (synthetic rows, examples per split, steps, fp32 on CPU): ``fintune data`` -> ``fintune train`` (QLoRA through
bitsandbytes) -> ``fintune eval`` (generate, the recipe's mode) -> ``fintune analyze`` on dated, tickered StockNet
tweets -> ``fintune backtest`` against buy-and-hold on StockNet prices. Each stage's manifest must point at the
previous stage's output, so skipping or faking a stage fails the test.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from tests.reference.reference_chain import jsonl, manifest, run_verb, sets
from tests.reference.reference_models import make_reference_model_dir

from fintune.artifacts import sha256_file

RECIPE = "llama-3.2-3b/sentiment_qlora"
SEED_LABELS = ["BEARISH", "NEUTRAL", "BULLISH"]


def _news_csv(stocknet: Path, out: Path) -> Path:
    """A text,ticker,date CSV of real StockNet tweets (AAPL and MSFT, first half of October 2015)."""
    from fintune.data.stocknet import load_stocknet_tweets

    tweets = [t for t in load_stocknet_tweets(stocknet, ["AAPL", "MSFT"]) if "2015-10-01" <= t.date <= "2015-10-16"]
    picked = tweets[:: max(1, len(tweets) // 12)][:12]
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "ticker", "date"])
        writer.writerows([t.id, t.text, t.ticker, t.date] for t in picked)
    return out


@pytest.mark.shared
def test_reference_system_s0_llama32_qlora_sentiment_to_backtest(tmp_path: Path, shared_data: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bitsandbytes")
    monkeypatch.setenv("FINTUNE_DATA", str(shared_data))  # the recipe reads ${FINTUNE_DATA:-../shared/data}
    model = make_reference_model_dir(tmp_path, "llama", "llama3.2", seed=5)
    size = [f"model_name_or_path={model}", "dtype=float32", "bf16=false", "bnb_4bit_compute_dtype=float32",
            "data.sources.0.options.n=40", "data.max_train_examples=16", "data.max_eval_examples=4"]
    data, run, ev = tmp_path / "data", tmp_path / "run", tmp_path / "eval"
    preds, bt = tmp_path / "analyze" / "predictions.jsonl", tmp_path / "backtest"

    # 1. data: synthetic scenarios + PhraseBank, in the seed's BEARISH/NEUTRAL/BULLISH vocabulary, date pinned
    run_verb(capsys, "data", RECIPE, "--out", str(data), *sets(*size))
    dm = manifest(data)
    assert dm["stage"] == "data" and [s["name"] for s in dm["sources"]] == ["synth", "phrasebank"]
    assert dm["labels"] == SEED_LABELS and dm["template_date"] == "26 Jul 2024"
    assert dm["canonical_labels"] == {"BEARISH": "negative", "NEUTRAL": "neutral", "BULLISH": "positive"}
    from fintune.data.prepare import read_prepared

    train_rows = read_prepared(data)["train"]
    assert all("Today Date: 26 Jul 2024" in r["prompt"] for r in train_rows)
    assert all(r["completion"].startswith(f"SENTIMENT: {r['label']}") for r in train_rows)

    # 2. train: QLoRA (4-bit NF4 base through bitsandbytes) on the prepared data
    run_verb(capsys, "train", RECIPE, "--out", str(run), *sets(
        *size, f"data.prepared={data}", "max_steps=2", "per_device_train_batch_size=2",
        "gradient_accumulation_steps=1", "logging_steps=1"))
    tm = manifest(run)
    assert tm["stage"] == "train" and tm["data_dir"] == str(data) and tm["base_model"] == str(model)
    assert tm["recipe"]["method"] == "qlora" and tm["recipe"]["bnb_4bit_use_double_quant"] is True
    assert tm["training"]["global_step"] == 2 and (run / "adapter_model.safetensors").is_file()
    assert tm["labels"] == SEED_LABELS

    # 3. eval: the recipe's generate mode, strict parsing of SENTIMENT / CONFIDENCE / ANALYSIS
    run_verb(capsys, "eval", str(run), "--data", str(data), "--out", str(ev), "--mode", "generate",
             "--max-new-tokens", "12", "--bootstrap-samples", "0", "--no-progress")
    em = manifest(ev)
    assert em["parent_run"] == str(run) and em["recipe"]["data"] == str(data)
    assert em["data_sha256"][str(data / "test.parquet")] == sha256_file(data / "test.parquet")
    eval_preds = jsonl(ev / "predictions.jsonl")
    assert len(eval_preds) == dm["counts"]["test"]
    assert {p["label"] for p in eval_preds} <= {*SEED_LABELS, "invalid"} and all(p["raw_output"] for p in eval_preds)

    # 4. analyze: dated, tickered news (real StockNet tweets) through the trained run
    news = _news_csv(shared_data / "stocknet", tmp_path / "news.csv")
    run_verb(capsys, "analyze", "--model", str(run), "--file", str(news), "--out", str(preds), "--no-progress")
    am = manifest(preds)
    assert am["parent_run"] == str(run) and am["data_sha256"] == {str(news): sha256_file(news)}
    rows = jsonl(preds)
    assert len(rows) == 12 and {r["ticker"] for r in rows} == {"AAPL", "MSFT"}
    assert all(r["label"] in SEED_LABELS and abs(sum(r["probabilities"].values()) - 1) < 1e-6 for r in rows)
    one = json.loads(run_verb(capsys, "analyze", "Apple reports record Q4 earnings", "--model", str(run)))
    canonical = {"BEARISH": "negative", "NEUTRAL": "neutral", "BULLISH": "positive"}
    assert one["label"] in SEED_LABELS and one["sentiment"] == canonical[one["label"]]

    # 5. backtest: the analyzed signals against buy-and-hold on StockNet prices
    run_verb(capsys, "backtest", "--predictions", str(preds), "--prices", str(shared_data / "stocknet" / "price_raw"),
             "--out", str(bt), "--strategy", "long_short", "--sizing", "confidence", "--benchmark", "AAPL",
             "--bootstrap-samples", "0")
    bm = manifest(bt)
    assert bm["recipe"]["predictions"] == str(preds) and bm["data_sha256"][str(preds)] == sha256_file(preds)
    metrics = json.loads((bt / "metrics.json").read_text())
    assert metrics["signals"]["predictions"] == metrics["signals"]["used"] == 12
    assert {"buy_and_hold_universe", "buy_and_hold_AAPL"} <= set(metrics["benchmarks"])
    assert metrics["strategy"]["n_trades"] > 0
