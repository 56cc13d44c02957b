"""The ingest job end to end on a synthetic cohort (loose + zip + tar) mixed with bad inputs.

One CLI run (a subprocess, so its logs can be scanned for PHI) is shared by the module's
tests; a few cases run their own small ingests in-process on the shared SparkSession. Every
case is ``slow``: a CLI run, or tens of seconds of Spark work.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from sparkdl import Labels
from sparkdl.deid import remap_uid
from sparkdl.synth import synthesize_cohort
from tests.helpers import TEST_KEY, run_sparkdl

pytestmark = pytest.mark.slow


def _encoded(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def _bad_inputs(folder: Path) -> dict[str, str]:
    """Write one file per bad-input case; returns file name → expected reason."""
    folder.mkdir()
    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    expected = {}

    def put(name: str, data: bytes, reason: str) -> None:
        (folder / name).write_bytes(data)
        expected[name] = reason

    put("empty.dcm", b"", "empty_file")
    put("notes.txt", b"this is not DICOM at all\n" * 20, "not_dicom")
    put("truncated.dcm", ct[: len(ct) // 2], "truncated_pixel_data")
    put("cut_header.dcm", ct[:200], "missing_required_tag")  # cut inside the header
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    put("no_pixels.dcm", _encoded(ds), "missing_pixel_data")
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.SeriesInstanceUID
    ds.SOPInstanceUID = "1.2.3.4.5.6.7.1"
    put("no_series.dcm", _encoded(ds), "missing_required_tag")
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000
    ds.SOPInstanceUID = "1.2.3.4.5.6.7.2"
    put("huge.dcm", _encoded(ds), "declared_size_too_large")
    for number, (syntax, reason) in enumerate(
        [
            (pydicom.uid.JPEGLSLossless, "pixel_decode_error"),  # decodable, but a corrupt stream
            (pydicom.uid.MPEG4HP41, "unsupported_transfer_syntax"),
        ],
        start=3,
    ):  # no decoder
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.file_meta.TransferSyntaxUID = syntax
        ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8" + b"\0" * 64])
        ds.SOPInstanceUID = f"1.2.3.4.5.6.7.{number}"
        put(f"{syntax.keyword}.dcm", _encoded(ds), reason)
    put("DICOMDIR", Path(get_testdata_file("DICOMDIR")).read_bytes(), "dicomdir")
    put("broken.zip", b"PK\x03\x04" + b"\x00" * 100, "corrupt_archive")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("../../escape.dcm", ct)
        archive.writestr("bomb.bin", b"\0" * 20_000_000)
    put("hostile.zip", buffer.getvalue(), "hostile")
    os.symlink("/etc/hostname", folder / "link.dcm")
    expected["link.dcm"] = "symlink"
    return expected


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("cohort")
    loose = synthesize_cohort(base / "loose", num_patients=7, seed=3, image_size=64)
    zipped = synthesize_cohort(
        base / "zipped", num_patients=2, seed=4, archive="zip", image_size=64
    )
    tarred = synthesize_cohort(
        base / "tarred", num_patients=1, seed=5, archive="tar", image_size=64
    )
    bad = _bad_inputs(base / "bad")
    annotations = pd.concat([pd.read_csv(c.annotations_csv) for c in (loose, zipped, tarred)])
    annotations.to_csv(base / "annotations.csv", index=False)
    phi = set()
    for c in (loose, zipped, tarred):
        phi |= {s for s in json.loads(c.phi_json.read_text()) if len(str(s)) >= 4}
    return {
        "base": base,
        "summaries": (loose, zipped, tarred),
        "bad": bad,
        "phi": phi,
        "inputs": [
            str(loose.dicom_dir),
            str(zipped.dicom_dir),
            str(tarred.dicom_dir),
            str(base / "bad"),
        ],
        "annotations": str(base / "annotations.csv"),
    }


@pytest.fixture(scope="module")
def ingested(cohort: dict) -> dict:
    out = cohort["base"] / "out"
    done = run_sparkdl(
        "ingest",
        *cohort["inputs"],
        "--output",
        str(out),
        "--annotations",
        cohort["annotations"],
        "--export-dicom",
        "--master",
        "local[2]",
    )
    return {
        "out": out,
        "logs": done.stdout + done.stderr,
        "manifest": json.loads((out / "manifest.json").read_text()),
    }


def _table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def _expected_units(cohort: dict) -> int:
    count = 0
    for summary in cohort["summaries"]:
        for path in Path(summary.dicom_dir).rglob("*"):
            if not path.is_file():
                continue
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as archive:
                    count += sum(not i.is_dir() for i in archive.infolist())
            elif path.name.endswith((".tar", ".tar.gz", ".tgz")):
                with tarfile.open(path) as archive:
                    count += sum(m.isfile() for m in archive.getmembers())
            else:
                count += 1
    return count + len(cohort["bad"]) + 1  # hostile.zip holds two members


def test_every_input_is_exactly_one_row(cohort: dict, ingested: dict) -> None:
    out = ingested["out"]
    catalog = _table(out / "catalog")
    rejected = _table(out / "_restricted/rejected")
    lineage = _table(out / "_restricted/lineage")
    assert len(catalog) + len(rejected) == _expected_units(cohort)
    keys = pd.concat([lineage[["source_path", "member"]], rejected[["source_path", "member"]]])
    assert not keys.fillna("").duplicated().any()
    assert len(lineage) == len(catalog) and catalog["sop_uid"].is_unique
    counts = ingested["manifest"]["counts"]
    assert counts["cataloged"] == len(catalog) and counts["rejected"] == len(rejected)
    assert counts["units"] == len(catalog) + len(rejected)
    assert sum(ingested["manifest"]["rejected_by_reason"].values()) == len(rejected)
    assert not (out / "_staging").exists()


def test_bad_inputs_are_rejected_with_their_reason(cohort: dict, ingested: dict) -> None:
    rejected = _table(ingested["out"] / "_restricted/rejected")
    by_name = {(Path(r.source_path).name, r.member): r.reason for r in rejected.itertuples()}
    for name, reason in cohort["bad"].items():
        if name == "hostile.zip":
            assert by_name[(name, "../../escape.dcm")] == "unsafe_member_path"
            assert by_name[(name, "bomb.bin")] == "archive_bomb"
        else:
            assert by_name[(name, None)] == reason, name
    # The synthetic dose report (BurnedInAnnotation YES) never reaches the catalog.
    assert "burned_in_annotation" in set(rejected["reason"])


def test_no_phi_in_any_deidentified_output_or_log(cohort: dict, ingested: dict) -> None:
    out = ingested["out"]
    phi = cohort["phi"]
    assert phi, "the synthetic cohort must carry PHI for this test to mean anything"
    texts = [ingested["logs"], (out / "manifest.json").read_text()]
    catalog = _table(out / "catalog")
    texts += [catalog[c].astype(str).str.cat(sep="\n") for c in catalog.columns]
    header = json.loads(catalog["header_json"].iloc[0])
    assert header["00120062"]["Value"] == ["YES"]  # PatientIdentityRemoved
    for name in ("volumes", "patches"):
        table = _table(out / name)
        texts += [
            table[c].str.cat(sep="\n")
            for c in table.columns
            if len(table) and isinstance(table[c].iloc[0], str)
        ]
    blob = "\n".join(texts)
    leaked = sorted(s for s in phi if s in blob)
    assert not leaked, f"PHI found in outputs/logs: {leaked[:5]}"
    exported = list((out / "dicom").rglob("*.dcm"))
    assert len(exported) == len(catalog)
    for path in exported:
        raw = path.read_bytes()
        assert not [s for s in phi if s.encode() in raw], path
        assert pydicom.dcmread(path).PatientIdentityRemoved == "YES"
    assert TEST_KEY not in blob


def test_volumes_and_patches_read_back(cohort: dict, ingested: dict) -> None:
    """What ingest wrote reads back as Petastorm datasets (tests/interop: with Petastorm too)."""
    from types import SimpleNamespace

    from sparkdl.store.reader import read_rows

    out = ingested["out"]
    patches = [SimpleNamespace(**row) for row in read_rows(str(out / "patches"))]
    volumes = {row["series_uid"]: row for row in read_rows(str(out / "volumes"))}
    loose = cohort["summaries"][0]
    variants = {
        remap_uid(TEST_KEY.encode(), s.series_uid): s.variant
        for s in loose.series
        if s.kind == "axial_ct"
    }
    assert set(variants.values()) <= {variants[u] for u in volumes if u in variants}
    positives = [p for p in patches if p.label == 1]
    negatives = [p for p in patches if p.label == 0]
    assert positives and negatives
    # Annotations only: candidates are generated (the default), and a positive is the one
    # generated candidate nearest to a nodule, within its radius (LUNA16's hit rule), so
    # nodule tissue lies within the nodule's radius of the patch centre (1 mm voxels).
    nodules = pd.read_parquet(out / "findings")
    seen_variants = set()
    for patch in positives:
        size = patch.patch.shape[0]
        radius = max(float(patch.diameter_mm) / 2.0, 3.0)
        z, y, x = np.ogrid[:size, :size, :size]
        ball = (z - (size - 1) / 2) ** 2 + (y - (size - 1) / 2) ** 2 + (x - (size - 1) / 2) ** 2
        # Above the aerated lung (-850 HU) even for ground glass (-750 to -300 HU).
        assert patch.patch[ball <= radius**2].max() > -650, variants.get(patch.series_uid)
        seen_variants.add(variants.get(patch.series_uid))
    assert set(variants.values()) <= seen_variants
    for patch in negatives:
        assert patch.source == "generated"
        mine = nodules[nodules["series_uid"] == patch.series_uid]
        centres = mine[["coordX", "coordY", "coordZ"]].to_numpy()
        reach = np.maximum(mine["diameter_mm"].to_numpy() / 2.0, 3.0)
        assert np.all(np.linalg.norm(centres - patch.center, axis=1) > reach)
    by_patient: dict[str, set[str]] = {}
    for patch in patches:
        by_patient.setdefault(patch.patient_id, set()).add(patch.split)
    assert all(len(splits) == 1 for splits in by_patient.values())


def test_rerun_gives_same_pseudonyms_and_rows(
    spark, cohort: dict, ingested: dict, tmp_path: Path, deid_key: str
) -> None:
    from sparkdl.ingestion.job import ingest

    tarred = cohort["summaries"][2]
    ingest([str(tarred.dicom_dir)], str(tmp_path / "again"), spark=spark)
    again = _table(tmp_path / "again/catalog").drop(
        columns=["volume_id", "volume_status", "volume_reason"]
    )
    first = _table(ingested["out"] / "catalog")
    first = first[first["sop_uid"].isin(again["sop_uid"])][again.columns]
    key = ["sop_uid"]
    pd.testing.assert_frame_equal(
        again.sort_values(key).reset_index(drop=True), first.sort_values(key).reset_index(drop=True)
    )


def test_pydicom_test_files_are_all_accounted_for(spark, tmp_path: Path, deid_key: str) -> None:
    from sparkdl.ingestion.job import ingest

    folder = Path(get_testdata_file("CT_small.dcm")).parent
    files = [p for p in folder.rglob("*") if p.is_file() or p.is_symlink()]
    manifest = ingest([str(folder)], str(tmp_path / "out"), spark=spark)
    assert manifest["counts"]["units"] == len(files)
    assert manifest["counts"]["cataloged"] > 0


def test_ingest_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    done = run_sparkdl(
        "ingest",
        str(tmp_path),
        "--output",
        str(tmp_path / "out"),
        check=False,
        env={"SPARKDL_DEID_KEY": None},
        timeout=120,
    )
    assert done.returncode == 2
    assert "SPARKDL_DEID_KEY" in done.stderr and "token_hex" in done.stderr
    assert not (tmp_path / "out").exists()


def test_failed_run_leaves_nothing_that_looks_complete(
    spark, cohort: dict, tmp_path: Path, deid_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sparkdl.ingestion.job as ingest_module
    from sparkdl.ingestion import label_stage

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated crash while cutting patches")

    tarred = cohort["summaries"][2]
    out = tmp_path / "out"
    monkeypatch.setattr(label_stage, "build_patches", fail)
    with pytest.raises(RuntimeError):
        ingest_module.ingest(
            [str(tarred.dicom_dir)],
            str(out),
            spark=spark,
            labels=Labels(annotations=str(tarred.annotations_csv)),
        )
    assert not (out / "manifest.json").exists() and not (out / "catalog").exists()
    monkeypatch.undo()
    monkeypatch.setenv("SPARKDL_DEID_KEY", TEST_KEY)
    ingest_module.ingest([str(tarred.dicom_dir)], str(out), spark=spark)
    assert (out / "manifest.json").exists() and not (out / "_staging").exists()


def test_the_same_instance_twice_is_cataloged_once(spark, tmp_path: Path, deid_key: str) -> None:
    """Copies of one SOPInstanceUID (a file, its copy, the same file in a zip): the first by
    (source_path, member) is cataloged, the others are duplicate_instance; across runs the
    earlier run's copy wins. Only key columns are ranked, so this holds without shuffling
    pixels (scripts/bench_ingest.py measures the shuffle)."""
    import shutil
    import zipfile

    from sparkdl.ingestion.config import IngestConfig
    from sparkdl.ingestion.job import ingest

    source = Path(get_testdata_file("CT_small.dcm"))
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(source, inputs / "a.dcm")
    shutil.copy(source, inputs / "b.dcm")
    with zipfile.ZipFile(inputs / "c.zip", "w") as archive:
        archive.write(source, "nested/ct.dcm")
    edited = pydicom.dcmread(source)
    edited.WindowCenter = 123  # other bytes (kept by de-identification), the same SOP UID
    edited.save_as(inputs / "d.dcm")
    out = tmp_path / "out"
    config = IngestConfig(export_dicom=True)
    manifest = ingest([str(inputs)], str(out), spark=spark, config=config)
    assert manifest["counts"]["cataloged"] == 1
    assert manifest["rejected_by_reason"] == {"duplicate_instance": 3}
    catalog = _table(out / "catalog")
    lineage = _table(out / "_restricted/lineage")
    rejected = _table(out / "_restricted/rejected")
    assert len(catalog) == 1 and lineage["source_path"].iloc[0].endswith("a.dcm")
    assert sorted(Path(p).name for p in rejected["source_path"]) == ["b.dcm", "c.zip", "d.dcm"]
    assert set(rejected["detail"]) == {"same SOPInstanceUID as an earlier input"}
    # The export holds the cataloged copy, whichever copy's task finished last.
    (exported,) = (out / "dicom").rglob("*.dcm")
    assert exported.name == catalog["sop_uid"].iloc[0] + ".dcm"
    assert pydicom.dcmread(exported).get("WindowCenter") is None  # a.dcm has none; d.dcm 123
    later = tmp_path / "later"
    later.mkdir()
    resent = pydicom.dcmread(source)
    resent.WindowCenter = 99  # other bytes, the same SOPInstanceUID
    resent.save_as(later / "0.dcm")
    appended = ingest([str(later)], str(out), spark=spark, mode="append", config=config)
    assert appended["counts"]["cataloged"] == 1
    assert appended["rejected_by_reason"] == {"duplicate_instance": 4}
    assert [p.name for p in (out / "dicom").rglob("*.dcm")] == [exported.name]
    assert pydicom.dcmread(exported).get("WindowCenter") is None  # not the resent copy's 99
