"""Run ``fintune`` (argv as for ``python -m fintune``) while recording every file this process writes.

Used by the multi-process tests as the script ``torchrun`` / ``accelerate launch`` starts: an audit hook
(:func:`sys.addaudithook`) logs each ``open`` for writing, rename, remove and mkdir under ``FINTUNE_AUDIT_ROOT``
to ``FINTUNE_AUDIT_DIR/rank<RANK>.jsonl``, so a test can show which rank wrote which file and that no file was
written by two ranks.
"""

from __future__ import annotations

import json
import os
import sys

ROOT = os.path.realpath(os.environ["FINTUNE_AUDIT_ROOT"])
LOG = os.path.join(os.environ["FINTUNE_AUDIT_DIR"], f"rank{os.environ.get('RANK', '0')}.jsonl")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_events: list[str] = []


def _under_root(path: object) -> str | None:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        return None
    full = os.path.realpath(path)
    return full if full.startswith(ROOT + os.sep) else None


def _hook(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
        if writing and (full := _under_root(path)):
            _events.append(json.dumps({"event": "write", "path": full}))
    elif event in ("os.rename", "os.remove", "os.mkdir", "shutil.rmtree"):
        paths = [_under_root(a) for a in args[:2] if isinstance(a, (str, bytes))]
        if any(paths):
            _events.append(json.dumps({"event": event, "paths": paths}))


def main() -> int:
    """Install the hook, run the CLI, then write this rank's log (outside the audited root)."""
    from fintune.cli import main as cli

    sys.addaudithook(_hook)
    try:
        return cli(sys.argv[1:])
    finally:
        with open(LOG, "w", encoding="utf-8") as fh:
            fh.write("".join(e + "\n" for e in _events))


if __name__ == "__main__":
    sys.exit(main())
