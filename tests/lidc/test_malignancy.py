"""Malignancy end to end from the readers' XML alone: synth → ingest → train → evaluate (CLI).

The cohort's malignancy follows what a radiologist sees (size, margin, texture), and its
simulated readers rate it; no CSV is given to ingest. A model trained with ``task:
malignancy`` must rank malignant above benign nodules on patients it never saw, clearly
better than chance: the lower end of the AUC's 95 % bootstrap interval above 0.5.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_sparkdl


@pytest.mark.slow
def test_malignancy_model_from_read_messages_beats_chance(tmp_path: Path) -> None:
    def sparkdl(*args: str) -> None:
        run_sparkdl(*args, "--quiet")

    # Two readers suffice (the synthetic ones outline every nodule they see); a large test
    # split, so that the interval is narrow enough to mean something. Malignancy is learnt
    # from the nodules alone: no candidates are generated (they would add only negatives).
    (tmp_path / "ingest.yaml").write_text(
        "lidc:\n  min_readers: 2\npatches:\n  train_fraction: 0.5\n  val_fraction: 0.1\n"
        "  test_fraction: 0.4\ncandidates:\n  generate: never\n"
    )
    (tmp_path / "train.yaml").write_text("task: malignancy\nepochs: 20\nmin_steps_per_epoch: 2\n")
    cohort, out, model, report = (tmp_path / n for n in ("cohort", "out", "model", "report"))
    sparkdl("synth", str(cohort), "--patients", "50", "--seed", "7", "--image-size", "64",
            "--lidc-xml")  # fmt: skip
    sparkdl("ingest", str(cohort / "dicom"), "--output", str(out), "--config",
            str(tmp_path / "ingest.yaml"), "--master", "local[2]")  # fmt: skip
    sparkdl("train", "--data", str(out), "--model-dir", str(model), "--config",
            str(tmp_path / "train.yaml"), "--num-workers", "1", "--master", "local[2]")  # fmt: skip
    sparkdl("evaluate", "--model-dir", str(model), "--data", str(out), "--report", str(report))
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["malignancy_n"] >= 40  # patches with a known malignancy in the test split
    low, high = metrics["auc_ci95"]
    assert low > 0.5, metrics  # clearly better than chance
    assert low <= metrics["malignancy_auc"] <= high
