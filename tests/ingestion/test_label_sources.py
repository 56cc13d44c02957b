"""One nodule is one positive, whatever the number of label sources that name it.

LUNA16's ``annotations.csv`` was derived from the LIDC readers' XML, so users often give both
for the same scans. Ingested together, each nodule must become one positive patch, keeping
the readers' malignancy (the CSV says -1), the CSV's centre and both sources.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest

from sparkdl.store.reader import read_rows
from tests.helpers import run_sparkdl
from tests.lidc_data import LIDC

pytestmark = pytest.mark.slow

_PATCH_COLUMNS = ["label", "malignancy", "source", "sources", "center", "series_uid"]


def _ingest(inputs: Path, out: Path, config: Path, *labels: str) -> dict:
    run_sparkdl("ingest", str(inputs), "--output", str(out), "--config", str(config),
                "--master", "local[2]", "--quiet", *labels)  # fmt: skip
    return json.loads((out / "manifest.json").read_text())


def test_the_real_series_with_its_xml_and_a_csv_of_the_same_nodules(tmp_path: Path) -> None:
    if not LIDC.is_dir():
        pytest.skip(f"the real LIDC-IDRI series is not at {LIDC} (see its README)")
    inputs = tmp_path / "in"
    shutil.copytree(LIDC / "LIDC-IDRI-0002", inputs / "LIDC-IDRI-0002")
    config = tmp_path / "ingest.yaml"  # the readers' nodule is outlined by 2 of 4
    config.write_text("lidc:\n  min_readers: 2\ncandidates:\n  generate: never\n")
    xml_only = _ingest(inputs, tmp_path / "xml", config)
    nodules = [n for n in pq.read_table(tmp_path / "xml" / "nodules").to_pylist() if n["positive"]]
    assert xml_only["counts"]["nodules"] == len(nodules) == 1
    # The CSV a LUNA16 user has: the original SeriesInstanceUID, centres a few tenths of a mm
    # from the readers' (LUNA16 averaged them otherwise), no malignancy.
    first = next((inputs / "LIDC-IDRI-0002").rglob("*.dcm"))
    original = str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID)
    listed = tmp_path / "annotations.csv"
    with listed.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        for n in nodules:
            out.writerow([original, n["coordX"] + 0.3, n["coordY"] - 0.2, n["coordZ"] + 0.25, 24.0])
    both = _ingest(inputs, tmp_path / "both", config, "--annotations", str(listed))
    assert both["counts"]["nodules"] == 1  # was 2 before sources were merged
    positives = [p for p in read_rows(str(tmp_path / "both" / "patches"), _PATCH_COLUMNS)
                 if p["label"] == 1]  # fmt: skip
    assert len(positives) == 1
    (positive,) = positives
    assert positive["sources"] == "annotations,lidc" and positive["malignancy"] == 1
    expected = [nodules[0]["coordX"] + 0.3, nodules[0]["coordY"] - 0.2, nodules[0]["coordZ"] + 0.25]
    assert positive["center"].tolist() == pytest.approx(expected)  # the CSV's centre wins


def test_a_synthetic_cohort_with_xml_and_csv_has_one_positive_per_nodule(tmp_path: Path) -> None:
    run_sparkdl("synth", str(tmp_path / "cohort"), "--patients", "4", "--seed", "2",
                "--image-size", "64", "--lidc-xml")  # fmt: skip
    truth = list(csv.DictReader((tmp_path / "cohort" / "annotations.csv").open()))
    config = tmp_path / "ingest.yaml"
    config.write_text("lidc:\n  min_readers: 2\n")  # candidates generated (auto): no list given
    manifest = _ingest(tmp_path / "cohort" / "dicom", tmp_path / "out", config,
                       "--annotations", str(tmp_path / "cohort" / "annotations.csv"))  # fmt: skip
    assert manifest["counts"]["nodules"] == len(truth)
    positives = [p for p in read_rows(str(tmp_path / "out" / "patches"), _PATCH_COLUMNS)
                 if p["label"] == 1]  # fmt: skip
    assert len(positives) == len(truth)
    # Every positive is named by the CSV; those the readers outlined (>= 3 mm) by both.
    assert all("annotations" in p["sources"].split(",") for p in positives)
    both = [p for p in positives if "lidc" in p["sources"].split(",")]
    assert len(both) >= len(truth) - 2 and all(p["malignancy"] in (0, 1) for p in both)
