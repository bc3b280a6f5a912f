"""One retry loop for the HTTP clients (teacher endpoints, Finnhub): backoff, Retry-After, transport errors.

Callers decide what a final response means (parse a 200, turn other statuses into a one-line error); this module
only decides when to try again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fintune.redact import redact

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""Statuses worth another try: timeouts, conflicts, rate limits and server errors."""


def send_with_retries(send: Callable[[], Any], max_retries: int, backoff_seconds: float,
                      before_attempt: Callable[[], None] | None = None,
                      retryable: frozenset[int] = RETRYABLE_STATUS) -> tuple[Any | None, str]:
    """Call ``send()`` (which returns an ``httpx.Response``) until it gives a non-retryable response.

    Attempt k > 0 first sleeps ``min(60, backoff_seconds * 2**(k-1))`` and, for a retryable response that sent a
    numeric ``Retry-After``, that many seconds more (capped at 60). ``before_attempt`` runs before every attempt
    (rate limiting, counting).

    Returns:
        ``(response, last_problem)``: the first non-retryable response, or ``(None, description of the last
        failure)`` after ``max_retries + 1`` attempts.
    """
    import httpx

    last = ""
    for attempt in range(max_retries + 1):
        if attempt:
            time.sleep(min(60.0, backoff_seconds * 2 ** (attempt - 1)))
        if before_attempt is not None:
            before_attempt()
        try:
            resp = send()
        except httpx.TransportError as exc:
            last = redact(f"{type(exc).__name__}: {exc}")
            continue
        if resp.status_code not in retryable:
            return resp, last
        last = redact(f"HTTP {resp.status_code} {resp.text[:160].replace(chr(10), ' ')}")
        retry_after = resp.headers.get("retry-after", "")
        if retry_after.replace(".", "", 1).isdigit():
            time.sleep(min(60.0, float(retry_after)))
    return None, last
