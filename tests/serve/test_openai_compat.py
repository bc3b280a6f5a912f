"""The OpenAI-compatible routes of `fintune serve`, driven by the real `openai` client against the real server on
loopback: model list, structured answers (json_schema parsed into a pydantic model), streaming, auth, queue bound."""

from __future__ import annotations

import json
import threading
import time
from typing import Literal

import httpx
import openai
import pytest
from pydantic import BaseModel
from serve_http_helpers import TOKEN
from tests.live_server import live_server

LABELS = ["negative", "neutral", "positive"]
TEXT = "Apple beats Q4 estimates by 15% and raises its dividend."


class Sentiment(BaseModel):
    """The structured answer a client asks for."""

    label: Literal["negative", "neutral", "positive"]
    sentiment: str
    confidence: float
    probabilities: dict[str, float]


def _client(url: str, key: str = TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def _analyze(url: str, text: str) -> dict:
    r = httpx.post(f"{url}/v1/analyze", json={"text": text}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_models_list_and_json_schema_answer_parsed_by_the_client(server, tiny_run):
    url, _, _ = server
    client = _client(url)
    models = client.models.list()
    assert [m.id for m in models.data] == [str(tiny_run)] and models.data[0].owned_by == "fintune"
    assert client.models.retrieve(str(tiny_run)).id == str(tiny_run)
    completion = client.chat.completions.parse(
        model=str(tiny_run), response_format=Sentiment,
        messages=[{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": TEXT}])
    choice = completion.choices[0]
    parsed = choice.message.parsed
    assert isinstance(parsed, Sentiment) and choice.finish_reason == "stop"
    assert set(json.loads(choice.message.content)) == {"label", "sentiment", "confidence", "probabilities"}
    # the same label-scored prediction as /v1/analyze (calibrated with the run's fitted temperature)
    reference = _analyze(url, TEXT)
    assert parsed.label == reference["label"] and parsed.sentiment == reference["sentiment"]
    assert abs(parsed.confidence - reference["confidence"]) < 1e-9
    assert parsed.probabilities == pytest.approx(reference["probabilities"], abs=1e-12)
    assert completion.model == str(tiny_run) and completion.model_extra["fintune"]["calibrated"] is True


def test_plain_json_object_and_streaming_answers(server, tiny_run):
    url, _, _ = server
    client = _client(url)
    messages = [{"role": "user", "content": [{"type": "text", "text": TEXT}]}]
    reference = _analyze(url, TEXT)
    plain = client.chat.completions.create(model=str(tiny_run), messages=messages, temperature=0.7, max_tokens=5)
    assert plain.choices[0].message.content == reference["label"]  # the run's trained answer text (label format)
    obj = client.chat.completions.create(model=str(tiny_run), messages=messages,
                                         response_format={"type": "json_object"})
    answer = json.loads(obj.choices[0].message.content)
    assert answer["label"] == reference["label"] and abs(sum(answer["probabilities"].values()) - 1) < 1e-9
    assert answer["calibrated"] is True and answer["expected_move"] is None
    stream = client.chat.completions.create(model=str(tiny_run), messages=messages, stream=True,
                                            response_format={"type": "json_object"})
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks) and chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert json.loads("".join(c.choices[0].delta.content or "" for c in chunks)) == answer
    raw = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60,
                     json={"model": str(tiny_run), "messages": messages, "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream") and raw.text.endswith("data: [DONE]\n\n")


def test_auth_schema_and_model_errors(server, tiny_run):
    url, _, log = server
    messages = [{"role": "user", "content": TEXT}]
    with pytest.raises(openai.AuthenticationError):
        _client(url, key="wrong-token").models.list()
    with pytest.raises(openai.AuthenticationError):
        _client(url, key="wrong-token").chat.completions.create(model=str(tiny_run), messages=messages)
    client = _client(url)
    schema = {"type": "object", "properties": {"label": {"type": "string"}, "price_target": {"type": "number"}}}
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=str(tiny_run), messages=messages, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert "unsupported field(s) ['price_target']" in bad.value.message
    narrow = {"type": "object", "properties": {"label": {"type": "string", "enum": ["bullish"]}}}
    with pytest.raises(openai.BadRequestError) as mismatch:  # never an answer that does not match the schema
        client.chat.completions.create(model=str(tiny_run), messages=messages, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": narrow}})
    assert "does not satisfy the schema at label" in mismatch.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=messages)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=str(tiny_run), messages=[{"role": "system", "content": "hi"}])
    too_long = [{"role": "user", "content": "x" * 9000}]
    with pytest.raises(openai.BadRequestError) as long_err:
        client.chat.completions.create(model=str(tiny_run), messages=too_long)
    assert "more than the limit 8000" in long_err.value.message
    time.sleep(0.3)
    text = log.read_text()
    assert '"POST /v1/chat/completions HTTP/1.1" 401' in text and TOKEN not in text
    assert "Logging error" not in text  # the redacting log filter keeps uvicorn's access-log args usable


def test_full_queue_is_503_with_retry_after_through_the_same_batcher(tiny_model):
    from fintune.analyze import Analyzer

    analyzer = Analyzer.load(str(tiny_model), dtype="float32")
    with live_server(analyzer, token=TOKEN, max_batch=1, max_queue=1, max_batch_items=1) as (url, engine):
        engine.gate.clear()
        client = _client(url)
        messages = [{"role": "user", "content": TEXT}]
        held: dict = {}
        first = threading.Thread(target=lambda: held.setdefault("r", client.chat.completions.create(
            model=str(tiny_model), messages=messages)))
        first.start()
        deadline = time.monotonic() + 20
        while not engine.calls:  # the first request holds the only queue slot inside the model call
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(openai.InternalServerError) as busy:
            client.chat.completions.create(model=str(tiny_model), messages=messages)
        assert busy.value.status_code == 503 and int(busy.value.response.headers["retry-after"]) >= 1
        assert "queue is full" in busy.value.message
        engine.gate.set()
        first.join(60)
        assert held["r"].choices[0].message.content in LABELS and engine.calls == [1]
        stats = httpx.get(f"{url}/v1/model", headers={"Authorization": f"Bearer {TOKEN}"}).json()["batching"]
        assert stats["rejected_queue_full"] == 1 and stats["items"] == 1
