"""``fintune synth``: grammar integrity, balance, diversity, determinism, prices without look-ahead, loaders, CLI."""

from __future__ import annotations

import csv
import json
import math
import random
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from fintune.data import synth_grammar as G
from fintune.data.synth import (
    DRIFT_WEIGHTS,
    SynthParams,
    distinct_ngram_ratio,
    generate_synth,
    label_counts,
    load_synth_source,
    synth_prices,
    write_synth,
)
from fintune.errors import FintuneError
from fintune.labels import SENTIMENT
from fintune.recipe import SourceConfig
from fintune.records import read_examples


@pytest.fixture(scope="module")
def big() -> tuple[list, list]:
    return generate_synth(SynthParams(n=1500, seed=3))


def test_every_template_fills_for_every_label_and_company() -> None:
    r = random.Random(0)
    universe = [{"name": f"{root} X", "ticker": "ABCD", "sector": s} for root, s in zip(G.COMPANY_ROOTS, G.SECTORS, strict=False)]
    for scenario in G.SCENARIOS:
        for label in SENTIMENT:
            for company in universe:
                facts = G.scenario_facts(r, company, label, r.random())
                for t in (*G.HEADLINES[scenario][label], *G.DETAILS[scenario][label], *G.ANALYSES[scenario][label]):
                    out = t.format(**facts)
                    assert "{" not in out and "}" not in out
    for label, pairs in G.MIXED.items():
        for text, analysis in pairs:
            facts = G.scenario_facts(r, universe[0], label, 0.5)
            assert "{" not in text.format(**facts) + analysis.format(**facts)


def test_label_balance_exact_and_configurable() -> None:
    examples, _ = generate_synth(SynthParams(n=600, seed=1))
    assert {lab: sum(e.label == lab for e in examples) for lab in SENTIMENT} == dict.fromkeys(SENTIMENT, 200)
    skewed, _ = generate_synth(SynthParams(n=101, seed=1, balance={"positive": 1, "negative": 1, "neutral": 2}))
    counts = {lab: sum(e.label == lab for e in skewed) for lab in SENTIMENT}
    assert counts == label_counts(101, {"positive": 1, "negative": 1, "neutral": 2}) and sum(counts.values()) == 101
    assert counts["neutral"] in (50, 51) and abs(counts["positive"] - counts["negative"]) <= 1


def test_diversity_distinct_ngrams_and_no_duplicates(big: tuple[list, list]) -> None:
    examples, _ = big
    texts = [e.text for e in examples]
    assert len(set(texts)) == len(texts)
    # measured 0.24 / 0.39 at n=1500 (seed 3); a template-only grammar without slots would score far lower
    assert distinct_ngram_ratio(texts, 2) > 0.2
    assert distinct_ngram_ratio(texts, 3) > 0.35
    tricky = {f"tricky-{kind}" for cases in G.TRICKY.values() for _, _, kind in cases}
    assert tricky == {"tricky-negation", "tricky-hedge", "tricky-entity", "tricky-numbers"}
    assert {e.extra["scenario"] for e in examples} == {*G.SCENARIOS, "mixed", *tricky}
    # entity swaps: the same template words carry opposite labels with the companies' roles swapped
    pos = {t for t, _, k in G.TRICKY["positive"] if k == "entity"}
    neg = {t for t, _, k in G.TRICKY["negative"] if k == "entity"}
    assert {t.replace("{cotk}", "A").replace("{rival}", "B") for t in pos} == \
        {t.replace("{cotk}", "B").replace("{rival}", "A") for t in neg}
    hedged = [t for t in texts if any(h in t for h in (*G.HEDGES, *G.SOURCES))]
    assert hedged, "hedged phrasing ('reportedly', 'according to people familiar...') never drawn"


def test_schema_expected_move_confidence_and_hard_cases(big: tuple[list, list]) -> None:
    examples, universe = big
    tickers = {c["ticker"] for c in universe}
    normal = [e for e in examples if not e.extra["hard"]]
    assert abs(sum(e.extra["hard"] for e in examples) / len(examples) - 0.3) < 0.01
    hard = [e for e in examples if e.extra["scenario"] == "mixed"]  # mixed news: lower confidence, smaller moves
    for e in examples:
        assert e.source == "synth" and e.id.startswith("synth-") and date.fromisoformat(e.date).weekday() < 5
        assert set(e.extra) >= {"confidence", "analysis", "expected_move", "scenario"}
        assert 0.0 < e.extra["confidence"] <= 1.0 and e.extra["analysis"]
        move = e.extra["expected_move"]
        if e.label == "positive":
            assert move > 0
        elif e.label == "negative":
            assert move < 0
        else:
            assert abs(move) <= 0.8
        if e.extra["scenario"] == "macro":
            assert e.ticker is None
        else:
            assert e.ticker in tickers and e.extra["company"] in e.text
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert mean([e.extra["confidence"] for e in hard]) < mean([e.extra["confidence"] for e in normal]) - 0.15
    for lab in ("positive", "negative"):
        nh = [e for e in normal if e.label == lab]
        hh = [e for e in hard if e.label == lab]
        assert mean([abs(e.extra["expected_move"]) for e in hh]) < mean([abs(e.extra["expected_move"]) for e in nh])
        rho = np.corrcoef(np.argsort(np.argsort([e.extra["strength"] for e in nh])),
                          np.argsort(np.argsort([abs(e.extra["expected_move"]) for e in nh])))[0, 1]
        assert rho > 0.8, "expected move should grow with the news' strength"


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = write_synth(tmp_path / "a", SynthParams(n=200, seed=7), prices=True)
    b = write_synth(tmp_path / "b", SynthParams(n=200, seed=7), prices=True)
    c = write_synth(tmp_path / "c", SynthParams(n=200, seed=8), prices=True)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != "manifest.json")
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "examples.jsonl").read_bytes() != (c / "examples.jsonl").read_bytes()
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["n"] == 200 and manifest["stage"] == "synth"
    assert manifest["balance"] == {"negative": 67, "neutral": 67, "positive": 66}
    assert "examples.jsonl" in manifest["data_sha256"] and manifest["prices"]["rows_per_ticker"] > 30


def _read_prices(directory: Path) -> dict[str, list[dict[str, str]]]:
    out = {}
    for path in sorted(directory.glob("*.csv")):
        with path.open() as fh:
            out[path.stem] = list(csv.DictReader(fh))
    return out


def test_prices_stocknet_layout_business_days_and_no_lookahead(tmp_path: Path) -> None:
    params = SynthParams(n=1200, seed=5)
    out = write_synth(tmp_path / "s", params, prices=True)
    header = (out / "prices" / next(iter(sorted(p.name for p in (out / "prices").iterdir())))).read_text()
    assert header.splitlines()[0] == "Date,Open,High,Low,Close,Adj Close,Volume"
    prices = _read_prices(out / "prices")
    examples = read_examples(out / "examples.jsonl")
    assert set(prices) == {e.ticker for e in examples if e.ticker}
    after_open, gap, same_day = [], [], []
    for ticker, rows in prices.items():
        days = [r["Date"] for r in rows]
        assert days == sorted(set(days)) and all(date.fromisoformat(d).weekday() < 5 for d in days)
        o, h, lo, c = (np.array([float(r[k]) for r in rows]) for k in ("Open", "High", "Low", "Close"))
        assert (lo > 0).all() and (h >= np.maximum(o, c) - 1e-9).all() and (lo <= np.minimum(o, c) + 1e-9).all()
        assert all(int(r["Volume"]) > 0 for r in rows)
        pos = {d: k for k, d in enumerate(days)}
        for e in examples:
            if e.ticker == ticker:
                k = pos[e.date]
                assert k + len(DRIFT_WEIGHTS) < len(days), "every item needs its drift days in the calendar"
                move = e.extra["expected_move"]
                after_open.append((move, np.log(c[k + len(DRIFT_WEIGHTS)] / o[k + 1])))  # tradable at open t+1
                gap.append((move, np.log(o[k + 1] / c[k])))  # close t -> open t+1: not tradable on the news
                if k > 0:
                    same_day.append((move, np.log(c[k] / c[k - 1])))
    ao, gp, sd = np.array(after_open).T, np.array(gap).T, np.array(same_day).T
    assert np.corrcoef(ao)[0, 1] > 0.25, "news dated t must move the price after the open of t+1"
    assert abs(np.corrcoef(gp)[0, 1]) < 0.1, "news must not move the untradable overnight gap"
    assert abs(np.corrcoef(sd)[0, 1]) < 0.1, "news must not move day t (look-ahead)"
    # buying at the open of t+1 in the label's direction earns money; the gap and day t carry nothing
    assert (np.sign(ao[0]) * ao[1]).mean() > 0.005
    assert abs((np.sign(gp[0]) * gp[1]).mean()) < 0.002 and abs((np.sign(sd[0]) * sd[1]).mean()) < 0.002


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_demo_backtest_rewards_skill_not_luck(tmp_path: Path, seed: int) -> None:
    """With the demo's own strategy settings and costs, on the demo's chronological test period: the gold-label
    oracle earns a clearly positive Sharpe, the flipped oracle a clearly negative one, random labels about zero."""
    from fintune.data.splits import chronological_split
    from fintune.demo import DEMO_STRATEGY, FULL
    from fintune.records import Prediction
    from fintune.reference_signals import reference_backtests

    out = write_synth(tmp_path / "s", SynthParams(n=FULL.n_examples, seed=seed), prices=True)
    _, test = chronological_split(read_examples(out / "examples.jsonl"), 0.3)
    preds = [Prediction(id=e.id, label="neutral", ticker=e.ticker, date=e.date, gold=e.label) for e in test
             if e.ticker]
    ref = reference_backtests(preds, out / "prices", DEMO_STRATEGY, n_random=60, seed=seed)
    assert ref["oracle"]["sharpe"] > 3 and ref["oracle"]["total_return"] > 0.05
    assert ref["flipped"]["sharpe"] < -3 and ref["flipped"]["total_return"] < -0.05
    assert abs(ref["random"]["sharpe_median"]) < 1.5
    assert ref["random"]["sharpe_p05"] < ref["random"]["sharpe_median"] < ref["random"]["sharpe_p95"] \
        < ref["oracle"]["sharpe"]


def test_prices_readable_by_backtest_loader(tmp_path: Path) -> None:
    prices_mod = pytest.importorskip("fintune.prices")
    out = write_synth(tmp_path / "s", SynthParams(n=120, seed=2, n_tickers=3), prices=True)
    frame = prices_mod.load_prices(out / "prices")
    assert set(frame["ticker"]) == {p.stem for p in (out / "prices").glob("*.csv")}
    assert len(frame) == 3 * json.loads((out / "manifest.json").read_text())["prices"]["rows_per_ticker"]


def test_macro_news_moves_every_ticker_next_day() -> None:
    params = SynthParams(n=900, seed=11, scenarios=("macro", "corporate"))
    examples, universe = generate_synth(params)
    table = synth_prices(examples, universe, params)
    days = [r[0] for r in next(iter(table.values()))]
    avg_ret = np.mean([np.diff(np.log([r[4] for r in rows])) for rows in table.values()], axis=0)
    pos = {d: k for k, d in enumerate(days)}
    # the drift days' returns (close t -> close t+3) of the average ticker
    drift = np.array([avg_ret[pos[e.date]:pos[e.date] + 3].sum() for e in examples if e.ticker is None])
    pairs = np.array([[e.extra["expected_move"] for e in examples if e.ticker is None], drift])
    assert np.corrcoef(pairs)[0, 1] > 0.3


def test_not_copied_from_real_news(shared_data: Path) -> None:
    from fintune.data.leakage import near_duplicate_pairs

    lines = (shared_data / "financial_phrasebank" / "Sentences_50Agree.txt").read_text(encoding="latin-1")
    real = [line.rsplit("@", 1)[0] for line in lines.splitlines() if "@" in line]
    assert len(real) > 4000
    examples, _ = generate_synth(SynthParams(n=600, seed=0))
    assert near_duplicate_pairs([e.text for e in examples], real, 0.6) == []


def test_load_synth_source_options_path_and_errors(tmp_path: Path) -> None:
    generated = load_synth_source(SourceConfig(name="synth", options={"n": 30, "seed": 4}), "sentiment", None)
    assert len(generated) == 30 and [e.text for e in generated] == [e.text for e in generate_synth(
        SynthParams(n=30, seed=4))[0]]
    out = write_synth(tmp_path / "s", SynthParams(n=40, seed=1))
    from_dir = load_synth_source(SourceConfig(name="synth", path=str(out)), "sentiment", SENTIMENT)
    assert [e.id for e in from_dir] == [e.id for e in read_examples(out / "examples.jsonl")]
    with pytest.raises(FintuneError, match=r"unknown synth option\(s\) \['nn'\]"):
        load_synth_source(SourceConfig(name="synth", options={"nn": 3}), "sentiment", None)
    with pytest.raises(FintuneError, match=r"options.n: expected int"):
        load_synth_source(SourceConfig(name="synth", options={"n": "many"}), "sentiment", None)
    with pytest.raises(FintuneError, match="not task 'ner'"):
        load_synth_source(SourceConfig(name="synth"), "ner", None)
    with pytest.raises(FintuneError, match="declares"):
        load_synth_source(SourceConfig(name="synth"), "sentiment", ("bearish", "bullish"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x y z", "label": "positive"}\n{"id": "b", "text": "x", "label": "meh"}\n')
    with pytest.raises(FintuneError, match=r"record 2 .*unknown label 'meh'"):
        load_synth_source(SourceConfig(name="synth", path=str(bad)), "sentiment", None)


def test_registry_dispatches_to_synth() -> None:
    registry = pytest.importorskip("fintune.data.registry")
    got = registry.load_source(SourceConfig(name="synth", options={"n": 12}, limit=5), "sentiment", None)
    assert len(got) == 5 and all(e.source == "synth" for e in got)


@pytest.mark.parametrize(("params", "match"), [
    (SynthParams(n=0), "n must be >= 1"),
    (SynthParams(balance={"bullish": 1.0}), "unknown label"),
    (SynthParams(balance={"positive": 0.0}), "positive sum"),
    (SynthParams(hard_fraction=1.5), "hard_fraction"),
    (SynthParams(scenarios=("weather",)), "unknown or empty scenarios"),
    (SynthParams(start="2023-13-01"), "not a YYYY-MM-DD"),
    (SynthParams(n_tickers=math.inf), "n_tickers"),  # type: ignore[arg-type]
])
def test_bad_params_one_line_errors(params: SynthParams, match: str) -> None:
    with pytest.raises(FintuneError, match=match) as info:
        generate_synth(params)
    assert "\n" not in str(info.value)


def test_cli_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fintune.cli import main

    assert main(["synth", "--n", "60", "--seed", "2", "--out", str(tmp_path / "o"), "--prices", "--tickers", "3"]) == 0
    assert len(read_examples(tmp_path / "o" / "examples.jsonl")) == 60
    assert len(list((tmp_path / "o" / "prices").glob("*.csv"))) == 3
    assert main(["synth", "--n", "5", "--out", str(tmp_path / "o")]) == 2  # non-empty without --overwrite
    assert main(["synth", "--n", "5", "--out", str(tmp_path / "p"), "--balance", "positive=x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not empty" in err[0] and "'positive' is not a number" in err[1]
    assert not (tmp_path / "p").exists()


def test_large_n_does_not_exhaust_the_grammar() -> None:
    examples, _ = generate_synth(SynthParams(n=6000, seed=9))
    assert len({e.text for e in examples}) == 6000
