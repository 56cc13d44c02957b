"""The ``sparkdl`` command line: one sub-command per pipeline stage.

``main(argv)`` is testable (returns an exit code); logging is configured here and nowhere
else in the library. Errors the user can fix print one clear line, not a traceback. The
options are declared in :mod:`sparkdl.cli.parser`, what each command does in
:mod:`sparkdl.cli.commands`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from sparkdl.cli.parser import build_parser, resolve_deprecated
from sparkdl.errors import SparkdlError

__all__ = ["build_parser", "main"]

logger = logging.getLogger("sparkdl")


class _ConsoleFormatter(logging.Formatter):
    """Log lines that read like the progress lines around them: the message alone, and
    ``warning:``/``error:`` in front of problems (``--verbose`` adds times and loggers)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sparkdl`` with ``argv`` (default the process arguments); the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_deprecated(args)
    from sparkdl import progress
    from sparkdl.noise import VERBOSE_ENV_VAR

    if args.verbose:
        os.environ[VERBOSE_ENV_VAR] = "1"
    if args.quiet:
        os.environ[progress.ENV_VAR] = "0"
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        if args.verbose
        else _ConsoleFormatter()
    )
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
        handlers=[handler],
    )
    for noisy in ("py4j", "petastorm", "pyarrow", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SparkdlError as err:
        print(f"sparkdl {args.command}: error: {err}", file=sys.stderr)
        return 2
