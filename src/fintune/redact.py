"""One redaction function for every error message and log line: no secret ever reaches an output.

Redacted: values of environment variables whose names end in ``_KEY``, ``_TOKEN``, ``_SECRET`` or ``_PASSWORD``
(``FINNHUB_API_KEY``, ``FINTUNE_API_TOKEN``, ``HF_TOKEN`` ...), bearer tokens, ``token=`` / ``apikey=`` / ``key=``
style query or form values, ``X-...-Token`` / ``Authorization`` / ``api-key`` header values, and OpenAI-style
``sk-...`` keys. Each becomes ``***``.
"""

from __future__ import annotations

import logging
import os
import re

MASK = "***"
_SECRET_ENV = re.compile(r"(?:_KEY|_TOKEN|_SECRET|_PASSWORD|_APIKEY)$", re.IGNORECASE)
_PATTERNS = (
    # query / form / key=value pairs: token=..., api_key=..., apikey=..., access_token=..., key=..., secret=...
    re.compile(r"(?i)(\b(?:[a-z_]*token|api[_-]?key|apikey|key|secret|password|passwd|sig|signature)=)"
               r"([^&\s'\",;)}\]]+)"),
    # JSON / YAML / header style: "token": "...", api_key: ..., secret: ...
    re.compile(r"(?i)(\b(?:[a-z_]*_token|access_token|token|api[_-]?key|apikey|secret|password)['\"]?\s*:\s*['\"]?)"
               r"([^&\s'\",;)}\]]+)"),
    re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=-]+)"),
    re.compile(r"(?i)(\b(?:authorization|x-[a-z-]*token|x-api-key|api-key)\s*[:=]\s*)([^\s,;]+)"),
    re.compile(r"()(\bsk-[A-Za-z0-9_-]{12,})"),
    re.compile(r"()(\bhf_[A-Za-z0-9]{20,})"),
)


def secret_values() -> list[str]:
    """The values of secret-looking environment variables (4+ characters), longest first."""
    values = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 4}
    return sorted(values, key=len, reverse=True)


def redact(text: object, extra: tuple[str, ...] = ()) -> str:
    """``text`` with every secret (see module doc, plus ``extra`` literal values) replaced by ``***``."""
    out = str(text)
    for value in (*[e for e in extra if e and len(e) >= 4], *secret_values()):
        out = out.replace(value, MASK)
    for pattern in _PATTERNS:
        out = pattern.sub(lambda m: m.group(1) + MASK if m.group(2) != MASK else m.group(0), out)
    return out


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's formatted message (string args are redacted and kept when
    that renders the same redacted message, else dropped)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the message by its redacted rendering; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw text
            message = str(record.msg)
        args = record.args
        if isinstance(args, tuple) and args and isinstance(record.msg, str):
            # keep the args (uvicorn's access formatter unpacks them), each redacted, while the rendering is clean
            record.msg, record.args = redact(record.msg), tuple(redact(a) if isinstance(a, str) else a for a in args)
            try:
                clean = record.getMessage() == redact(message)
            except Exception:
                clean = False
            if not clean:
                record.msg, record.args = redact(message), None
        else:
            record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction(logger_names: tuple[str, ...] = ("", "uvicorn", "uvicorn.error", "uvicorn.access",
                                                              "httpx", "fintune")) -> None:
    """Attach :class:`RedactingFilter` to the named loggers and to every handler they have (idempotent)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, RedactingFilter) for f in target.filters):
                target.addFilter(RedactingFilter())
