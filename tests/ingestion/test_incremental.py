"""Incremental ingest (--mode append): no-op re-runs, new patients, series that gain slices."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from sparkdl import Labels
from sparkdl.ingestion.job import ingest
from sparkdl.synth import synthesize_cohort
from tests.helpers import SCRIPTS, run_child

pytestmark = pytest.mark.slow


def _axial_files(dicom_dir: Path) -> dict[str, list[tuple[float, Path]]]:
    """Axial CT files per patient-series, with their position along the slice normal."""
    series: dict[str, list[tuple[float, Path]]] = {}
    for path in dicom_dir.rglob("*"):
        if not path.is_file():
            continue
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if (
            ds.get("Modality") != "CT"
            or "ImageOrientationPatient" not in ds
            or "LOCALIZER" in list(ds.get("ImageType", []))
        ):
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
        if (
            path.is_file()
            and pydicom.dcmread(path, stop_before_pixels=True).PatientID == patients[1]
        ):
            shutil.move(path, day2 / path.name)
    renamed = day2 / "renamed_copy.dcm"
    shutil.copy(next(p for _, p in series[grown_key] if p.exists()), renamed)
    return {
        "cohort": cohort,
        "day1": day1,
        "day2": day2,
        "grown": grown_key.split("|")[1],
        "num_day2_new": sum(1 for p in day2.iterdir()) - 1,
    }


def _part_files(table: Path) -> dict[str, int]:
    """Part file name → modification time (ns) of a published table."""
    return {p.name: p.stat().st_mtime_ns for p in table.glob("part-*")}


def _petastorm_rows(table: Path, field: str) -> list[str]:
    """Every row's ``field`` as a Petastorm reader sees the table (it trusts _common_metadata)."""
    from sparkdl.store.reader import read_rows

    return sorted(row[field] for row in read_rows(table.resolve().as_uri(), [field]))


def test_append_noop_then_update(spark, deid_key: str, landing: dict, tmp_path: Path) -> None:
    from sparkdl.deid import remap_uid

    out = str(tmp_path / "out")
    annotations = str(landing["cohort"].annotations_csv)
    first = ingest([str(landing["day1"])], out, spark=spark, labels=Labels(annotations=annotations))
    grown = remap_uid(deid_key.encode(), landing["grown"])
    volumes1 = pd.read_parquet(Path(out) / "volumes", columns=["series_uid", "num_slices"])
    slices_before = int(volumes1.loc[volumes1.series_uid == grown, "num_slices"].iloc[0])
    catalog1 = pd.read_parquet(Path(out) / "catalog")
    volume_files1 = _part_files(Path(out) / "volumes")
    grown_files = {
        name
        for name in volume_files1
        if grown
        in set(pd.read_parquet(Path(out) / "volumes" / name, columns=["series_uid"]).series_uid)
    }
    assert len(grown_files) == 1
    lineage_files1 = _part_files(Path(out) / "_restricted/lineage")

    again = ingest(
        [str(landing["day1"])],
        out,
        spark=spark,
        labels=Labels(annotations=annotations),
        mode="append",
    )
    assert again["changed"] is False and again["last_run"]["new_units"] == 0
    assert again["last_run"]["files_read"] == 0  # seen unchanged: not even opened
    assert again["counts"] == first["counts"]

    both = [str(landing["day1"]), str(landing["day2"])]
    update = ingest(both, out, spark=spark, labels=Labels(annotations=annotations), mode="append")
    assert update["changed"] is True
    assert update["last_run"]["files_read"] == len(list(landing["day2"].iterdir()))
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
    patches = pd.read_parquet(Path(out) / "patches", columns=["patch_id", "series_uid", "label"])
    assert (patches.series_uid == grown).any() and patches.series_uid.nunique() >= 2
    assert update["counts"]["patches"] == len(patches)

    # Copy-on-write by file: only the volume file that held the grown series was replaced,
    # lineage only gained files, and Petastorm's metadata describes the table as it now is.
    volume_files = _part_files(Path(out) / "volumes")
    assert set(volume_files1) - set(volume_files) == grown_files
    assert all(
        volume_files[name] == mtime
        for name, mtime in volume_files1.items()
        if name not in grown_files
    )
    lineage_files = _part_files(Path(out) / "_restricted/lineage")
    assert set(lineage_files1) < set(lineage_files)
    assert all(lineage_files[name] == mtime for name, mtime in lineage_files1.items())
    assert _petastorm_rows(Path(out) / "volumes", "series_uid") == sorted(volumes.series_uid)
    assert _petastorm_rows(Path(out) / "patches", "patch_id") == sorted(patches.patch_id)


def test_append_killed_while_publishing_is_finished_by_the_next_run(
    spark, deid_key: str, landing: dict, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    annotations = str(landing["cohort"].annotations_csv)
    first = ingest(
        [str(landing["day1"])], str(out), spark=spark, labels=Labels(annotations=annotations)
    )
    both = [str(landing["day1"]), str(landing["day2"])]
    killed = run_child(
        SCRIPTS / "append_killed_after_commit.py", annotations, str(out), *both, new_session=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (out / "manifest.json").exists()  # half published: does not look complete
    assert list(out.glob("_staging/*/_commit.json"))

    # The next append run finishes that commit, then finds nothing new: no manual step.
    again = ingest(
        both, str(out), spark=spark, labels=Labels(annotations=annotations), mode="append"
    )
    assert again["changed"] is False and again["last_run"]["files_read"] == 0
    assert not (out / "_staging").exists()
    assert again["counts"]["units"] == first["counts"]["units"] + landing["num_day2_new"]
    catalog = pd.read_parquet(out / "catalog", columns=["sop_uid"])
    rejected = pd.read_parquet(out / "_restricted/rejected", columns=["reason"])
    assert catalog.sop_uid.is_unique and len(catalog) + len(rejected) == again["counts"]["units"]
    volumes = pd.read_parquet(out / "volumes", columns=["series_uid"])
    assert _petastorm_rows(out / "volumes", "series_uid") == sorted(volumes.series_uid)
