"""The public surface is pinned: adding or removing a name is a deliberate change."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sparkdl
from tests.helpers import run_sparkdl

EXPECTED = {
    "ConfigError",
    "DataError",
    "Dataset",
    "DeidKeyError",
    "DetectOptions",
    "Geometry",
    "IngestConfig",
    "InputError",
    "Labels",
    "ReadOptions",
    "ShardPlan",
    "SparkdlError",
    "TrainConfig",
    "TrainingError",
    "TrainingRunner",
    "detect",
    "evaluate",
    "get_spark",
    "ingest",
    "inspect_dataset",
    "make_dataset",
    "plan_shards",
    "predict",
    "read_rows",
    "synthesize_cohort",
    "train",
}


def test_all_is_pinned_and_resolves() -> None:
    assert set(sparkdl.__all__) == EXPECTED
    for name in sparkdl.__all__:
        assert callable(getattr(sparkdl, name)), name


def test_errors_share_one_base() -> None:
    errors = [name for name in sparkdl.__all__ if name.endswith("Error")]
    assert sorted(errors) == [
        "ConfigError",
        "DataError",
        "DeidKeyError",
        "InputError",
        "SparkdlError",
        "TrainingError",
    ]
    for name in errors:
        assert issubclass(getattr(sparkdl, name), sparkdl.SparkdlError)


@pytest.mark.slow
def test_import_does_not_load_tensorflow() -> None:
    code = "import sys, sparkdl; sparkdl.ingest; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_cli_help_lists_the_commands() -> None:
    out = run_sparkdl("--help")
    for command in ("synth", "ingest", "train", "evaluate", "predict", "inspect"):
        assert command in out.stdout


def test_stages_take_data_first_then_model_dir_then_output() -> None:
    import inspect

    expected = {
        "make_dataset": ["data"],
        "plan_shards": ["data"],
        "train": ["data", "model_dir"],
        "evaluate": ["data", "model_dir", "report_dir"],
        "predict": ["data", "model_dir", "output"],
        "inspect_dataset": ["data"],
        "read_rows": ["url", "columns"],
    }
    for name, leading in expected.items():
        parameters = list(inspect.signature(getattr(sparkdl, name)).parameters.values())
        assert [p.name for p in parameters[: len(leading)]] == leading, name
        assert all(p.kind is p.KEYWORD_ONLY for p in parameters[len(leading) :]), name


def test_no_public_function_takes_more_than_seven_parameters() -> None:
    """Options objects (ReadOptions, TrainConfig, IngestConfig) hold the knobs instead."""
    import inspect

    functions = [n for n in sparkdl.__all__ if inspect.isfunction(getattr(sparkdl, n))]
    assert "make_dataset" in functions and "train" in functions
    for name in functions:
        assert len(inspect.signature(getattr(sparkdl, name)).parameters) <= 7, name
