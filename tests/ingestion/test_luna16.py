"""LUNA16 as it is downloaded, end to end from the CLI: MetaImage scans, annotations.csv,
a candidates file of hundreds of candidates per scan and annotations_excluded.csv go through
ingest → train → evaluate with no preprocessing, and the report gives FROC, CPM and AUC.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sparkdl.deid import remap_uid
from tests.helpers import TEST_KEY, run_sparkdl


@pytest.mark.slow
def test_luna16_layout_ingests_trains_and_reports_froc(tmp_path: Path) -> None:
    def sparkdl(*args: str) -> None:
        run_sparkdl(*args, "--quiet")

    cohort, out, model, report = (tmp_path / n for n in ("cohort", "out", "model", "report"))
    sparkdl("synth", str(cohort), "--patients", "10", "--seed", "3", "--image-size", "64",
            "--format", "mhd", "--candidates-per-series", "150")  # fmt: skip
    candidates = list(csv.DictReader((cohort / "candidates.csv").open()))
    per_series: dict[str, int] = {}
    for row in candidates:
        per_series[row["seriesuid"]] = per_series.get(row["seriesuid"], 0) + 1
    assert min(per_series.values()) > 150
    # Two findings LUNA16 excludes: at two negative candidates, so those are ignored.
    excluded = [r for r in candidates if r["class"] == "0"][:2]
    with (tmp_path / "annotations_excluded.csv").open("w") as handle:
        handle.write("seriesuid,coordX,coordY,coordZ,diameter_mm\n")
        for r in excluded:
            handle.write(f"{r['seriesuid']},{r['coordX']},{r['coordY']},{r['coordZ']},-1\n")
    (tmp_path / "ingest.yaml").write_text(
        "patches:\n  train_negatives_per_series: 20\n  train_fraction: 0.6\n"
        "  val_fraction: 0.1\n  test_fraction: 0.3\n"
    )
    sparkdl("ingest", str(cohort / "mhd"), "--output", str(out),
            "--annotations", str(cohort / "annotations.csv"),
            "--candidates", str(cohort / "candidates.csv"),
            "--excluded", str(tmp_path / "annotations_excluded.csv"),
            "--config", str(tmp_path / "ingest.yaml"), "--master", "local[2]")  # fmt: skip
    patches = pq.read_table(out / "patches", columns=["split", "label", "source", "series_uid"])
    rows = patches.to_pylist()
    # Train keeps every positive and 20 negative candidates per series; val and test, all.
    checked = {"train": 0, "other": 0}
    for series, count in per_series.items():
        mine = [r for r in rows if r["series_uid"] == remap_uid(TEST_KEY.encode(), series)]
        negatives = sum(r["label"] == 0 for r in mine)
        if mine and mine[0]["split"] == "train":
            assert negatives == 20
            checked["train"] += 1
        elif mine:
            assert len(mine) == count  # every candidate, positives included
            checked["other"] += 1
    assert checked["train"] and checked["other"], checked  # both rules were exercised
    findings = pq.read_table(out / "findings").to_pylist()
    assert {f["kind"] for f in findings} == {"nodule", "excluded"}

    (tmp_path / "train.yaml").write_text("min_steps_per_epoch: 2\n")  # the report is tested
    sparkdl("train", "--data", str(out), "--model-dir", str(model), "--epochs", "2",
            "--config", str(tmp_path / "train.yaml"), "--num-workers", "1",
            "--master", "local[2]")  # fmt: skip
    sparkdl("evaluate", "--model-dir", str(model), "--data", str(out), "--report", str(report))
    metrics = json.loads((report / "metrics.json").read_text())
    froc = metrics["froc"]
    assert set(froc["sensitivity_at_fp_per_scan"]) == {"0.125", "0.25", "0.5", "1", "2", "4", "8"}
    assert 0.0 <= froc["cpm"] <= 1.0 and metrics["auc"] is not None
    assert froc["num_scans"] == len({r["series_uid"] for r in rows if r["split"] == "test"})
    assert froc["num_nodules"] > 0
    # The challenge's script keeps each scan's 100 most probable marks (ties at the cut go).
    assert 90 * froc["num_scans"] <= froc["num_candidates"] <= 100 * froc["num_scans"]
    assert (report / "froc.png").stat().st_size > 0
    assert "CPM (LUNA16)" in (report / "summary.txt").read_text()

    # The submission file, with the original series ids (the candidates file and the key).
    submission = tmp_path / "submission.csv"
    sparkdl("predict", "--model-dir", str(model), "--data", str(out), "--output",
            str(tmp_path / "predictions"), "--submission", str(submission),
            "--original-ids-from", str(cohort / "candidates.csv"),
            "--master", "local[2]")  # fmt: skip
    submitted = list(csv.DictReader(submission.open()))
    assert tuple(submitted[0]) == ("seriesuid", "coordX", "coordY", "coordZ", "probability")
    assert len(submitted) == sum(r["source"] == "candidate" for r in rows)
    assert {r["seriesuid"] for r in submitted} <= set(per_series)  # the originals
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in submitted)
