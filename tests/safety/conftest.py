"""Fixtures of the bad-input suite (tests/safety): ``cli`` runs the real ``fintune`` CLI in-process."""

from __future__ import annotations

import pytest
from safety_helpers import run_cli


@pytest.fixture
def cli(capsys):
    """``cli("eval", "--limit", "0", ...)`` -> ``CliResult(code, out, err)``."""
    return lambda *argv: run_cli(capsys, *argv)
