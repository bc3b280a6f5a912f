"""Helpers of the bad-input suite: run the real CLI in-process and check the one-line error contract."""

from __future__ import annotations

from dataclasses import dataclass

from fintune.cli import main


@dataclass
class CliResult:
    """Exit code and captured output of one ``fintune`` invocation."""

    code: int
    out: str
    err: str


def run_cli(capsys, *argv: str) -> CliResult:
    """Run ``fintune ARGV`` in this process (argparse exits are caught) and capture its output."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def one_line_error(result: CliResult) -> str:
    """Assert the contract (non-zero exit, exactly one stderr line, no traceback) and return that line."""
    assert result.code != 0, result
    # progress bars (tqdm redraws with \r) are not messages
    lines = [line for line in result.err.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    return lines[0]
