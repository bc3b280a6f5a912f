"""``fintune report``: sections present, everything embedded and escaped, numbers from the runs, bad input."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fintune.artifacts import write_manifest
from fintune.cli import main
from fintune.errors import FintuneError
from fintune.records import Prediction, write_jsonl
from fintune.report.html import build_report
from fintune.report.runs import discover_runs

ROOT = Path(__file__).resolve().parents[2]


class _Refs(HTMLParser):
    """Collect every tag and URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.section_ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "poster", "data") and value is not None:
                self.urls.append((tag, name, value))
            if tag == "section" and name == "id":
                self.section_ids.append(str(value))


def _parse(page: str) -> _Refs:
    refs = _Refs()
    refs.feed(page)
    return refs


@pytest.fixture(scope="module")
def demo_report(demo_run, tmp_path_factory) -> tuple[str, Path]:
    out, _ = demo_run
    path = build_report([out], tmp_path_factory.mktemp("rep") / "report", title="test <report>",
                        bootstrap_samples=50)
    return path.read_text(encoding="utf-8"), path


def test_every_section_present_and_nothing_external(demo_report) -> None:
    page, path = demo_report
    refs = _parse(page)
    assert refs.section_ids == ["answers", "overview", "dataset", "training", "metrics", "diagnostics", "examples",
                                "analyze", "backtest", "manifests"]
    answers = page.split("id='answers'")[1].split("</section>")[0]
    for question in ("Did fine-tuning help?", "Is it calibrated?", "Would it have made money?", "What to run next"):
        assert question in answers
    assert "oracle" in answers and "flipped" in answers and "random labels" in answers
    assert "TF-IDF + logistic regression" in answers and "fintune demo --data DIR" in answers
    assert "hard test items" in answers and "SYNTHETIC" not in answers  # build_report here passes no banner
    assert "script" not in refs.tags and "link" not in refs.tags and "iframe" not in refs.tags
    imgs = [v for tag, name, v in refs.urls if tag == "img"]
    # training curve, F1 bars, confusion + reliability + coverage (fine-tuned and zero-shot), equity, drawdown...
    assert len(imgs) >= 8
    for tag, name, value in refs.urls:
        if name == "href":
            assert value.startswith("#"), (tag, value)
        else:
            assert value.startswith("data:image/png;base64,"), (tag, value[:40])
            assert base64.b64decode(value.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "url(" not in page and "@import" not in page
    assert "test &lt;report&gt;" in page
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["stage"] == "report" and any(k.endswith("predictions.jsonl") for k in manifest["data_sha256"])
    assert not list(path.parent.parent.glob(".report.*"))  # no staging directory left behind


def test_numbers_come_from_the_runs(demo_run, demo_report) -> None:
    out, _ = demo_run
    page, _ = demo_report
    ft = json.loads((out / "eval" / "finetuned" / "metrics.json").read_text())
    tfidf = json.loads((out / "eval" / "tfidf" / "metrics.json").read_text())
    lo, hi = ft["classification"]["ci95"]["f1_weighted"]
    assert f"{ft['f1_weighted']:.3f} <span class='ci'>[{lo:.3f}, {hi:.3f}]</span>" in page
    assert f"{tfidf['accuracy']:.3f}" in page
    assert f"{ft['calibration']['ece_after']:.3f}" in page
    bt = json.loads((out / "backtest" / "metrics.json").read_text())
    assert f"{100 * bt['strategy']['total_return']:.1f}%" in page
    data = json.loads((out / "data" / "manifest.json").read_text())
    assert f"<td>test</td><td>{data['counts']['test']:,d}</td>" in page
    for name in ("zero-shot base model", "TF-IDF + logistic regression", "majority class", "Paired differences"):
        assert name in page


def test_examples_show_text_gold_and_probabilities(demo_run, demo_report) -> None:
    out, _ = demo_run
    page, _ = demo_report
    preds = [json.loads(line) for line in (out / "eval" / "finetuned" / "predictions.jsonl").read_text().splitlines()]
    texts = {json.loads(line)["id"]: json.loads(line)["text"]
             for line in (out / "synth" / "examples.jsonl").read_text().splitlines()}
    top = max(preds, key=lambda p: p["confidence"])
    import html

    assert html.escape(texts[top["id"]]) in page
    assert "right, most confident" in page and "wrong, most confident" in page
    assert f"{top['probabilities'][top['label']]:.2f}</span>" in page
    headlines = [json.loads(line)["text"] for line in (out / "analyze" / "headlines.jsonl").read_text().splitlines()]
    assert all(html.escape(h) in page for h in headlines)


def _analyze_run(tmp_path: Path, text: str) -> Path:
    run = tmp_path / "an"
    run.mkdir()
    write_jsonl(run / "headlines.jsonl", [{"id": "x1", "text": text, "ticker": "ABC"}])
    write_jsonl(run / "predictions.jsonl", [Prediction(id="x1", label="negative", ticker="ABC", confidence=0.7,
                                                       probabilities={"negative": 0.7, "neutral": 0.2,
                                                                      "positive": 0.1})])
    write_manifest(run, "analyze", recipe={"input": "headlines.jsonl"}, model="m</b>")
    return run


def test_text_is_escaped_and_only_present_sections_render(tmp_path: Path) -> None:
    run = _analyze_run(tmp_path, "<script>alert('x')</script> & <img src=http://evil.example/x.png>")
    page = build_report([run], tmp_path / "rep").read_text()
    refs = _parse(page)
    assert refs.section_ids == ["overview", "analyze", "manifests"]
    assert "script" not in refs.tags and not [u for u in refs.urls if "evil" in u[2]]
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;img src=http://evil.example/x.png&gt;" in page
    assert "m&lt;/b&gt;" in page


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FintuneError, match="not a directory"):
        discover_runs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FintuneError, match="no fintune run found"):
        discover_runs([tmp_path / "empty"])
    ev = tmp_path / "ev"
    ev.mkdir()
    write_manifest(ev, "eval")
    with pytest.raises(FintuneError, match=r"an eval run .* without \['metrics.json', 'predictions.jsonl'\]"):
        discover_runs([ev])
    (ev / "metrics.json").write_text('{"n": 3,\n "oops"}')
    (ev / "predictions.jsonl").write_text("")
    with pytest.raises(FintuneError, match=r"metrics.json:2: invalid JSON"):
        discover_runs([ev])
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no fintune run found" in err and not (tmp_path / "o").exists()


def test_out_cannot_be_a_reported_run(tmp_path: Path) -> None:
    run = _analyze_run(tmp_path, "Fine quarter")
    with pytest.raises(FintuneError, match="is the run"):
        build_report([run], run, overwrite=True)


def test_cli_report(demo_run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = demo_run
    assert main(["report", str(out / "eval" / "tfidf"), str(out / "backtest"), "--out", str(tmp_path / "r"),
                 "--bootstrap-samples", "0"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'r' / 'report.html'}"
    page = (tmp_path / "r" / "report.html").read_text()
    assert _parse(page).section_ids == ["answers", "overview", "metrics", "diagnostics", "backtest", "manifests"]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_render_script_makes_a_png(demo_report, tmp_path: Path) -> None:
    _, path = demo_report
    png = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "render_report.py"), str(path), "--out", str(png),
                           "--height", "1600"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") == 1280
