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


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sparkdl`` with ``argv`` (default the process arguments); the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_deprecated(args)
    from sparkdl import progress
    from sparkdl.spark import VERBOSE_ENV_VAR

    if args.verbose:
        os.environ[VERBOSE_ENV_VAR] = "1"
    if args.quiet:
        os.environ[progress.ENV_VAR] = "0"
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("py4j", "petastorm", "pyarrow", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SparkdlError as err:
        print(f"sparkdl {args.command}: error: {err}", file=sys.stderr)
        return 2
