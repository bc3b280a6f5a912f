"""The one error type users see.

Every expected failure (bad input, missing file, invalid recipe, unknown label, ...) raises :class:`FintuneError`
with a single-line message saying what went wrong, where (file:line, row/column or key path) and how to fix it.
The CLI prints that line and exits non-zero; ``--debug`` shows the traceback instead. Secrets are redacted
(:func:`fintune.redact.redact`).
"""

from __future__ import annotations

from fintune.redact import redact  # no secret in any message (API keys, tokens, token= query values)


class FintuneError(Exception):
    """A user-facing error: one line naming what, where and how to fix.

    Args:
        message: what went wrong, with the place (``file:line``, ``row 12 column 'label'`` or ``key.path``).
        hint: optional "how to fix" appended after `` -- ``.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = redact(message.strip().replace("\n", " "))
        self.hint = redact(hint.strip().replace("\n", " ")) if hint else None
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message and hint as the single line the CLI prints."""
        return f"{self.message} -- {self.hint}" if self.hint else self.message
