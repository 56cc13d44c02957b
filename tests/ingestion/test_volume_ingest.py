"""MetaImage and NIfTI volumes among the ingest inputs, as LUNA16 and other collections ship them.

The same synthetic cohort written as DICOM and as ``.mhd`` + ``.raw`` (``sparkdl synth --format
mhd``) gives the same patches around the same annotated points; bad volume files get their
reasons and the job goes on; an ``.mhd`` and its data file pair up in folders, zips and tars,
either way round, and the data file is accounted with its header.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from sparkdl import read_rows
from sparkdl.geometry import Geometry
from sparkdl.volume_files import write_metaimage, write_mha, write_nifti
from tests.helpers import run_sparkdl

pytestmark = pytest.mark.slow


def _sparkdl(*args: str) -> None:
    run_sparkdl(*args, "--quiet")


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cohort written twice, as DICOM and as MetaImage, each ingested with its CSV at its
    annotated points (no generated candidates: one HU of rounding may move a candidate)."""
    root = tmp_path_factory.mktemp("twins")
    (root / "ingest.yaml").write_text("candidates:\n  generate: never\n")
    for fmt in ("dicom", "mhd"):
        _sparkdl("synth", str(root / fmt), "--patients", "3", "--seed", "1",
                 "--image-size", "64", "--format", fmt)  # fmt: skip
        _sparkdl("ingest", str(root / fmt / fmt), "--output", str(root / f"out-{fmt}"),
                 "--annotations", str(root / fmt / "annotations.csv"),
                 "--config", str(root / "ingest.yaml"), "--master", "local[2]")  # fmt: skip
    return root


def _patches(out: Path) -> dict[str, np.ndarray]:
    rows = read_rows(str(out / "patches"), ["patch_id", "patch", "source"])
    return {r["patch_id"]: r["patch"] for r in rows if r["source"] == "annotation"}


def test_metaimage_and_dicom_of_one_series_give_the_same_patches(twins: Path) -> None:
    from_dicom, from_mhd = _patches(twins / "out-dicom"), _patches(twins / "out-mhd")
    # Same pseudonymous series (the file stem went through the UID map), same points.
    assert len(from_mhd) == 15 and set(from_mhd) == set(from_dicom)
    for patch_id, patch in from_mhd.items():
        difference = np.abs(patch.astype(np.int32) - from_dicom[patch_id].astype(np.int32))
        # DICOM stores rescaled integers: one HU of rounding, nothing else.
        assert difference.max() <= 1, patch_id


def test_a_volume_file_is_one_unit_and_its_data_file_goes_with_it(twins: Path) -> None:
    manifest = json.loads((twins / "out-mhd" / "manifest.json").read_text())
    num_headers = len(list((twins / "mhd" / "mhd").rglob("*.mhd")))
    assert manifest["counts"]["files_seen"] == num_headers  # the .raw files are not units
    assert manifest["counts"]["units"] == manifest["counts"]["cataloged"] == num_headers
    assert manifest["counts"]["volumes"] == num_headers
    catalog = pq.read_table(twins / "out-mhd" / "catalog").to_pylist()
    assert {r["sop_class_name"] for r in catalog} == {"MetaImage volume"}
    assert {r["volume_status"] for r in catalog} == {"volume"}
    # No file name (an original SeriesInstanceUID) outside _restricted/.
    stems = {p.name[: -len(".mhd")] for p in (twins / "mhd" / "mhd").rglob("*.mhd")}
    for path in (twins / "out-mhd").rglob("*"):
        if path.is_file() and "_restricted" not in path.parts:
            data = path.read_bytes()
            assert not any(stem.encode() in data for stem in stems), path


def _geometry() -> Geometry:
    angle = np.deg2rad(12.0)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    return Geometry((2.5, 0.7, 0.703125), (-150.0, -160.0, -300.0), tuple(rotation.ravel()))


def _ct(slices: int = 20) -> np.ndarray:
    array = np.full((slices, 24, 24), -800, dtype=np.int16)
    array[:, 8:16, 8:16] = 40
    return array


def _bad_inputs(folder: Path) -> dict[str, int]:
    """Good and bad volume files, loose and in archives; the expected rejects by reason."""
    folder.mkdir()
    grid, ct = _geometry(), _ct()
    header, raw = write_metaimage(ct, grid, "good.raw")
    (folder / "good.mhd").write_bytes(header)
    (folder / "good.raw").write_bytes(raw)
    big_endian = write_metaimage(ct, grid, "be.raw", byte_order="big")
    (folder / "be.mhd").write_bytes(big_endian[0])
    (folder / "be.raw").write_bytes(big_endian[1])
    (folder / "single.mha").write_bytes(write_mha(ct, grid, compressed=True))
    (folder / "scan.nii.gz").write_bytes(write_nifti(ct, grid, compressed=True))
    (folder / "thin.nii").write_bytes(write_nifti(_ct(3), grid))  # too few slices: excluded
    # Bad ones.
    (folder / "nodata.mhd").write_bytes(write_metaimage(ct, grid, "nodata.raw")[0])
    (folder / "short.mhd").write_bytes(write_metaimage(ct, grid, "short.raw")[0])
    (folder / "short.raw").write_bytes(raw[: len(raw) // 2])
    zipped = write_metaimage(ct, grid, "bad.zraw", compressed=True)
    (folder / "bad.mhd").write_bytes(zipped[0])
    (folder / "bad.zraw").write_bytes(zipped[1][:4] + b"\xff" * 16 + zipped[1][20:])  # corrupt
    hostile = header.replace(b"ElementDataFile = good.raw", b"ElementDataFile = ../../etc/x")
    (folder / "hostile.mhd").write_bytes(hostile)
    huge = header.replace(b"DimSize = 24 24 20", b"DimSize = 100000 100000 100000")
    (folder / "huge.mhd").write_bytes(huge)
    (folder / "lonely.raw").write_bytes(raw)
    (folder / "broken.nii").write_bytes(write_nifti(ct, grid)[:200])
    # Archives: header first in the zip, data first in the tar.
    pair = write_metaimage(ct, grid, "inzip.raw")
    with zipfile.ZipFile(folder / "volumes.zip", "w") as archive:
        archive.writestr("scans/inzip.mhd", pair[0])
        archive.writestr("scans/inzip.raw", pair[1])
        archive.writestr("scans/stray.raw", raw)
    pair = write_metaimage(ct, grid, "intar.raw")
    with tarfile.open(folder / "volumes.tar", "w") as archive:
        for name, data in (("intar.raw", pair[1]), ("intar.mhd", pair[0])):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return {
        "missing_data_file": 1,
        "truncated_data": 1,
        "corrupt_compressed_data": 1,
        "hostile_data_path": 1,
        "too_many_voxels": 1,
        "orphan_volume_data": 2,  # lonely.raw, and stray.raw in the zip
        "unreadable_nifti": 1,
    }


def test_bad_volume_files_get_reasons_and_the_good_ones_become_volumes(tmp_path: Path) -> None:
    expected = _bad_inputs(tmp_path / "in")
    out = tmp_path / "out"
    _sparkdl("ingest", str(tmp_path / "in"), "--output", str(out), "--master", "local[2]")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rejected_by_reason"] == expected
    catalog = pq.read_table(out / "catalog").to_pylist()
    volumes = sorted(r["volume_status"] + "/" + (r["volume_reason"] or "") for r in catalog)
    # good, be, single.mha, scan.nii.gz, the zip's and the tar's pair; thin.nii has 3 slices.
    assert volumes == ["excluded/too_few_slices"] + ["volume/"] * 6
    counts = manifest["counts"]
    assert counts["units"] == counts["cataloged"] + counts["rejected"] == 7 + 8
    rows = list(read_rows(str(out / "volumes"), ["volume", "spacing", "origin", "direction"]))
    grid = _geometry()
    for row in rows:
        assert np.array_equal(row["volume"], _ct())
        assert np.allclose(row["spacing"], grid.spacing)
        assert np.allclose(row["origin"], grid.origin, atol=1e-4)
        assert np.allclose(row["direction"], grid.direction, atol=1e-5)
