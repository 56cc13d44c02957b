"""The oldest end of the supported range still runs the whole job: pyspark 4.0.1, pyarrow 18.0.0.

The rest of the suite runs on the newest pins (constraints.txt). Here the CLI does synth →
ingest → 2-worker train → evaluate in ``.venv-oldest`` (``scripts/setup_oldest.sh``, which
``scripts/test.sh`` runs), as a cluster on Spark 4.0 (Databricks runtimes with Spark 4.0, for
one) would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import ROOT, run_sparkdl

KEY = "0b" * 32  # fixed, so the patient split (a keyed hash) is the same every run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def oldest_python() -> Path:
    setting = os.environ.get("SPARKDL_OLDEST_PYTHON", "")
    python = Path(setting) if setting else ROOT / ".venv-oldest" / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"No oldest-stack venv at {python}: run scripts/setup_oldest.sh (scripts/test.sh does)."
        )
    return python


def _sparkdl(python: Path, *args: str) -> None:
    env = {
        "SPARKDL_DEID_KEY": KEY,
        "PYSPARK_PYTHON": str(python),
        "PYSPARK_DRIVER_PYTHON": str(python),
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    run_sparkdl(*args, python=python, env=env, timeout=900)


def test_synth_ingest_train_evaluate_on_spark_4_0(oldest_python: Path, tmp_path: Path) -> None:
    cohort, data = tmp_path / "cohort", tmp_path / "dataset"
    model, report = tmp_path / "model", tmp_path / "report"
    # Small and quick: what is tested is that every stage runs on the oldest pins.
    _sparkdl(oldest_python, "synth", str(cohort), "--patients", "6", "--seed", "5",
             "--image-size", "64")  # fmt: skip
    _sparkdl(
        oldest_python,
        "ingest",
        str(cohort / "dicom"),
        "--output",
        str(data),
        "--annotations",
        str(cohort / "annotations.csv"),
        "--master",
        "local[2]",
    )
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["versions"]["pyspark"] == "4.0.1"
    assert manifest["versions"]["pyarrow"] == "18.0.0"
    assert manifest["counts"]["patches"] > 0
    (tmp_path / "train.yaml").write_text("min_steps_per_epoch: 2\n")
    _sparkdl(
        oldest_python,
        "train",
        "--data",
        str(data),
        "--model-dir",
        str(model),
        "--config",
        str(tmp_path / "train.yaml"),
        "--num-workers",
        "2",
        "--epochs",
        "2",
        "--master",
        "local[2]",
    )
    assert (model / "model.keras").is_file()
    assert len(json.loads((model / "history.json").read_text())["metrics"]["loss"]) == 2
    _sparkdl(
        oldest_python,
        "evaluate",
        "--model-dir",
        str(model),
        "--data",
        str(data),
        "--report",
        str(report),
    )
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["n"] > metrics["positives"] > 0 and 0.0 <= metrics["auc"] <= 1.0
