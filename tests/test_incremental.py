"""Incremental ingest (--mode append): no-op re-runs, new patients, series that gain slices."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from sparkdl.ingestion import ingest
from sparkdl.synth import synthesize_cohort

pytestmark = pytest.mark.slow


def _axial_files(dicom_dir: Path) -> dict[str, list[tuple[float, Path]]]:
    """Axial CT files per patient-series, with their position along the slice normal."""
    series: dict[str, list[tuple[float, Path]]] = {}
    for path in dicom_dir.rglob("*"):
        if not path.is_file():
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.get("Modality") != "CT" or "ImageOrientationPatient" not in ds \
                or "LOCALIZER" in list(ds.get("ImageType", [])):
            continue
        iop = np.array(ds.ImageOrientationPatient, dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        key = f"{ds.PatientID}|{ds.SeriesInstanceUID}"
        series.setdefault(key, []).append((float(np.dot(normal, ds.ImagePositionPatient)), path))
    return series


@pytest.fixture()
def landing(tmp_path: Path) -> dict:
    """Day 1: one patient minus the last 3 slices of one series; day 2: those slices and
    a second patient; plus a renamed copy of a day-1 file."""
    cohort = synthesize_cohort(tmp_path / "cohort", num_patients=2, seed=11, image_size=64)
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    shutil.copytree(cohort.dicom_dir, day1)
    day2.mkdir()
    series = _axial_files(day1)
    patients = sorted({key.split("|")[0] for key in series})
    grown_key = sorted(k for k in series if k.startswith(patients[0]))[0]
    held_back = [path for _, path in sorted(series[grown_key])[-3:]]
    for index, path in enumerate(held_back):
        shutil.move(path, day2 / f"late_{index}.dcm")
    for key, slices in series.items():
        if key.startswith(patients[1]):
            for _, path in slices:
                shutil.move(path, day2 / path.name)
    for path in list(day1.rglob("*")):  # the second patient's other objects land on day 2 too
        if path.is_file() and pydicom.dcmread(path, stop_before_pixels=True).PatientID == patients[1]:
            shutil.move(path, day2 / path.name)
    renamed = day2 / "renamed_copy.dcm"
    shutil.copy(next(p for _, p in series[grown_key] if p.exists()), renamed)
    return {"cohort": cohort, "day1": day1, "day2": day2, "grown": grown_key.split("|")[1],
            "num_day2_new": sum(1 for p in day2.iterdir()) - 1}


def test_append_noop_then_update(spark, deid_key: str, landing: dict, tmp_path: Path) -> None:
    from sparkdl.deid import remap_uid

    out = str(tmp_path / "out")
    annotations = str(landing["cohort"].annotations_csv)
    first = ingest([str(landing["day1"])], out, spark=spark, annotations=annotations)
    grown = remap_uid(deid_key.encode(), landing["grown"])
    volumes1 = pd.read_parquet(Path(out) / "volumes", columns=["series_uid", "num_slices"])
    slices_before = int(volumes1.loc[volumes1.series_uid == grown, "num_slices"].iloc[0])
    catalog1 = pd.read_parquet(Path(out) / "catalog")

    again = ingest([str(landing["day1"])], out, spark=spark, annotations=annotations, mode="append")
    assert again["changed"] is False and again["last_run"]["new_units"] == 0
    assert again["counts"] == first["counts"]

    both = [str(landing["day1"]), str(landing["day2"])]
    update = ingest(both, out, spark=spark, annotations=annotations, mode="append")
    assert update["changed"] is True
    # The renamed copy of a day-1 file is not ingested again (same content).
    assert update["last_run"]["new_units"] == landing["num_day2_new"]
    catalog = pd.read_parquet(Path(out) / "catalog")
    rejected = pd.read_parquet(Path(out) / "_restricted/rejected")
    assert catalog["sop_uid"].is_unique
    assert len(catalog) + len(rejected) == update["counts"]["units"]
    assert update["counts"]["units"] == first["counts"]["units"] + landing["num_day2_new"]
    volumes = pd.read_parquet(Path(out) / "volumes", columns=["series_uid", "num_slices"])
    assert volumes["series_uid"].is_unique  # rebuilt, not duplicated
    assert int(volumes.loc[volumes.series_uid == grown, "num_slices"].iloc[0]) == slices_before + 3
    assert volumes["series_uid"].nunique() > volumes1["series_uid"].nunique()
    # Day-1 rows of untouched series are unchanged, pseudonyms included.
    kept = catalog1[catalog1.series_uid != grown].sort_values("sop_uid").reset_index(drop=True)
    now = catalog[catalog.sop_uid.isin(kept.sop_uid)].sort_values("sop_uid").reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, now[kept.columns])
    patches = pd.read_parquet(Path(out) / "patches", columns=["series_uid", "label"])
    assert (patches.series_uid == grown).any() and patches.series_uid.nunique() >= 2
