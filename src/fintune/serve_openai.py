"""OpenAI-compatible routes of ``fintune serve``: ``GET /v1/models`` and ``POST /v1/chat/completions``.

The text analysed is the content of the last ``user`` message; it goes through the same batcher, predictor call,
bearer auth, queue bound and size limits as ``/v1/analyze`` (the routes live under ``/v1/`` behind the same
middlewares). The model's own trained prompt is used, so ``system``/``assistant`` messages do not change the answer.

The answer is label-scored (or generated and strictly parsed, for forecaster runs), never free text that may fail to
parse:

- no ``response_format`` (or ``{"type": "text"}``): the content is the run's structured answer text for the
  predicted label, exactly what training taught (``positive``; ``SENTIMENT: positive`` for the structured format);
- ``{"type": "json_object"}``: a JSON object with ``label``, ``sentiment``, ``confidence``, ``probabilities``,
  ``calibrated``, ``expected_move``;
- ``{"type": "json_schema", "json_schema": {"schema": {...}}}``: an object whose properties must be among
  :func:`answer_fields`; the content is built from the scored prediction and validated against the schema (a schema
  asking for anything else is a 400 that names the unsupported fields). ``analysis`` makes the server also
  generate a short explanation, as ``explain`` does on ``/v1/analyze``.

``stream: true`` sends the same answer as ``chat.completion.chunk`` server-sent events ending with
``data: [DONE]``. Sampling parameters (``temperature``, ``top_p``, ``max_tokens``, ...) are accepted and do not
apply: the label is scored, not sampled. Errors raised here use OpenAI's ``{"error": {"message", "type", "param",
"code"}}`` shape.
"""

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fintune.analyze import AnalyzeItem, Analyzer, public_result
from fintune.prompts.tasks import answer_text
from fintune.records import Prediction

JSON_OBJECT_FIELDS = ("label", "sentiment", "confidence", "probabilities", "calibrated", "expected_move")
MAX_MESSAGES = 64
OWNED_BY = "fintune"


class OpenAIError(Exception):
    """A request error answered in OpenAI's error shape with ``status``."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.param, self.code, self.kind = message, status, param, code, kind
        self.headers = headers

    def response(self) -> Any:
        """The JSONResponse of this error."""
        from fastapi.responses import JSONResponse

        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


@dataclass
class AnswerPlan:
    """What a request's ``response_format`` asks for: ``kind`` (text, json_object, json_schema), the fields of the
    JSON answer, the schema to validate it against, and whether an explanation must be generated."""

    kind: str = "text"
    fields: list[str] = field(default_factory=list)
    schema: dict[str, Any] | None = None
    explain: bool = False


def answer_fields(analyzer: Analyzer) -> list[str]:
    """The properties a ``json_schema`` response format may ask for with this model."""
    fields = ["label", "confidence", "probabilities", "calibrated", "analysis"]
    if analyzer.task == "sentiment":
        fields.insert(1, "sentiment")
    if analyzer.fmt == "forecaster":
        fields.append("expected_move")
    return fields


def plan_answer(response_format: dict[str, Any] | None, analyzer: Analyzer) -> AnswerPlan:
    """Check ``response_format`` before any model work; :class:`OpenAIError` (400) names what is unsupported."""
    if response_format is None:
        return AnswerPlan()
    kind = response_format.get("type")
    if kind == "text":
        return AnswerPlan()
    if kind == "json_object":
        return AnswerPlan("json_object", [f for f in JSON_OBJECT_FIELDS if f != "sentiment" or
                                          analyzer.task == "sentiment"])
    if kind != "json_schema":
        raise OpenAIError(f"response_format.type: {kind!r} is not supported (use text, json_object or json_schema)",
                          param="response_format.type")
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    where = "response_format.json_schema.schema"
    if not isinstance(schema, dict):
        raise OpenAIError(f"{where}: missing; give a JSON schema object", param=where)
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise OpenAIError(f"{where}: not a valid JSON schema ({exc.message})", param=where) from None
    supported = answer_fields(analyzer)
    props = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(props, dict) or not props:
        raise OpenAIError(f"{where}: the answer is a JSON object; give type 'object' with properties from "
                          f"{supported}", param=where)
    unsupported = [name for name in props if name not in supported]
    if unsupported:
        raise OpenAIError(f"{where}: unsupported field(s) {unsupported}; this model answers {supported}",
                          param=where, code="unsupported_schema_fields")
    return AnswerPlan("json_schema", list(props), schema, explain="analysis" in props)


def answer_content(plan: AnswerPlan, pred: Prediction, result: dict[str, Any], analyzer: Analyzer) -> str:
    """The message content: the structured answer text, or the JSON answer validated against the schema."""
    if plan.kind == "text":
        if analyzer.mode == "generate":
            return pred.raw_output.strip()
        fmt = analyzer.fmt if analyzer.fmt in ("label", "headlines", "structured") else "label"
        return answer_text(pred.label, fmt, {})
    answer = {name: result.get(name) for name in plan.fields}
    if plan.schema is not None:
        from jsonschema.validators import validator_for

        errors = sorted(validator_for(plan.schema)(plan.schema).iter_errors(answer), key=lambda e: list(e.path))
        if errors:
            err = errors[0]
            at = ".".join(str(p) for p in err.path) or "(root)"
            raise OpenAIError(f"response_format.json_schema.schema: the scored answer does not satisfy the schema "
                              f"at {at}: {err.message}", param="response_format.json_schema.schema",
                              code="schema_mismatch")
    return json.dumps(answer)


def user_text(messages: list[Any], max_chars: int) -> str:
    """The content of the last ``user`` message (text parts joined by newlines), checked for size."""
    users = [k for k, m in enumerate(messages) if m.role == "user"]
    if not users:
        raise OpenAIError("messages: no 'user' message; put the financial text in a user message", param="messages")
    k = users[-1]
    content = messages[k].content
    text = content if isinstance(content, str) else "\n".join(p.text for p in content or [])
    if not text.strip():
        raise OpenAIError(f"messages[{k}].content: empty", param=f"messages[{k}].content")
    if len(text) > max_chars:
        raise OpenAIError(f"messages[{k}].content: {len(text)} characters, more than the limit {max_chars}",
                          param=f"messages[{k}].content")
    return text


def chat_request_model(max_text_chars: int) -> type:
    """The pydantic model of a chat completion request (OpenAI's fields; unknown fields are refused)."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class TextPart(BaseModel):
        """A text content part."""

        model_config = ConfigDict(extra="forbid")
        type: Literal["text"]
        text: str

    class Message(BaseModel):
        """One chat message."""

        model_config = ConfigDict(extra="forbid")
        role: Literal["system", "developer", "user", "assistant", "tool"]
        content: str | list[TextPart] | None = None  # size checked on the analysed text (user_text)
        name: str | None = Field(None, max_length=200)

    class ChatCompletionRequest(BaseModel):
        """``POST /v1/chat/completions``: sampling parameters are accepted and do not apply (labels are scored)."""

        model_config = ConfigDict(extra="forbid")
        model: str = Field(min_length=1, max_length=1000)
        messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
        response_format: dict[str, Any] | None = None
        stream: bool = False
        stream_options: dict[str, Any] | None = None
        n: int = Field(1, ge=1, le=1, description="only 1")
        temperature: float | None = None
        top_p: float | None = None
        max_tokens: int | None = None
        max_completion_tokens: int | None = None
        seed: int | None = None
        stop: str | list[str] | None = None
        presence_penalty: float | None = None
        frequency_penalty: float | None = None
        user: str | None = None
        metadata: dict[str, str] | None = None
        store: bool | None = None

    return ChatCompletionRequest


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n"


def stream_events(cid: str, created: int, model: str, content: str) -> Iterator[str]:
    """The server-sent events of one answer: role, content, finish, then ``data: [DONE]``."""
    yield _chunk(cid, created, model, {"role": "assistant", "content": ""}, None)
    yield _chunk(cid, created, model, {"content": content}, None)
    yield _chunk(cid, created, model, {}, "stop")
    yield "data: [DONE]\n\n"


def add_openai_routes(app: Any, analyzer: Analyzer, max_text_chars: int,
                      predict: Callable[..., Awaitable[list[Prediction] | Any]]) -> None:
    """Register ``GET /v1/models``, ``GET /v1/models/{id}`` and ``POST /v1/chat/completions`` on ``app``.

    ``predict(items, explain, request, error=...)`` is the server's one path to the batcher; it returns the
    predictions or a ready error response (built by ``error(message, status, headers)``).
    """
    from fastapi import Request
    from fastapi.responses import StreamingResponse

    ChatCompletionRequest = chat_request_model(max_text_chars)
    started = int(time.time())

    def model_card() -> dict[str, Any]:
        return {"id": analyzer.model_name, "object": "model", "created": started, "owned_by": OWNED_BY}

    def openai_error(message: str, status: int, headers: dict[str, str] | None = None) -> Any:
        kind = "server_busy" if status == 503 else "invalid_request_error"
        return OpenAIError(message, status=status, kind=kind, headers=headers).response()

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        """OpenAI's model list: the one model this server serves."""
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> Any:
        """One model of the list (404 for any other id)."""
        if model_id != analyzer.model_name:
            return OpenAIError(f"model {model_id!r} is not served here (serving {analyzer.model_name!r})", 404,
                               param="model", code="model_not_found").response()
        return model_card()

    @app.post("/v1/chat/completions", responses={400: {}, 401: {}, 404: {}, 413: {}, 422: {}, 503: {}})
    async def chat_completions(req: ChatCompletionRequest, request: Request) -> Any:  # type: ignore[valid-type]
        """OpenAI chat completion: the last user message analysed; ``response_format`` JSON schema honoured."""
        try:
            if req.model != analyzer.model_name:
                raise OpenAIError(f"model {req.model!r} is not served here (GET /v1/models lists "
                                  f"{analyzer.model_name!r})", 404, param="model", code="model_not_found")
            plan = plan_answer(req.response_format, analyzer)
            text = user_text(req.messages, max_text_chars)
        except OpenAIError as exc:
            return exc.response()
        item = AnalyzeItem(text=text, id="chat", where="messages[-1].content")
        out = await predict([item], plan.explain, request, error=openai_error)
        if not isinstance(out, list):
            return out
        pred = out[0]
        try:
            content = answer_content(plan, pred, public_result(pred, analyzer), analyzer)
        except OpenAIError as exc:
            return exc.response()
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            return StreamingResponse(stream_events(cid, created, analyzer.model_name, content),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        return {"id": cid, "object": "chat.completion", "created": created, "model": analyzer.model_name,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": content, "refusal": None}}],
                "usage": None, "fintune": public_result(pred, analyzer)}
