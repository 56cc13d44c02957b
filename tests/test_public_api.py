"""The public surface is pinned: adding or removing a name is a deliberate change."""

from __future__ import annotations

import subprocess
import sys

import sparkdl

EXPECTED = {
    "ConfigError", "DeidKeyError", "IngestConfig", "InputError", "SparkdlError", "TrainingError",
    "TrainingRunner", "evaluate", "ingest", "make_dataset", "predict", "read_rows",
    "steps_per_epoch",
    "synthesize_cohort", "train",
}


def test_all_is_pinned_and_resolves() -> None:
    assert set(sparkdl.__all__) == EXPECTED
    for name in sparkdl.__all__:
        assert callable(getattr(sparkdl, name)), name


def test_errors_share_one_base() -> None:
    for name in ("ConfigError", "DeidKeyError", "InputError", "TrainingError"):
        assert issubclass(getattr(sparkdl, name), sparkdl.SparkdlError)


def test_import_does_not_load_tensorflow() -> None:
    code = "import sys, sparkdl; sparkdl.ingest; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_help_lists_the_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "sparkdl", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("synth", "ingest", "train", "evaluate", "predict", "inspect"):
        assert command in out.stdout
