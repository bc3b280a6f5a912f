"""``fintune augment``: guards and counts, endpoint retries / resume / limits against a real loopback HTTP server,
and the embedded default model as an offline teacher on a few real FPB rows."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fintune.data.augment import (
    AugmentParams,
    ClassifierVerifier,
    augment_examples,
    clean_output,
    greedy_unique,
    parse_label_answer,
    read_labelled,
    run_augment,
)
from fintune.data.augment_teacher import (
    EndpointTeacher,
    LocalTeacher,
    RateLimiter,
    ResponseCache,
    make_teacher,
)
from fintune.errors import FintuneError
from fintune.labels import SENTIMENT
from fintune.records import Example, read_examples, write_jsonl

# Seed texts (written for this test) and what the fake teacher answers when asked to paraphrase each.
SEED = [
    ("s1", "Norvane Systems raised its annual revenue forecast after strong cloud orders.", "positive"),
    ("s2", "Caldrix Foods reported a record quarterly profit on higher snack prices.", "positive"),
    ("s3", "Vestmoor Energy won a large offshore drilling contract worth $400 million.", "positive"),
    ("s4", "Quillon Bancorp cut its dividend after loan losses doubled.", "negative"),
    ("s5", "Arkhaven Mining halted output at its largest copper mine after a flood.", "negative"),
    ("s6", "Brismere Retail Group warned that holiday sales fell short of its plan.", "negative"),
    ("s7", "Tolvera Medical will hold its annual shareholder meeting on Tuesday.", "neutral"),
    ("s8", "Ostrane Logistics named a new chief financial officer effective next month.", "neutral"),
    ("s9", "Kelloway Software said its quarterly results will be published on Thursday.", "neutral"),
]
EVAL = [("t1", "Myrant Chemicals lowered its full-year profit outlook on weak resin demand.", "negative"),
        ("t2", "Zephora Capital completed the previously announced purchase of a small broker.", "neutral")]
PARAPHRASE = {
    "s1": "After strong cloud orders, Norvane Systems lifted its revenue outlook for the year.",   # kept
    "s2": "",                                                                                         # empty
    "s3": "I'm sorry, but I can't help with rewriting that.",                                         # unparsable
    "s4": SEED[3][1],                                                                                 # unchanged copy
    "s5": EVAL[0][1],                                                                                 # contamination
    "s6": "Brismere Retail Group said holiday sales beat its plan by a wide margin.",                # label changed
    "s7": None,                                                                                       # malformed body
    "s8": "Ostrane Logistics appointed a new finance chief, who starts next month.",                 # kept
    "s9": "Ostrane Logistics appointed a new finance chief, who starts next month.",                 # near dup of s8's
}
NEW = {"positive": "Halvix Networks doubled its order backlog and raised its margin target.",
       "negative": "Pellucor Industries recalled its pumps and withdrew its annual guidance.",
       "neutral": "Dranmoor Aerospace moved its investor day to the first week of June."}
EXTRA_PARAPHRASE: dict[str, str] = {}
# What the fake teacher answers when asked to classify a text (the verifier pass).
VERDICT = {PARAPHRASE["s1"]: "positive", PARAPHRASE["s6"]: "Positive.", PARAPHRASE["s8"]: "neutral",
           NEW["positive"]: "The sentiment is positive.", NEW["negative"]: "negative", NEW["neutral"]: "neutral",
           EVAL[0][1]: "negative"}


def _examples(rows: list[tuple[str, str, str]]) -> list[Example]:
    return [Example(id=i, text=t, label=lab, source="test") for i, t, lab in rows]


def canned_answer(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions JSON the fake teacher returns for a request body."""
    prompt = body["messages"][-1]["content"]
    if prompt.startswith("Classify"):
        text = prompt.split("Sentence: ", 1)[1]
        content: Any = VERDICT.get(text, "I am not sure.")
    elif prompt.startswith("Rewrite"):
        text = prompt.split("Sentence: ", 1)[1]
        sid = next((i for i, t, _ in SEED if t == text), None)
        if sid is None:  # a seed row from another test: a forced answer, else a light rewording
            content = EXTRA_PARAPHRASE.get(text, "Put simply, " + text[0].lower() + text[1:])
        else:
            content = PARAPHRASE[sid]
        if content is None:
            return {"id": "x", "object": "chat.completion", "choices": []}
    else:
        label = next(lab for lab in NEW if f"with {lab} sentiment" in prompt)
        content = NEW[label]
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


class FakeTeacherServer:
    """A real HTTP server on 127.0.0.1 speaking the chat-completions protocol; ``fail`` decides per request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail: Callable[[int], tuple[int, dict[str, str]] | None] = lambda n: None
        self.delay = 0.0
        self.inflight = self.max_inflight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    n = len(server.requests)
                    server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                try:
                    time.sleep(server.delay)
                    failure = server.fail(n)
                    status, headers, payload = (failure[0], failure[1], b'{"error": "boom"}') if failure else (
                        200, {}, json.dumps(canned_answer(body)).encode())
                    self.send_response(status)
                    for k, v in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with server.lock:
                        server.inflight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def generation_requests(self) -> int:
        return sum(not r["body"]["messages"][-1]["content"].startswith("Classify") for r in self.requests)


@pytest.fixture
def server() -> Iterator[FakeTeacherServer]:
    srv = FakeTeacherServer()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _teacher(url: str, **kw: Any) -> EndpointTeacher:
    opts = {"requests_per_minute": 0, "backoff_seconds": 0.01, "max_retries": 3, "timeout_seconds": 10.0, **kw}
    return EndpointTeacher("fake-teacher", base_url=url, **opts)


PARAMS = AugmentParams(paraphrases=1, new_per_label=1, verifier="teacher", seed=0)


def test_endpoint_guards_count_every_rejection(server: FakeTeacherServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINTUNE_TEACHER_API_KEY", "sk-test")
    server.fail = lambda n: (503, {}) if n < 2 else None  # two transient failures, retried transparently
    cache = ResponseCache(tmp_path / "cache")
    result = augment_examples(_examples(SEED), {"test": _examples(EVAL)}, _teacher(server.url), cache, SENTIMENT,
                              PARAMS, progress=False)
    c = result.counts
    assert c["requested"] == 12 and c["requested_by_kind"] == {"paraphrase": 9, "new": 3}
    assert c["rejected_by_reason"] == {"malformed_response": 1, "empty": 1, "unparsable": 1, "unchanged_copy": 1,
                                       "contamination": 1, "near_duplicate_seed": 0, "verifier_unparsable": 0,
                                       "label_changed": 1, "near_duplicate_new": 1}
    assert c["contamination_by_split"] == {"test": 1} and c["kept"] == 5 and c["rejected"] == 7
    assert sorted(e.text for e in result.kept) == sorted([PARAPHRASE["s1"], PARAPHRASE["s8"], *NEW.values()])
    assert c["labels_after"] == {"negative": 4, "neutral": 5, "positive": 5}
    assert all(r["path"] == "/v1/chat/completions" and r["auth"] == "Bearer sk-test" for r in server.requests)
    for ex in result.kept:
        prov = ex.extra["augment"]
        assert ex.source == "augment" and ex.id == f"aug-{prov['prompt_hash'][:16]}"
        assert prov["teacher"] == "openai:fake-teacher" and len(prov["prompt_hash"]) == 64 and prov["time"]
        assert isinstance(prov["seed"], int) and prov["verifier_label"] == ex.label
        assert (prov["parent_id"] is None) == (prov["kind"] == "new")
    flipped = next(r for r in result.rejected if r["reason"] == "label_changed")
    assert flipped["parent_id"] == "s6" and flipped["verifier_label"] == "positive"

    # Everything is cached: a rerun makes no HTTP call at all and gives the same result.
    before = len(server.requests)
    again = augment_examples(_examples(SEED), {"test": _examples(EVAL)}, _teacher(server.url), cache, SENTIMENT,
                             PARAMS, progress=False)
    assert len(server.requests) == before and again.counts["from_cache"] == 12
    assert [e.to_dict() for e in again.kept] == [e.to_dict() for e in result.kept]


def test_contamination_check_is_on_by_default_and_can_be_disabled(server: FakeTeacherServer, tmp_path: Path) -> None:
    teacher = _teacher(server.url)
    with pytest.raises(FintuneError, match="contamination check needs the eval split"):
        augment_examples(_examples(SEED), {}, teacher, ResponseCache(tmp_path / "c"), SENTIMENT, PARAMS)
    off = AugmentParams(**{**PARAMS.__dict__, "contamination_check": False})
    result = augment_examples(_examples(SEED), {}, teacher, ResponseCache(tmp_path / "c"), SENTIMENT, off,
                              progress=False)
    assert EVAL[0][1] in {e.text for e in result.kept}  # the leaked eval sentence gets through when disabled
    assert result.counts["contamination_check"] is False


def test_resume_after_endpoint_failure_keeps_cached_work(server: FakeTeacherServer, tmp_path: Path) -> None:
    server.fail = lambda n: (500, {}) if n >= 4 else None  # the endpoint dies after 4 answers
    cache = ResponseCache(tmp_path / "cache")
    params = AugmentParams(**{**PARAMS.__dict__, "verifier": "none"})
    with pytest.raises(FintuneError, match=r"failed after 3 tries \(last: HTTP 500") as info:
        augment_examples(_examples(SEED), {"test": _examples(EVAL)}, _teacher(server.url, max_retries=2,
                         concurrency=1), cache, SENTIMENT, params, progress=False)
    assert "\n" not in str(info.value) and "rerun resumes" in str(info.value)
    assert len(cache) == 4
    server.fail = lambda n: None
    before = len(server.requests)
    result = augment_examples(_examples(SEED), {"test": _examples(EVAL)}, _teacher(server.url), cache, SENTIMENT,
                              params, progress=False)
    assert len(server.requests) - before == 12 - 4 and result.counts["from_cache"] == 4


def test_unreachable_endpoint_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    teacher = _teacher(f"http://127.0.0.1:{port}/v1", max_retries=2)
    t0 = time.monotonic()
    with pytest.raises(FintuneError, match=r"failed after 3 tries \(last: ConnectError") as info:
        teacher.complete([make_request("hi")], ResponseCache(tmp_path / "c"), progress=False)
    assert "\n" not in str(info.value) and time.monotonic() - t0 >= 0.03  # backoff 0.01 + 0.02


def make_request(text: str, seed: int = 0) -> Any:
    from fintune.data.augment_teacher import TeacherRequest

    return TeacherRequest([{"role": "user", "content": f"Write one new sentence with positive sentiment. {text}"}],
                          seed)


def test_non_retryable_error_is_not_retried(server: FakeTeacherServer, tmp_path: Path) -> None:
    server.fail = lambda n: (401, {})
    with pytest.raises(FintuneError, match=r"HTTP 401 for model 'fake-teacher'"):
        _teacher(server.url).complete([make_request("a")], ResponseCache(tmp_path / "c"), progress=False)
    assert len(server.requests) == 1


def test_429_with_retry_after_then_success(server: FakeTeacherServer, tmp_path: Path) -> None:
    server.fail = lambda n: (429, {"Retry-After": "0"}) if n == 0 else None
    out = _teacher(server.url).complete([make_request("a")], ResponseCache(tmp_path / "c"), progress=False)
    assert out[0].text == NEW["positive"] and len(server.requests) == 2


def test_concurrency_and_rate_limits(server: FakeTeacherServer, tmp_path: Path) -> None:
    server.delay = 0.05
    _teacher(server.url, concurrency=2).complete([make_request(str(i), i) for i in range(8)],
                                                 ResponseCache(tmp_path / "c"), progress=False)
    assert server.max_inflight <= 2
    limiter, t0 = RateLimiter(requests_per_minute=600), time.monotonic()  # one start per 0.1 s
    for _ in range(4):
        limiter.wait()
    assert time.monotonic() - t0 >= 0.29


def test_missing_base_url_and_bad_teacher_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINTUNE_TEACHER_BASE_URL", raising=False)
    with pytest.raises(FintuneError, match="FINTUNE_TEACHER_BASE_URL"):
        make_teacher("openai:gpt-x")
    with pytest.raises(FintuneError, match="missing model name"):
        make_teacher("openai:")
    assert isinstance(make_teacher("smollm2-135m"), LocalTeacher)


def test_local_teacher_loads_through_the_loader_it_is_given() -> None:
    from fintune.data.augment_teacher import load_local_model

    calls: list[str] = []
    teacher = make_teacher("local:my-run", loader=lambda name: calls.append(name) or ("model", "tok"))
    assert teacher.load() == ("model", "tok") and teacher.load() == ("model", "tok") and calls == ["my-run"]
    assert make_teacher("smollm2-135m").loader is load_local_model  # data's own: transformers, no fintune.models


def test_seed_set_with_unknown_label_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "seed.jsonl"
    path.write_text('{"id": "a", "text": "Profit rose.", "label": "positive"}\n\n'
                    '{"id": "b", "text": "Profit fell.", "label": "bullish"}\n')
    with pytest.raises(FintuneError, match=rf"{path}:3: field 'label': unknown label 'bullish'"):
        read_labelled(path, SENTIMENT)


def test_clean_output_and_label_answers() -> None:
    p = AugmentParams()
    assert clean_output('Rewritten sentence: "Profit at Norvane rose 5% in Q2."\nHope this helps!', p) == (
        "Profit at Norvane rose 5% in Q2.", None)
    assert clean_output("1. Caldrix shares slid after the recall.", p) == ("Caldrix shares slid after the recall.", None)
    assert clean_output("   \n ", p) == (None, "empty")
    assert clean_output(None, p) == (None, "malformed_response")
    assert clean_output("As an AI language model I cannot do that.", p)[1] == "unparsable"
    assert clean_output("ok", p)[1] == "unparsable"
    assert clean_output("x " * 300, p)[1] == "unparsable"
    assert clean_output("Profit rose 5%.  ", p, source_text="profit rose 5%")[1] == "unchanged_copy"
    assert clean_output("Rewrite this financial news sentence with different wording:", p)[1] == "unparsable"
    assert clean_output("Here is the rewrite:\nCaldrix shares slid after the recall.", p)[0] == (
        "Caldrix shares slid after the recall.")
    cut = "Sellings, A. (2006-12-15). Henrik Nyberg, the founder of Henrik Nyberg, has"
    assert clean_output(cut, p, needs_sentence_end=True)[1] == "unparsable"
    assert clean_output(cut, p, needs_sentence_end=False)[1] is None  # headline-style seeds end without a period
    assert parse_label_answer("The sentiment is Negative.", SENTIMENT) == "negative"
    assert parse_label_answer("positive or negative", SENTIMENT) is None
    assert greedy_unique(["Norvane lifted its revenue outlook for the year.",
                          "Norvane lifted its revenue outlook for the year!", "Caldrix cut its dividend."], 0.9) == [
        True, False, True]


def test_classifier_verifier_reads_labels() -> None:
    from fintune.data.synth import SynthParams, generate_synth

    examples, _ = generate_synth(SynthParams(n=600, seed=9, hard_fraction=0.0))
    verifier = ClassifierVerifier(examples[:450])
    held = examples[450:]
    accuracy = sum(p == e.label for p, e in zip(verifier.predict([e.text for e in held]), held, strict=True)) / len(held)
    assert accuracy > 0.8 and verifier.cv_accuracy is not None and verifier.cv_accuracy > 0.8
    with pytest.raises(FintuneError, match="needs >= 2 seed examples"):
        ClassifierVerifier(_examples(SEED[:1]))


def test_run_augment_writes_outputs_and_cli(server: FakeTeacherServer, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from fintune.cli import main

    write_jsonl(tmp_path / "seed.jsonl", _examples(SEED))
    write_jsonl(tmp_path / "test.jsonl", _examples(EVAL))
    monkeypatch.setenv("FINTUNE_TEACHER_BASE_URL", server.url)
    argv = ["augment", "--input", str(tmp_path / "seed.jsonl"), "--eval", str(tmp_path / "test.jsonl"),
            "--out", str(tmp_path / "aug"), "--teacher", "openai:fake-teacher", "--new-per-label", "1",
            "--verifier", "teacher", "--rpm", "0"]
    assert main(argv) == 0
    out = tmp_path / "aug"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "augment" and manifest["counts"]["kept"] == 5
    assert manifest["counts"]["rejected_by_reason"]["contamination"] == 1
    assert "sk-" not in json.dumps(manifest) and manifest["teacher"]["model"] == "fake-teacher"
    assert len(read_examples(out / "augmented.jsonl")) == 5 and len(read_examples(out / "train.jsonl")) == 14
    assert len(read_examples(out / "eval" / "test.jsonl")) == 2
    assert len([line for line in (out / "rejected.jsonl").read_text().splitlines() if line]) == 7
    assert (tmp_path / "aug.cache").is_dir()
    assert "kept 5 of 12" in capsys.readouterr().out
    assert main(argv) == 2  # non-empty --out without --overwrite
    assert main([*argv, "--overwrite"]) == 0 and "(12 from cache)" in capsys.readouterr().out


def test_prepared_dir_input_checks_its_eval_splits(server: FakeTeacherServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from fintune.data.prepare import prepare_data, prepared_examples
    from fintune.recipe import validate_recipe_dict

    recipe = validate_recipe_dict({"model_name_or_path": "unused", "data": {
        "task": "sentiment", "format": "label", "template": "chatml",
        "sources": [{"name": "synth", "options": {"n": 40, "seed": 1}}],
        "split": {"method": "stratified", "test_size": 0.25, "val_size": 0.2, "seed": 0}}})
    prepared = prepare_data(recipe, tmp_path / "prepared")
    train, test = prepared_examples(prepared, "train"), prepared_examples(prepared, "test")
    monkeypatch.setitem(EXTRA_PARAPHRASE, train[0].text, test[0].text)  # one answer leaks a test sentence
    result = run_augment(prepared, tmp_path / "aug", _teacher(server.url), params=AugmentParams(
        new_per_label=0, verifier="none"), progress=False)
    c = result.counts
    assert c["requested"] == len(train) and c["kept"] + c["rejected"] == len(train)
    assert set(c["eval_sizes"]) == {"validation", "test"} and c["contamination_by_split"] == {"test": 1}
    assert len(read_examples(tmp_path / "aug" / "eval" / "test.jsonl")) == len(test)
    assert [e.id for e in read_examples(tmp_path / "aug" / "seed.jsonl")] == [e.id for e in train]


@pytest.mark.slow
def test_embedded_default_teacher_offline_on_real_fpb(shared_data: Path, shared_model_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FINTUNE_SMOLLM2_GGUF", str(shared_model_dir))
    lines = (shared_data / "financial_phrasebank" / "Sentences_AllAgree.txt").read_text(encoding="latin-1")
    rows = [line.rsplit("@", 1) for line in lines.splitlines() if "@" in line]
    picked: dict[str, list[str]] = {lab: [] for lab in SENTIMENT}
    for text, label in rows:
        if len(picked[label.strip()]) < 3 and len(text) < 160:
            picked[label.strip()].append(text.strip())
    seed = [Example(id=f"fpb-{lab}-{i}", text=t, label=lab, source="phrasebank")
            for lab, texts in picked.items() for i, t in enumerate(texts[:2])]
    evals = [Example(id=f"fpb-eval-{lab}", text=texts[2], label=lab) for lab, texts in picked.items()]
    write_jsonl(tmp_path / "seed.jsonl", seed)
    write_jsonl(tmp_path / "test.jsonl", evals)
    teacher = LocalTeacher("smollm2-135m", temperature=0.0, max_new_tokens=32, batch_size=16)  # one generate call
    params = AugmentParams(paraphrases=1, new_per_label=1, verifier="classifier")
    result = run_augment(tmp_path / "seed.jsonl", tmp_path / "out", teacher, [tmp_path / "test.jsonl"], params,
                         progress=False)
    c = result.counts
    assert c["requested"] == 9 and c["teacher_calls_made"] == 9
    assert c["kept"] + c["rejected"] == 9 == c["kept"] + sum(c["rejected_by_reason"].values())
    assert all(e.text.strip() and e.extra["augment"]["teacher"] == "local:smollm2-135m" for e in result.kept)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"] == json.loads(json.dumps(c))
    print("embedded-teacher counts:", json.dumps(c["rejected_by_reason"]), "kept", c["kept"])
    # Rerun with a fresh teacher: all answers come from the cache and the model is never loaded.
    fresh = LocalTeacher("smollm2-135m", temperature=0.0, max_new_tokens=32, batch_size=16)
    again = run_augment(tmp_path / "seed.jsonl", tmp_path / "out", fresh, [tmp_path / "test.jsonl"], params,
                        overwrite=True, progress=False)
    assert again.counts["from_cache"] == 9 and fresh._loaded is None
