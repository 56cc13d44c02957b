"""The command line's spellings, parsed in-process: every command reads a dataset through
``--data OUT``; the positional ``OUT`` (and ``CSV``) of ``inspect`` and ``annotations`` still
work, with one line on stderr saying the new spelling.

The old spelling end to end, on a real dataset: ``tests/ingestion/test_lidc_stage.py``.
"""

from __future__ import annotations

import argparse

import pytest

from sparkdl.cli.parser import build_parser, resolve_deprecated

DEPRECATED_OUT = "the positional OUT is deprecated; use --data OUT"
DEPRECATED_CSV = "the positional CSV is deprecated; use --output CSV"


def parse(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[argparse.Namespace, str]:
    """What ``sparkdl ARGV...`` asks for, and what parsing it printed on stderr."""
    args = build_parser().parse_args(argv)
    resolve_deprecated(args)
    return args, capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "inspect", "annotations"])
def test_every_command_reads_its_dataset_through_data(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([command, "--help"])
    assert done.value.code == 0
    assert "--data OUT" in capsys.readouterr().out


def test_the_new_spellings_print_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    args, printed = parse(capsys, "inspect", "--data", "/d/out")
    assert args.data == "/d/out" and printed == ""
    args, printed = parse(capsys, "annotations", "--data", "/d/out", "--output", "/d/a.csv")
    assert (args.data, args.output) == ("/d/out", "/d/a.csv") and printed == ""


def test_the_positional_spellings_still_work_and_say_the_new_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, printed = parse(capsys, "inspect", "/d/out")
    assert args.data == "/d/out"
    assert printed.splitlines() == [f"sparkdl inspect: {DEPRECATED_OUT}"]
    args, printed = parse(capsys, "annotations", "/d/out", "/d/a.csv")
    assert (args.data, args.output) == ("/d/out", "/d/a.csv")
    assert printed.splitlines() == [
        f"sparkdl annotations: {DEPRECATED_OUT}",
        f"sparkdl annotations: {DEPRECATED_CSV}",
    ]


def test_a_dataset_given_twice_or_not_at_all_is_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit, match="give OUT once, as --data OUT"):
        parse(capsys, "inspect", "/d/a", "--data", "/d/b")
    with pytest.raises(SystemExit, match="--data is required"):
        parse(capsys, "inspect")
    with pytest.raises(SystemExit, match="--output is required"):
        parse(capsys, "annotations", "--data", "/d/out")
