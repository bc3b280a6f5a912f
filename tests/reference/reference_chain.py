"""Helpers of the reference-system chain tests: run a CLI verb in-process and read a stage's manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fintune.cli import main


def run_verb(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``fintune ARGV`` in this process; fail with its one-line error when it exits non-zero."""
    rc = main(list(argv))
    captured = capsys.readouterr()
    assert rc == 0, f"fintune {argv[0]} exited {rc}: {captured.err.strip()[-600:]}"
    return captured.out


def sets(*overrides: str) -> list[str]:
    """``--set`` flags for recipe overrides."""
    return [flag for item in overrides for flag in ("--set", item)]


def manifest(path: Path) -> dict[str, Any]:
    """A stage's manifest (``DIR/manifest.json``, or ``FILE.manifest.json`` beside an analyze output file)."""
    target = path / "manifest.json" if path.is_dir() else path.with_name(path.name + ".manifest.json")
    assert target.is_file(), f"{target}: the stage wrote no manifest (skipped?)"
    return json.loads(target.read_text(encoding="utf-8"))


def jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
