"""The synthetic cohort generator: valid DICOM, correct geometry for every variant, labels,
PHI, archives and reproducibility. Geometry is checked with a world→voxel mapping written
here from the headers alone (IPP/IOP/PixelSpacing), independent of the generator."""

from __future__ import annotations

import csv
import io
import json
import tarfile
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import cast

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from sparkdl.errors import ConfigError, InputError
from sparkdl.synth import VARIANTS, CohortSummary, synthesize_cohort
from sparkdl.synth.cohort import ArchiveKind
from sparkdl.units.native_pixels import native_frame
from tests.helpers import SCRIPTS, run_child

ARCHIVE_KINDS: tuple[ArchiveKind, ...] = ("zip", "tar")

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
LUNG_HU = -850.0


def dicom_members(dicom_dir: Path) -> dict[str, bytes]:
    """Every file under ``dicom_dir``, archives opened: ``path`` or ``archive!member``."""
    out: dict[str, bytes] = {}
    for path in sorted(p for p in dicom_dir.rglob("*") if p.is_file()):
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                for name in zf.namelist():
                    out[f"{path.name}!{name}"] = zf.read(name)
        elif path.name.endswith((".tar", ".tar.gz")):
            with tarfile.open(path) as tf:
                for member in tf.getmembers():
                    extracted = tf.extractfile(member)
                    assert extracted is not None
                    out[f"{path.name}!{member.name}"] = extracted.read()
        else:
            out[str(path.relative_to(dicom_dir))] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> CohortSummary:
    return synthesize_cohort(tmp_path_factory.mktemp("loose"), num_patients=7, seed=3)


@pytest.fixture(scope="module")
def raw_files(cohort: CohortSummary) -> dict[str, bytes]:
    return dicom_members(cohort.dicom_dir)


@pytest.fixture(scope="module")
def datasets(raw_files: dict[str, bytes]) -> list[Dataset]:
    return [pydicom.dcmread(io.BytesIO(data)) for data in raw_files.values()]


@pytest.fixture(scope="module")
def by_series(datasets: list[Dataset]) -> dict[str, list[Dataset]]:
    out: dict[str, list[Dataset]] = defaultdict(list)
    for ds in datasets:
        out[ds.SeriesInstanceUID].append(ds)
    return out


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


# --- the volume as the headers define it --------------------------------------------------


def slice_normal(ds: Dataset) -> np.ndarray:
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    return np.cross(iop[:3], iop[3:])


def world_to_hu(slices: list[Dataset], point: np.ndarray) -> tuple[float, tuple[int, int, int]]:
    """HU of the voxel nearest to a world point; slices ordered by IPP projected on the normal."""
    normal = slice_normal(slices[0])
    ordered = sorted(
        slices, key=lambda d: float(np.dot(normal, np.asarray(d.ImagePositionPatient, dtype=float)))
    )
    positions = np.array(
        [np.dot(normal, np.asarray(d.ImagePositionPatient, dtype=float)) for d in ordered]
    )
    k = int(np.argmin(np.abs(positions - normal @ point)))
    assert abs(positions[k] - normal @ point) <= np.max(np.diff(positions)) / 2 + 1e-3
    ds = ordered[k]
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    row_dir, col_dir = iop[:3], iop[3:]
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    offset = point - np.asarray(ds.ImagePositionPatient, dtype=float)
    r = round(offset @ col_dir / row_spacing)
    c = round(offset @ row_dir / col_spacing)
    assert 0 <= r < ds.Rows and 0 <= c < ds.Columns
    hu = float(ds.pixel_array[r, c]) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return hu, (k, r, c)


# --- tests --------------------------------------------------------------------------------


def test_every_file_is_dicom_and_counted(
    cohort: CohortSummary, raw_files: dict[str, bytes], datasets: list[Dataset]
) -> None:
    assert len(raw_files) == cohort.num_files == sum(s.num_instances for s in cohort.series)
    for data in raw_files.values():
        assert data[128:132] == b"DICM"
    for ds in datasets:
        meta = ds.file_meta
        assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert meta.ImplementationClassUID and meta.SourceApplicationEntityTitle
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    names = list(raw_files)
    assert len({n.split("/")[0] for n in names}) == cohort.num_patients  # one folder per patient
    assert all("/" in n for n in names)


def test_every_variant_is_present_with_its_encoding(
    cohort: CohortSummary, by_series: dict[str, list[Dataset]]
) -> None:
    variants = {s.variant: s for s in cohort.series if s.kind == "axial_ct"}
    assert set(variants) == set(VARIANTS)
    for record in cohort.series:
        if record.kind != "axial_ct":
            continue
        slices = by_series[record.series_uid]
        assert len(slices) == record.num_instances
        ds = slices[0]
        assert ds.SOPClassUID == CT_IMAGE and list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert ds.BitsAllocated == 16 and ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.HighBit == ds.BitsStored - 1 and ds.RescaleType == "HU"
        normal = slice_normal(ds)
        ordered = sorted(slices, key=lambda d: normal @ np.asarray(d.ImagePositionPatient, float))
        z = np.array([float(d.ImagePositionPatient[2]) for d in ordered])
        spacing = np.diff(
            ordered_positions := np.array(
                [normal @ np.asarray(d.ImagePositionPatient, float) for d in ordered]
            )
        )
        assert np.allclose(spacing, spacing[0], atol=1e-3) and spacing[0] > 0
        assert 250 <= ordered_positions[-1] - ordered_positions[0] + spacing[0] <= 330
        instance = np.array([int(d.InstanceNumber) for d in ordered])
        syntax = ds.file_meta.TransferSyntaxUID
        v = record.variant
        assert (ds.PatientPosition == "FFS") == (v == "feet_first")
        if v == "feet_first":
            assert [float(x) for x in ds.ImageOrientationPatient] == [-1, 0, 0, 0, 1, 0]
            assert np.all(np.diff(z) < 0)  # the normal points to the feet
        else:
            assert [float(x) for x in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert np.all(np.diff(instance) < 0) == (v == "reversed_instance_number")
        assert (ds.PixelRepresentation == 0) == (v == "unsigned")
        if v == "unsigned":
            assert float(ds.RescaleIntercept) == -1024 and ds.BitsStored == 12
        assert (float(ds.RescaleSlope) != 1.0) == (v == "rescale_slope")
        if v == "anisotropic":
            assert spacing[0] == pytest.approx(5.0) and float(ds.PixelSpacing[0]) < 3.0
        assert (syntax == "1.2.840.10008.1.2.5") == (v == "rle_lossless")
        assert (syntax == "1.2.840.10008.1.2") == (v == "implicit_vr")
        if v not in ("rle_lossless", "implicit_vr"):
            assert syntax == "1.2.840.10008.1.2.1"


def test_nodule_centres_lie_in_nodule_tissue_for_every_variant(
    cohort: CohortSummary, by_series: dict[str, list[Dataset]]
) -> None:
    variant_of = {s.series_uid: s.variant for s in cohort.series}
    checked: set[str] = set()
    for nodule in cohort.nodules:
        hu, _ = world_to_hu(by_series[nodule.series_uid], np.asarray(nodule.center_mm))
        assert hu > LUNG_HU + 100, (variant_of[nodule.series_uid], nodule)
        if nodule.texture == "solid":
            assert hu > -300, (variant_of[nodule.series_uid], nodule, hu)
        elif nodule.texture == "ground_glass":
            assert -750 < hu < -150, (variant_of[nodule.series_uid], nodule, hu)
        checked.add(variant_of[nodule.series_uid])
    assert checked == set(VARIANTS)


def test_rescale_recovers_air_and_lung_hu(
    cohort: CohortSummary, by_series: dict[str, list[Dataset]]
) -> None:
    """Corners of the image are air outside the body (-1000 HU), and the middle slice (through
    the lungs) holds lung parenchyma near -850 HU, in every variant."""
    for record in cohort.series:
        if record.kind != "axial_ct":
            continue
        slices = by_series[record.series_uid]
        corners = np.concatenate(
            [
                (d.pixel_array[:6, :6] * float(d.RescaleSlope) + float(d.RescaleIntercept)).ravel()
                for d in slices[:20]
            ]
        )
        assert abs(corners.mean() + 1000) < 5, record.variant
        normal = slice_normal(slices[0])
        middle = sorted(slices, key=lambda d: normal @ np.asarray(d.ImagePositionPatient, float))[
            len(slices) // 2
        ]
        hu = middle.pixel_array * float(middle.RescaleSlope) + float(middle.RescaleIntercept)
        assert (np.abs(hu - LUNG_HU) < 60).mean() > 0.06, record.variant  # ~12-18% written


def test_annotations_and_candidates(
    cohort: CohortSummary, by_series: dict[str, list[Dataset]]
) -> None:
    columns, annotations = read_csv(cohort.annotations_csv)
    assert columns == ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "malignancy"]
    assert len(annotations) == cohort.num_nodules == len(cohort.nodules)
    axial = {s.series_uid for s in cohort.series if s.kind == "axial_ct"}
    assert axial <= set(by_series)
    per_series: dict[str, int] = defaultdict(int)
    for row in annotations:
        assert row["seriesuid"] in axial
        assert 4.0 <= float(row["diameter_mm"]) <= 30.0
        assert row["malignancy"] in ("0", "1")
        per_series[row["seriesuid"]] += 1
    assert set(per_series) == axial and all(1 <= n <= 3 for n in per_series.values())
    assert {r["malignancy"] for r in annotations} == {"0", "1"}

    columns, candidates = read_csv(cohort.candidates_csv)
    assert columns == ["seriesuid", "coordX", "coordY", "coordZ", "class"]
    assert len(candidates) == cohort.num_candidates
    key = ("seriesuid", "coordX", "coordY", "coordZ")
    positives = {tuple(r[k] for k in key) for r in candidates if r["class"] == "1"}
    assert positives == {tuple(r[k] for k in key) for r in annotations}
    for uid in axial:
        negatives = [r for r in candidates if r["seriesuid"] == uid and r["class"] == "0"]
        assert 3 * per_series[uid] <= len(negatives) <= 5 * per_series[uid]
        for row in negatives[:3]:  # negatives are inside the body, in lung or vessel
            point = np.array([float(row[k]) for k in ("coordX", "coordY", "coordZ")])
            hu, _ = world_to_hu(by_series[uid], point)
            assert -950 < hu < 300


def test_phi_is_listed_and_written(
    cohort: CohortSummary, raw_files: dict[str, bytes], datasets: list[Dataset]
) -> None:
    phi = json.loads(cohort.phi_json.read_text(encoding="utf-8"))
    assert isinstance(phi, list) and all(isinstance(s, str) and s for s in phi)
    blob = b"\n".join(raw_files.values())
    missing = [s for s in phi if s.encode("latin-1") not in blob]
    assert not missing
    for ds in datasets[:50]:
        for keyword in (
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "PatientAddress",
            "AccessionNumber",
            "InstitutionName",
            "ReferringPhysicianName",
            "StationName",
            "DeviceSerialNumber",
            "StudyDescription",
        ):
            assert str(ds.data_element(keyword).value) in phi, keyword
        assert ds.file_meta.SourceApplicationEntityTitle in phi
        nested = ds.OtherPatientIDsSequence[0].IssuerOfPatientIDQualifiersSequence[0]
        assert nested.UniversalEntityID in phi
        request = ds.RequestAttributesSequence[0]
        assert request.RequestedProcedureID in phi and request.ScheduledProcedureStepID in phi
        block = ds.private_block(0x0009, "SYNTHVENDOR PHI 1.0")
        assert block[0x01].value in phi
        assert 0x00110010 not in ds and 0x00111010 in ds  # private element without a creator
        orphan = ds[0x00111010].value
        orphan = orphan.decode("latin-1") if isinstance(orphan, bytes) else orphan
        assert orphan.strip() in phi


def test_localizer_dose_report_and_sr(
    cohort: CohortSummary, by_series: dict[str, list[Dataset]]
) -> None:
    kinds = {s.kind for s in cohort.series}
    assert kinds == {"axial_ct", "localizer", "dose_report", "structured_report"}
    study_of = {uid: slices[0].StudyInstanceUID for uid, slices in by_series.items()}
    phi = set(json.loads(cohort.phi_json.read_text(encoding="utf-8")))
    for record in cohort.series:
        slices = by_series[record.series_uid]
        same_patient_axial = [
            s.series_uid
            for s in cohort.series
            if s.patient_index == record.patient_index and s.kind == "axial_ct"
        ]
        assert all(study_of[uid] == study_of[record.series_uid] for uid in same_patient_axial)
        ds = slices[0]
        if record.kind == "localizer":
            assert 1 <= len(slices) <= 2 and ds.SOPClassUID == CT_IMAGE
            first = min(slices, key=lambda d: int(d.InstanceNumber))
            assert list(first.ImageType) == ["ORIGINAL", "PRIMARY", "LOCALIZER"]
            assert [float(v) for v in first.ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]
            assert first.pixel_array.shape == (first.Rows, first.Columns)
        elif record.kind == "dose_report":
            assert ds.SOPClassUID == SECONDARY_CAPTURE and ds.BurnedInAnnotation == "YES"
            assert 0 < (ds.pixel_array > 0).mean() < 0.6
        elif record.kind == "structured_report":
            assert ds.SOPClassUID == COMPREHENSIVE_SR and "PixelData" not in ds
            texts = [
                ds.ContentSequence[0].TextValue,
                ds.ContentSequence[1].ContentSequence[1].TextValue,
            ]
            assert all(t in phi for t in texts)
            assert str(ds.VerifyingObserverSequence[0].VerifyingObserverName) in phi


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CohortSummary]:
    root = tmp_path_factory.mktemp("archived")
    return {
        kind: synthesize_cohort(root / kind, num_patients=2, seed=5, archive=kind, image_size=48)
        for kind in ARCHIVE_KINDS
    }


def test_archives_hold_nested_dicom_members(archived: dict[str, CohortSummary]) -> None:
    for kind, summary in archived.items():
        archives = sorted(p.name for p in summary.dicom_dir.iterdir())
        assert summary.num_archives == len(archives) == 2
        if kind == "zip":
            assert all(n.endswith(".zip") for n in archives)
        else:
            assert {n.endswith(".tar.gz") for n in archives} == {True, False}
        members = dicom_members(summary.dicom_dir)
        assert len(members) == summary.num_files
        assert all(m.count("/") >= 2 for m in members)  # nested folders inside the archives
        for data in members.values():
            pydicom.dcmread(io.BytesIO(data))


def test_same_seed_same_bytes(tmp_path: Path, archived: dict[str, CohortSummary]) -> None:
    for kind, a in archived.items():
        b = synthesize_cohort(
            tmp_path / kind, num_patients=2, seed=5, archive=cast(ArchiveKind, kind), image_size=48
        )
        files_a = sorted(p.relative_to(a.out_dir) for p in a.out_dir.rglob("*") if p.is_file())
        files_b = sorted(p.relative_to(b.out_dir) for p in b.out_dir.rglob("*") if p.is_file())
        assert files_a == files_b
        for rel in files_a:
            assert (a.out_dir / rel).read_bytes() == (b.out_dir / rel).read_bytes(), rel
    c = synthesize_cohort(tmp_path / "other", num_patients=1, seed=6, image_size=48)
    a = archived["tar"]
    assert not set(dicom_members(c.dicom_dir).values()) & set(dicom_members(a.dicom_dir).values())
    assert c.annotations_csv.read_bytes() != a.annotations_csv.read_bytes()
    assert c.phi_json.read_bytes() != a.phi_json.read_bytes()


@pytest.mark.slow
def test_archives_read_in_a_separate_process(archived: dict[str, CohortSummary]) -> None:
    dirs = [str(archived[kind].dicom_dir) for kind in ("zip", "tar")]
    found = run_child(SCRIPTS / "read_archives.py", *dirs, timeout=120).result
    assert len(found) == 4
    assert all(sop_class.startswith("1.2.840.10008.5.1.4.1.1") for _, sop_class, _ in found)
    assert any(name.endswith(".tar.gz") for name, _, _ in found)


def test_fast_series_encoding_matches_full_datasets() -> None:
    from sparkdl.synth import dicom_writer as dw
    from sparkdl.synth.dicom_modules import study_context
    from sparkdl.synth.identity import make_identity
    from sparkdl.synth.part10 import encode
    from sparkdl.synth.variants import draw_sampling, make_series_spec, to_stored

    for variant in ("standard", "rle_lossless", "implicit_vr"):
        rng = np.random.default_rng(1)
        ctx = study_context(0, 0, make_identity(rng), rng)
        spec = make_series_spec(
            rng,
            variant,
            image_size=32,
            sampling=draw_sampling(rng, variant, 32),
            body_center=(0, 0),
            lung_z_range=(-300, -60),
        )
        stored = to_stored(rng.normal(0, 300, spec.grid.shape).astype(np.float32), spec)
        files = dw.ct_series_files(ctx, spec, "2.25.7", 1, stored)
        for k in (0, spec.num_slices - 1):
            assert files[k] == encode(dw.ct_slice(ctx, spec, "2.25.7", 1, k, stored[k]))
            assert np.array_equal(pydicom.dcmread(io.BytesIO(files[k])).pixel_array, stored[k])


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="num_patients"):
        synthesize_cohort(tmp_path / "a", num_patients=0)
    with pytest.raises(ConfigError, match="archive"):
        synthesize_cohort(tmp_path / "a", archive="rar")  # type: ignore[arg-type]  # under test
    with pytest.raises(ConfigError, match="seed"):
        synthesize_cohort(tmp_path / "a", seed=-1)
    with pytest.raises(ConfigError, match="image_size"):
        synthesize_cohort(tmp_path / "a", image_size=16)
    (tmp_path / "b" / "dicom").mkdir(parents=True)
    (tmp_path / "b" / "dicom" / "old.dcm").write_bytes(b"x")
    with pytest.raises(InputError, match="already holds files"):
        synthesize_cohort(tmp_path / "b", num_patients=1)


@pytest.mark.parametrize(
    "frame",
    [
        np.random.default_rng(0).normal(0, 300, (40, 70)).astype(np.int16),  # mostly literals
        np.full((3, 300), 7, dtype=np.uint16),  # runs longer than 128, crossing no row boundary
        np.random.default_rng(1).integers(0, 2, (30, 61)).astype(np.int16),  # runs of 1-3
        np.random.default_rng(2).integers(0, 3, (20, 257)).astype(np.uint8),
    ],
)
def test_rle_frames_decode_with_pydicom(frame: np.ndarray) -> None:
    from pydicom.dataset import FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    from sparkdl.synth.rle import encode_rle_frame

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.Rows, ds.Columns = frame.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8 * frame.itemsize
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, int(frame.dtype.kind == "i")
    ds.PixelData = encapsulate([encode_rle_frame(frame)])
    assert np.array_equal(ds.pixel_array, frame)


def test_packaging_does_not_change_content(
    archived: dict[str, CohortSummary], tmp_path: Path
) -> None:
    loose = synthesize_cohort(tmp_path / "loose", num_patients=2, seed=5, image_size=48)
    members = dicom_members(loose.dicom_dir)
    for summary in archived.values():
        assert summary.series == loose.series and summary.nodules == loose.nodules
        packed = {
            name.split("!", 1)[1]: data for name, data in dicom_members(summary.dicom_dir).items()
        }
        assert packed == members  # same member paths, same bytes
        assert summary.annotations_csv.read_bytes() == loose.annotations_csv.read_bytes()


def test_volume_cohorts_write_the_same_scans_as_mhd_and_nifti(tmp_path: Path) -> None:
    """``synth --format mhd|nifti``: one file per axial series named by its UID, same voxels
    and geometry in both formats, the annotations' centres inside each volume."""
    from sparkdl.synth import synthesize_volume_cohort
    from sparkdl.volume_files import read_volume

    read = {}
    for fmt, suffix in (("mhd", ".mhd"), ("nifti", ".nii.gz")):
        summary = synthesize_volume_cohort(
            tmp_path / fmt, num_patients=2, seed=5, image_size=32, volume_format=fmt
        )
        folder = summary.dicom_dir / "subset0"
        uids = {s.series_uid for s in summary.series}
        assert {s.kind for s in summary.series} == {"axial_ct"}
        assert {p.name[: -len(suffix)] for p in folder.glob(f"*{suffix}")} == uids

        def companion(name: str, folder: Path = folder) -> bytes | None:
            path = folder / name
            return path.read_bytes() if path.exists() else None

        read[fmt] = {
            uid: read_volume(f"{uid}{suffix}", (folder / f"{uid}{suffix}").read_bytes(), companion)
            for uid in uids
        }
        for nodule in summary.nodules:
            volume = read[fmt][nodule.series_uid]
            index = volume.geometry.to_voxel(nodule.center_mm)
            assert np.all(index > -0.5) and np.all(index < np.array(volume.array_zyx.shape) - 0.5)
    assert read["mhd"].keys() == read["nifti"].keys()
    for uid, mhd in read["mhd"].items():
        nifti = read["nifti"][uid]
        assert np.array_equal(np.asarray(mhd.array_zyx), np.asarray(nifti.array_zyx))
        assert np.allclose(mhd.geometry.origin, nifti.geometry.origin, atol=1e-3)
        assert np.allclose(mhd.geometry.direction, nifti.geometry.direction, atol=1e-5)


def test_native_pixel_fast_path_matches_pydicom_on_every_instance(
    datasets: list[Dataset],
) -> None:
    """Every image of the cohort (each variant's encoding, localizers): the fast path of
    :mod:`sparkdl.units.native_pixels` answers exactly as ``pixel_array`` or declines."""
    answered = 0
    for ds in datasets:
        if "PixelData" not in ds:
            continue
        fast = native_frame(ds)
        native = ds.file_meta.TransferSyntaxUID in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")
        assert (fast is not None) == (native and int(ds.get("NumberOfFrames", 1) or 1) == 1)
        if fast is not None:
            expected = ds.pixel_array
            assert fast.dtype.str == expected.dtype.str and np.array_equal(fast, expected)
            answered += 1
    assert answered > len(datasets) // 2  # most of a cohort is native little endian
