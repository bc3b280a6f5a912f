"""``fintune <verb>``: one verb per pipeline stage.

Each verb's argument glue lives in ``fintune/commands/<verb>.py`` with two functions, ``register(subparsers)`` and
``run(args) -> int``, which call a plain typed function elsewhere in the package (the function tests call directly).
A verb appears in ``--help`` only when its module exists. Expected failures raise
:class:`~fintune.errors.FintuneError`: the CLI prints one line and exits 2; ``--debug`` shows the traceback.
Third-party warnings and log noise are filtered for every verb (:mod:`fintune.quiet`) unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from fintune import __version__, quiet
from fintune.errors import FintuneError
from fintune.redact import install_log_redaction, redact

# Pipeline order; a verb is listed only once its module exists.
VERBS = (
    "recipes", "collect", "data", "synth", "augment", "models", "plan", "pretrain", "train", "merge", "eval", "ensemble",
    "compare", "sweep", "walkforward", "backtest", "analyze", "serve", "export", "report", "demo",
)


def available_verbs() -> list[str]:
    """The verbs whose command module is present (the implemented ones)."""
    return [v for v in VERBS if importlib.util.find_spec(f"fintune.commands.{v}") is not None]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``fintune eval: error: ... -- see fintune eval --help``)."""

    def error(self, message: str) -> NoReturn:
        """Print the error on one line and exit 2 (argparse would print the whole usage first)."""
        self.exit(2, f"{self.prog}: error: {redact(message)} -- see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per implemented verb."""
    parser = OneLineParser(
        prog="fintune",
        description="Adapt small language models to finance and prove what they are worth.",
    )
    parser.add_argument("--version", action="version", version=f"fintune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("--verbose", action="store_true",
                        help="show third-party warnings and log lines (hidden by default; also FINTUNE_VERBOSE=1)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in available_verbs():
        module = importlib.import_module(f"fintune.commands.{verb}")
        sp = module.register(sub)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fintune`` console script; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere on the line (also after a nested verb such as `recipes cp`).
    debug = "--debug" in argv or os.environ.get("FINTUNE_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    # --verbose likewise; the noise filters go in before any verb imports torch / transformers / bitsandbytes
    verbose = "--verbose" in argv or os.environ.get("FINTUNE_VERBOSE") == "1"
    argv = [a for a in argv if a != "--verbose"]
    quiet.configure(verbose=verbose)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    install_log_redaction()
    try:
        return int(args._run(args) or 0)
    except FintuneError as exc:
        if debug:
            raise
        print(f"fintune {args.verb}: error: {exc.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fintune {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still prints one line unless --debug
        if debug:
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(redact(f"fintune {args.verb}: error: {type(exc).__name__}: {msg} (rerun with --debug for the "
                     "traceback)"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
