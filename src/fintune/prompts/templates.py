"""Chat templates: messages -> ``(prompt, completion)`` text, and tokenization with a label mask.

Built-in templates reproduce the official Jinja ``chat_template`` of each family exactly (golden-tested against
the official strings rendered by transformers, see ``tests/prompts/templates/README.md``):

``llama2``  meta-llama/Llama-2-7b-chat-hf: ``<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {answer} </s>``.
    Contents are ``.strip()``-ed; the template has no generation prompt, so the prompt ends at ``[/INST]`` and
    the completion is ``" " + answer + " </s>"``.
``llama3``  meta-llama/Llama-3.1-8B-Instruct. The official template ALWAYS writes a system header with
    ``Cutting Knowledge Date: December 2023\\nToday Date: 26 Jul 2024\\n\\n`` before the system prompt (26 Jul 2024
    is its default when no ``date_string`` is passed). The built-in matches it exactly, date included, so a
    model is trained on the same prefix it sees from ``apply_chat_template`` at inference.

Pinned date: Llama 3.2's template writes TODAY's date (``strftime_now``) unless ``date_string`` is given, so the
same example would render differently on different days and inference on a later day would see another prefix
than training. Every rendering here passes ``date_string`` (``render_messages(..., date_string=...)``, default
:data:`TEMPLATE_DATE` = the templates' own fixed default; recipes set ``data.template_date``), to the tokenizer's
template (``auto``) and to the built-in ``llama3``: a prompt is the same bytes on any day.
    Completion: ``answer + "<|eot_id|>"``.
``deepseek-r1-distill``  deepseek-ai/DeepSeek-R1-Distill-Llama-8B: ``<｜begin▁of▁sentence｜>{system}<｜User｜>{user}
    <｜Assistant｜>{answer}<｜end▁of▁sentence｜>``. The system prompt is pasted right after BOS with no separator
    (only the last system message survives), and an assistant answer loses everything up to its last
    ``</think>``. The official generation prompt is ``<｜Assistant｜><think>\\n`` (it forces a reasoning block);
    our prompt stops at ``<｜Assistant｜>`` for training AND inference, because fine-tuned answers carry no
    reasoning and the template itself drops reasoning from rendered answers: the prompt a model is asked with
    must be the prompt it was trained on.
``chatml``  Qwen/Qwen2.5-1.5B-Instruct: ``<|im_start|>{role}\\n{content}<|im_end|>\\n``, with Qwen's default
    system prompt injected when the conversation has none. Completion: ``answer + "<|im_end|>\\n"``.
``none``  no template: turns joined by blank lines, completion ``answer + eos_token`` (when a tokenizer is given).
``auto``  ``tokenizer.apply_chat_template`` (the tokenizer's own template, e.g. SmolLM2's chatml). The prompt is
    the prefix of the rendered conversation before the answer; where the template's generation prompt is not
    that prefix (DeepSeek-R1's ``<think>\n``) the split follows the rendered conversation, as for the built-in.

Trailing newline: for chatml the ``\\n`` after ``<|im_end|>`` is part of the completion and trained. Generation
stops at ``<|im_end|>`` so the newline is never generated, but keeping it makes ``prompt + completion`` equal to
the official rendering byte for byte (packed training sequences look exactly like multi-turn history).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fintune.errors import FintuneError
from fintune.prompts.tokenize import IGNORE_INDEX, MIN_PROMPT_TOKENS, encode_for_training  # noqa: F401 (shared, re-exported)

TEMPLATES = ("auto", "llama2", "llama3", "deepseek-r1-distill", "chatml", "none")
ROLES = ("system", "user", "assistant")
_PLACEHOLDER = "FINTUNEANSWERPLACEHOLDER"

LLAMA2_BOS, LLAMA2_EOS = "<s>", "</s>"
LLAMA3_BOS, LLAMA3_EOT = "<|begin_of_text|>", "<|eot_id|>"
LLAMA3_DATE = "26 Jul 2024"
TEMPLATE_DATE = LLAMA3_DATE
"""The date dated chat templates render unless a recipe pins another (``data.template_date``)."""
LLAMA3_SYSTEM_PREAMBLE = f"Cutting Knowledge Date: December 2023\nToday Date: {LLAMA3_DATE}\n\n"
DEEPSEEK_BOS, DEEPSEEK_EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
DEEPSEEK_USER, DEEPSEEK_ASSISTANT = "<｜User｜>", "<｜Assistant｜>"
CHATML_START, CHATML_END = "<|im_start|>", "<|im_end|>"
QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def _check_messages(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    if not messages:
        raise FintuneError("messages: empty conversation", "give at least one user message")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise FintuneError(
                f"messages[{i}]: expected {{'role': one of {list(ROLES)}, 'content': str}}, got {m!r}"
            )
        out.append({"role": m["role"], "content": m["content"]})
    return out


# ------------------------------------------------------------------ built-in renderers (full conversation)


def _llama2(messages: list[dict[str, str]]) -> str:
    system = None
    if messages[0]["role"] == "system":
        system, messages = messages[0]["content"], messages[1:]
    parts = []
    for i, m in enumerate(messages):
        if (m["role"] == "user") != (i % 2 == 0):
            raise FintuneError(
                f"messages[{i}]: llama2 needs alternating user/assistant turns after the system one"
            )
        content = m["content"]
        if i == 0 and system is not None:
            content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
        if m["role"] == "user":
            parts.append(f"{LLAMA2_BOS}[INST] {content.strip()} [/INST]")
        else:
            parts.append(f" {content.strip()} {LLAMA2_EOS}")
    return "".join(parts)


def _llama3(messages: list[dict[str, str]], generation_prompt: bool, date_string: str = TEMPLATE_DATE) -> str:
    system = ""
    if messages[0]["role"] == "system":
        system, messages = messages[0]["content"].strip(), messages[1:]
    preamble = f"Cutting Knowledge Date: December 2023\nToday Date: {date_string}\n\n"
    parts = [f"{LLAMA3_BOS}<|start_header_id|>system<|end_header_id|>\n\n{preamble}{system}{LLAMA3_EOT}"]
    for m in messages:
        parts.append(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}{LLAMA3_EOT}")
    if generation_prompt:
        parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def _deepseek(messages: list[dict[str, str]], generation_prompt: bool) -> str:
    system = ""
    for m in messages:
        if m["role"] == "system":
            system = m["content"]  # the official template keeps only the last system message
    parts = [DEEPSEEK_BOS, system]
    for m in messages:
        if m["role"] == "user":
            parts.append(DEEPSEEK_USER + m["content"])
        elif m["role"] == "assistant":
            content = m["content"].split("</think>")[-1]
            parts.append(DEEPSEEK_ASSISTANT + content + DEEPSEEK_EOS)
    if generation_prompt:
        parts.append(DEEPSEEK_ASSISTANT)
    return "".join(parts)


def _chatml(messages: list[dict[str, str]], generation_prompt: bool) -> str:
    parts = []
    if messages[0]["role"] != "system":
        parts.append(f"{CHATML_START}system\n{QWEN_DEFAULT_SYSTEM}{CHATML_END}\n")
    for m in messages:
        parts.append(f"{CHATML_START}{m['role']}\n{m['content']}{CHATML_END}\n")
    if generation_prompt:
        parts.append(f"{CHATML_START}assistant\n")
    return "".join(parts)


def _plain(messages: list[dict[str, str]], generation_prompt: bool, eos: str) -> str:
    body = "\n\n".join(m["content"] for m in messages)
    if messages[-1]["role"] == "assistant":
        return body + eos
    return body + ("\n\n" if generation_prompt else "")


def _render_builtin(messages: list[dict[str, str]], template: str, generation_prompt: bool, eos: str,
                    date_string: str = TEMPLATE_DATE) -> str:
    if template == "llama2":
        return _llama2(messages)
    if template == "llama3":
        return _llama3(messages, generation_prompt, date_string)
    if template == "deepseek-r1-distill":
        return _deepseek(messages, generation_prompt)
    if template == "chatml":
        return _chatml(messages, generation_prompt)
    return _plain(messages, generation_prompt, eos)


def _apply_tokenizer_template(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool,
                              date_string: str = TEMPLATE_DATE) -> str:
    # date_string is a template variable: Llama 3.x templates use it instead of today's date, others ignore it
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt,
                                         date_string=date_string)
    if not isinstance(text, str):
        raise FintuneError("template 'auto': apply_chat_template did not return text")
    return text


def render_messages(
    messages: Sequence[dict[str, str]], template: str, tokenizer: Any = None, date_string: str = TEMPLATE_DATE
) -> tuple[str, str]:
    """Render a conversation to ``(prompt, completion)`` with ``prompt + completion`` = the full rendering.

    When the last message is the assistant's, ``completion`` is that answer plus the template's end-of-turn
    text and ``prompt`` is everything before it (through the assistant header). Otherwise ``completion`` is
    ``""`` and ``prompt`` ends with the assistant header, ready for generation. ``template="auto"`` needs a
    tokenizer with a ``chat_template``. ``date_string`` is the date a dated template renders (see the module doc).
    """
    if template not in TEMPLATES:
        raise FintuneError(f"unknown template {template!r}", f"allowed templates: {list(TEMPLATES)}")
    messages = _check_messages(messages)
    has_answer = messages[-1]["role"] == "assistant"
    history = messages[:-1] if has_answer else messages
    if not any(m["role"] == "user" for m in history):
        raise FintuneError("messages: no user turn before the answer", "a conversation needs a user message")

    if template == "auto":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise FintuneError(
                "template 'auto': the tokenizer has no chat_template",
                f"set data.template to one of {list(TEMPLATES[1:])}",
            )
        prompt = _apply_tokenizer_template(tokenizer, history, True, date_string)
        # render a placeholder answer to see where the answer really starts: the generation prompt is used when it
        # is that prefix; otherwise (DeepSeek-R1 appends "<think>\n") the prefix the rendered answer follows is,
        # so training and inference prompts stay identical
        probe = _apply_tokenizer_template(
            tokenizer, [*history, {"role": "assistant", "content": _PLACEHOLDER}], False, date_string
        )
        start = probe.find(_PLACEHOLDER)
        if start < 0:
            raise FintuneError(
                "template 'auto': the chat template drops the assistant's answer",
                "use a built-in template (data.template)",
            )
        if not probe.startswith(prompt):
            prompt = probe[:start]
        if not has_answer:
            return prompt, ""
        full = _apply_tokenizer_template(tokenizer, messages, False, date_string)
        if not full.startswith(prompt):
            raise FintuneError(
                "template 'auto': the rendered conversation does not start with the prompt",
                "use a built-in template (data.template)",
            )
        return prompt, full[len(prompt) :]

    eos = (getattr(tokenizer, "eos_token", None) or "") if tokenizer is not None else ""
    prompt = _render_builtin(history, template, True, eos, date_string)
    if not has_answer:
        return prompt, ""
    full = _render_builtin(messages, template, False, eos, date_string)
    if not full.startswith(prompt):  # a bug in a renderer, not a user error
        raise AssertionError(f"{template}: prompt is not a prefix of the full rendering")
    return prompt, full[len(prompt) :]


# ------------------------------------------------------------------ tokenization with a label mask

# ------------------------------------------------------------------ rendered text -> messages (conversion)

_LLAMA2_TURN = re.compile(r"\[INST\](.*?)\[/INST\](.*?)(?=(?:<s>)?\s*\[INST\]|\Z)", re.DOTALL)
_LLAMA2_SYS = re.compile(r"^\s*<<SYS>>\s*(.*?)\s*<</SYS>>\s*(.*)$", re.DOTALL)
_CHATML_TURN = re.compile(r"<\|im_start\|>(system|user|assistant)\n(.*?)(?:<\|im_end\|>\n?|\Z)", re.DOTALL)
_LLAMA3_TURN = re.compile(
    r"<\|start_header_id\|>(system|user|assistant)<\|end_header_id\|>\n\n(.*?)"
    r"(?:<\|eot_id\|>|\Z)",
    re.DOTALL,
)
_LLAMA3_PREAMBLE = re.compile(
    r"^(?:Environment: ipython\n)?Cutting Knowledge Date: [^\n]*\nToday Date: [^\n]*\n\n"
)


def _append(out: list[dict[str, str]], role: str, content: str) -> None:
    out.append({"role": role, "content": content})


def parse_rendered(text: str, template: str, drop_default_system: bool = True) -> list[dict[str, str]]:
    """Recover the messages from text rendered with ``template`` (llama2, llama3, deepseek-r1-distill, chatml).

    Handles FinGPT's Dow30 llama2 prompts (``[INST]<<SYS>>\\n...\\n<</SYS>>\\n\\n...[/INST]``, with or without
    ``<s>`` and spaces). A trailing assistant header with no answer yields no assistant message. With
    ``drop_default_system`` the template-injected system text (Qwen's default, Llama 3's date preamble) is
    removed so it is not carried into another template.
    """
    out: list[dict[str, str]] = []
    if template == "llama2":
        for i, m in enumerate(_LLAMA2_TURN.finditer(text)):
            user, answer = m.group(1).strip(), m.group(2)
            sys_match = _LLAMA2_SYS.match(user) if i == 0 else None
            if sys_match:
                _append(out, "system", sys_match.group(1))
                user = sys_match.group(2).strip()
            _append(out, "user", user)
            answer = answer.strip()
            if answer.endswith(LLAMA2_EOS):
                answer = answer[: -len(LLAMA2_EOS)].strip()
            if answer:
                _append(out, "assistant", answer)
    elif template == "chatml":
        for m in _CHATML_TURN.finditer(text):
            _append(out, m.group(1), m.group(2))
        if out and out[-1]["role"] == "assistant" and not out[-1]["content"]:
            out.pop()
        if drop_default_system and out and out[0] == {"role": "system", "content": QWEN_DEFAULT_SYSTEM}:
            out.pop(0)
    elif template == "llama3":
        for m in _LLAMA3_TURN.finditer(text):
            _append(out, m.group(1), m.group(2))
        if out and out[-1]["role"] == "assistant" and not out[-1]["content"]:
            out.pop()
        if out and out[0]["role"] == "system" and drop_default_system:
            out[0]["content"] = _LLAMA3_PREAMBLE.sub("", out[0]["content"], count=1)
            if not out[0]["content"]:
                out.pop(0)
    elif template == "deepseek-r1-distill":
        body = text[len(DEEPSEEK_BOS) :] if text.startswith(DEEPSEEK_BOS) else text
        system, _, rest = body.partition(DEEPSEEK_USER)
        if system:
            _append(out, "system", system)
        for turn in rest.split(DEEPSEEK_USER):
            user, _, answer = turn.partition(DEEPSEEK_ASSISTANT)
            _append(out, "user", user)
            answer = answer.removesuffix(DEEPSEEK_EOS)
            if answer:
                _append(out, "assistant", answer)
    else:
        raise FintuneError(
            f"parse_rendered: cannot parse template {template!r}",
            "supported: llama2, llama3, deepseek-r1-distill, chatml",
        )
    if not any(m["role"] == "user" for m in out):
        raise FintuneError(
            f"parse_rendered: no {template} user turn found in the text",
            f"is this text really rendered with the {template} template?",
        )
    return out


def convert_rendered(
    text: str, source_template: str, target_template: str, tokenizer: Any = None, date_string: str = TEMPLATE_DATE
) -> tuple[str, str]:
    """Re-render text from one template to another: :func:`parse_rendered` then :func:`render_messages`."""
    return render_messages(parse_rendered(text, source_template), target_template, tokenizer, date_string)
