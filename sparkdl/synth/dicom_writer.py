"""pydicom datasets for the synthetic study: axial CT slices, localizers, a dose-report
Secondary Capture and a Comprehensive SR, each a complete Part 10 file.

All identifying values come from :class:`~sparkdl.synth.identity.Identity`; every UID comes
from :func:`make_uid`, so the same seed writes the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    ComprehensiveSRStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    RLELossless,
    SecondaryCaptureImageStorage,
)

from sparkdl.synth.identity import Identity
from sparkdl.synth.part10 import encode_series
from sparkdl.synth.phantom import Grid
from sparkdl.synth.rle import encode_rle_frame
from sparkdl.synth.variants import SeriesSpec

logger = logging.getLogger(__name__)

IMPLEMENTATION_VERSION_NAME = "SPARKDL_SYNTH_1"
PRIVATE_CREATOR = "SYNTHVENDOR PHI 1.0"
#: Private group with a creator, and the orphan private element written without one.
PRIVATE_GROUP = 0x0009
ORPHAN_PRIVATE_TAG = 0x00111010

_SCANNERS = (
    ("SIEMENS", "SOMATOM Definition AS+", "B30f", "syngo CT VA48A"),
    ("GE MEDICAL SYSTEMS", "LightSpeed VCT", "STANDARD", "07MW18.4"),
    ("Philips", "Brilliance 64", "B", "4.1.6"),
    ("TOSHIBA", "Aquilion ONE", "FC07", "V6.0"),
)


def make_uid(seed: int, *parts: object) -> str:
    """A deterministic UID under the ``2.25`` root (a 128-bit integer, PS3.5 B.2)."""
    text = "/".join(["sparkdl-synth", str(seed), *map(str, parts)])
    return "2.25." + str(int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big"))


IMPLEMENTATION_CLASS_UID = make_uid(0, "implementation")


@dataclass(frozen=True)
class StudyContext:
    """What every file of one study shares."""

    seed: int
    patient_index: int
    identity: Identity
    study_uid: str
    frame_of_reference_uid: str
    study_time: str
    scanner: int  # index into the scanner list


def study_context(
    seed: int, patient_index: int, identity: Identity, rng: np.random.Generator
) -> StudyContext:
    hour, minute, second = int(rng.integers(7, 19)), int(rng.integers(60)), int(rng.integers(60))
    return StudyContext(
        seed=seed,
        patient_index=patient_index,
        identity=identity,
        study_uid=make_uid(seed, patient_index, "study"),
        frame_of_reference_uid=make_uid(seed, patient_index, "frame-of-reference"),
        study_time=f"{hour:02d}{minute:02d}{second:02d}",
        scanner=int(rng.integers(len(_SCANNERS))),
    )


def _ds(value: float) -> str:
    """A Decimal String of at most 16 characters."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _later(time: str, minutes: int) -> str:
    total = int(time[:2]) * 60 + int(time[2:4]) + minutes
    return f"{min(total // 60, 23):02d}{total % 60:02d}{time[4:6]}"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _new_dataset(  # noqa: PLR0915 - one assignment per DICOM attribute
    ctx: StudyContext, sop_class: str, sop_uid: str, syntax: str
) -> Dataset:
    """File meta, SOP common, patient and general study modules, with all the study's PHI.

    Long on purpose: a flat list of attribute assignments, in module order, reads as the
    IOD modules it fills.
    """
    ident = ctx.identity
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    meta.SourceApplicationEntityTitle = ident.ae_title
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.InstanceCreationDate, ds.InstanceCreationTime = ident.study_date, ctx.study_time
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.StudyDate, ds.StudyTime = ident.study_date, ctx.study_time
    ds.AccessionNumber = ident.accession_number
    ds.Manufacturer = _SCANNERS[ctx.scanner][0]
    ds.InstitutionName, ds.InstitutionAddress = ident.institution_name, ident.institution_address
    ds.ReferringPhysicianName = ident.referring_physician
    referrer = Dataset()
    referrer.InstitutionName = ident.institution_name
    referrer.PersonIdentificationCodeSequence = DicomSequence(
        [_code(ident.referring_physician_id, "99SYNTH", ident.referring_physician)]
    )
    ds.ReferringPhysicianIdentificationSequence = DicomSequence([referrer])
    ds.StationName = ident.station_name
    ds.StudyDescription = ident.study_description
    ds.InstitutionalDepartmentName = ident.institution_department
    ds.PerformingPhysicianName = ident.performing_physician
    ds.OperatorsName = ident.operator
    ds.ManufacturerModelName = _SCANNERS[ctx.scanner][1]
    ds.PatientName, ds.PatientID = ident.patient_name, ident.patient_id
    ds.IssuerOfPatientID = ident.issuer_of_patient_id
    ds.PatientBirthDate, ds.PatientSex = ident.patient_birth_date, ident.patient_sex
    qualifiers = Dataset()
    qualifiers.UniversalEntityID = ident.issuer_universal_id
    qualifiers.UniversalEntityIDType = "DNS"
    other = Dataset()
    other.PatientID, other.IssuerOfPatientID = ident.other_patient_id, ident.issuer_of_patient_id
    other.TypeOfPatientID = "TEXT"
    other.IssuerOfPatientIDQualifiersSequence = DicomSequence([qualifiers])  # nested in nested
    ds.OtherPatientIDsSequence = DicomSequence([other])
    ds.PatientAge = ident.patient_age
    ds.PatientAddress = ident.patient_address
    ds.PatientTelephoneNumbers = ident.patient_telephone
    ds.DeviceSerialNumber = ident.device_serial_number
    ds.SoftwareVersions = _SCANNERS[ctx.scanner][3]
    ds.StudyInstanceUID = ctx.study_uid
    ds.StudyID = ident.study_id
    request = Dataset()
    request.RequestedProcedureID = ident.requested_procedure_id
    request.ScheduledProcedureStepID = ident.scheduled_step_id
    request.RequestedProcedureDescription = ident.requested_procedure_description
    request.ScheduledProtocolCodeSequence = DicomSequence(
        [_code("CTCHESTLD", "99SYNTH", ident.procedure_title)]
    )
    ds.RequestAttributesSequence = DicomSequence([request])
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", ident.private_name_value)
    block.add_new(0x02, "LO", ident.private_mrn_value)
    ds.add_new(ORPHAN_PRIVATE_TAG, "LO", ident.orphan_private_value)  # no (0011,0010) creator
    return ds


def _series(
    ds: Dataset, ctx: StudyContext, series_uid: str, number: int, modality: str, description: str
) -> None:
    ds.SeriesDate = ds.ContentDate = ctx.identity.study_date
    ds.SeriesTime = ds.ContentTime = _later(ctx.study_time, number)
    ds.Modality, ds.SeriesDescription = modality, description
    ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, number


def _ct_acquisition(ds: Dataset, ctx: StudyContext, position: str) -> None:
    ds.AcquisitionDate = ctx.identity.study_date
    ds.BodyPartExamined = "CHEST"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.DistanceSourceToDetector, ds.DistanceSourceToPatient = "1085.6", "595"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "160"
    ds.RotationDirection = "CW"
    ds.ExposureTime, ds.XRayTubeCurrent, ds.Exposure = "500", "120", "60"
    ds.FilterType = "FLAT"
    ds.ConvolutionKernel = _SCANNERS[ctx.scanner][2]
    ds.PatientPosition = position
    ds.FrameOfReferenceUID = ctx.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""


def _pixel_module(
    ds: Dataset,
    shape: tuple[int, ...],
    *,
    bits_stored: int,
    representation: int,
    slope: float,
    intercept: float,
) -> None:
    """Image Pixel (16-bit MONOCHROME2) and CT rescale elements; PixelData is the caller's."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = representation
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = _ds(intercept), _ds(slope), "HU"


def _plane(ds: Dataset, grid: Grid) -> None:
    """ImageOrientationPatient and PixelSpacing of ``grid``'s slices."""
    steps = np.asarray(grid.steps)
    row_spacing, col_spacing = np.linalg.norm(steps[1]), np.linalg.norm(steps[2])
    row_dir, col_dir = steps[2] / col_spacing, steps[1] / row_spacing
    ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
    ds.PixelSpacing = [_ds(row_spacing), _ds(col_spacing)]


def _position(grid: Grid, k: int) -> npt.NDArray[np.float64]:
    """World position (mm) of slice ``k``'s first voxel: its ImagePositionPatient."""
    return np.asarray(grid.origin, dtype=np.float64) + k * np.asarray(
        grid.steps[0], dtype=np.float64
    )


def _ct_template(
    ctx: StudyContext, spec: SeriesSpec, series_uid: str, series_number: int
) -> Dataset:
    """Everything but the per-slice elements (see :func:`_ct_slice_elements`)."""
    sop_uid = make_uid(ctx.seed, ctx.patient_index, series_number, "ct", 0)
    ds = _new_dataset(ctx, CTImageStorage, sop_uid, spec.transfer_syntax_uid)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    _series(
        ds,
        ctx,
        series_uid,
        series_number,
        "CT",
        f"THORAX {spec.slice_thickness_mm:g}MM {_SCANNERS[ctx.scanner][2]}",
    )
    _ct_acquisition(ds, ctx, spec.patient_position)
    ds.AcquisitionTime = _later(ctx.study_time, series_number)
    ds.ScanOptions = "HELICAL MODE"
    ds.SliceThickness = _ds(spec.slice_thickness_mm)
    if spec.write_spacing_between_slices:
        ds.SpacingBetweenSlices = _ds(spec.slice_spacing_mm)
    ds.ReconstructionDiameter = _ds(spec.pixel_spacing_mm * spec.grid.shape[2])
    ds.AcquisitionNumber = 1
    _plane(ds, spec.grid)
    ds.WindowCenter, ds.WindowWidth = ["-600", "40"], ["1500", "400"]
    ds.WindowCenterWidthExplanation = ["LUNG", "MEDIASTINUM"]
    _pixel_module(
        ds,
        spec.grid.shape[1:],
        bits_stored=spec.bits_stored,
        representation=spec.pixel_representation,
        slope=spec.rescale_slope,
        intercept=spec.rescale_intercept,
    )
    del ds.SOPInstanceUID  # per slice
    return ds


def _ct_slice_elements(
    ctx: StudyContext,
    spec: SeriesSpec,
    series_number: int,
    k: int,
    stored: npt.NDArray[np.integer[Any]],
) -> Dataset:
    """The elements that differ between slices: UID, InstanceNumber, position, pixels."""
    ds = Dataset()
    ds.SOPInstanceUID = make_uid(ctx.seed, ctx.patient_index, series_number, "ct", k)
    ds.InstanceNumber = k + 1 if spec.instance_step > 0 else spec.num_slices - k
    position = _position(spec.grid, k)
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.SliceLocation = _ds(position[2])
    if spec.transfer_syntax_uid == RLELossless:
        ds.add(
            DataElement(
                0x7FE00010, "OB", encapsulate([encode_rle_frame(stored)]), is_undefined_length=True
            )
        )
    else:
        ds.add(DataElement(0x7FE00010, "OW", stored.tobytes()))
    return ds


def ct_slice(
    ctx: StudyContext,
    spec: SeriesSpec,
    series_uid: str,
    series_number: int,
    k: int,
    stored: npt.NDArray[np.integer[Any]],
) -> Dataset:
    """Slice ``k`` (along the slice normal) of an axial CT series as one complete dataset;
    ``stored`` is its (rows, cols) stored values. :func:`ct_series_files` writes the same
    bytes faster."""
    ds = _ct_template(ctx, spec, series_uid, series_number)
    ds.update(_ct_slice_elements(ctx, spec, series_number, k, stored))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def ct_series_files(
    ctx: StudyContext,
    spec: SeriesSpec,
    series_uid: str,
    series_number: int,
    stored: npt.NDArray[np.integer[Any]],
) -> list[bytes]:
    """Part 10 files of every slice of an axial series; ``stored`` is (slices, rows, cols)."""
    template = _ct_template(ctx, spec, series_uid, series_number)
    return encode_series(
        template,
        [
            _ct_slice_elements(ctx, spec, series_number, k, stored[k])
            for k in range(spec.num_slices)
        ],
    )


def localizer_image(
    ctx: StudyContext,
    series_uid: str,
    series_number: int,
    index: int,
    grid: Grid,
    hu: npt.NDArray[np.floating[Any]],
) -> Dataset:
    """One scout image (ImageType ORIGINAL\\PRIMARY\\LOCALIZER) on ``grid``'s single plane."""
    sop_uid = make_uid(ctx.seed, ctx.patient_index, series_number, "localizer", index)
    ds = _new_dataset(ctx, CTImageStorage, sop_uid, ExplicitVRLittleEndian)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    _series(ds, ctx, series_uid, series_number, "CT", "TOPOGRAM 0.6 T20s")
    _ct_acquisition(ds, ctx, "HFS")
    ds.AcquisitionTime = ctx.study_time
    ds.SliceThickness = "0.6"
    ds.AcquisitionNumber, ds.InstanceNumber = 1, index + 1
    ds.ImagePositionPatient = [_ds(v) for v in _position(grid, 0)]
    _plane(ds, grid)
    ds.WindowCenter, ds.WindowWidth = "0", "2000"
    stored = np.clip(np.rint(hu + 1024.0), 0, 4095).astype(np.uint16)
    _pixel_module(ds, stored.shape, bits_stored=12, representation=0, slope=1.0, intercept=-1024.0)
    ds.PixelData = stored.tobytes()
    return ds


def dose_report(
    ctx: StudyContext, series_uid: str, series_number: int, rng: np.random.Generator
) -> Dataset:
    """A scanner dose report saved as a Secondary Capture with burned-in text."""
    sop_uid = make_uid(ctx.seed, ctx.patient_index, series_number, "dose-report")
    ds = _new_dataset(ctx, SecondaryCaptureImageStorage, sop_uid, ExplicitVRLittleEndian)
    ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    _series(ds, ctx, series_uid, series_number, "CT", "Patient Protocol / Dose Report")
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.BurnedInAnnotation = "YES"
    image = np.zeros((256, 256), dtype=np.uint8)
    for line in range(12):  # word-like blocks of "glyphs" on text lines
        col = 8
        while col < 240:
            width = int(rng.integers(12, 48))
            glyphs = rng.integers(0, 2, size=(7, max(width // 2, 1)), dtype=np.uint8) * 220
            block = np.repeat(glyphs, 2, axis=1)[:, : min(width, 248 - col)]
            image[10 + 20 * line : 17 + 20 * line, col : col + block.shape[1]] = block
            col += width + 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = image.tobytes()
    return ds


def structured_report(ctx: StudyContext, series_uid: str, series_number: int) -> Dataset:
    """A Comprehensive SR whose ContentSequence (two levels deep) carries free-text PHI."""
    ident = ctx.identity
    sop_uid = make_uid(ctx.seed, ctx.patient_index, series_number, "sr")
    ds = _new_dataset(ctx, ComprehensiveSRStorage, sop_uid, ExplicitVRLittleEndian)
    _series(ds, ctx, series_uid, series_number, "SR", "CT Chest Report")
    ds.InstanceNumber = 1
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence()
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "VERIFIED"
    observer = Dataset()
    observer.VerifyingObserverName = ident.verifying_observer
    observer.VerifyingOrganization = ident.institution_name
    observer.VerificationDateTime = ident.study_date + _later(ctx.study_time, 90)
    observer.VerifyingObserverIdentificationCodeSequence = DicomSequence()
    ds.VerifyingObserverSequence = DicomSequence([observer])
    ds.PerformedProcedureCodeSequence = DicomSequence()
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence(
        [_code("18748-4", "LN", "Diagnostic Imaging Report")]
    )
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentSequence = DicomSequence(
        [
            _text_item("121060", "History", ident.report_text),
            _container(
                "121070",
                "Findings",
                [
                    _text_item("121071", "Finding", "Pulmonary nodule(s), see annotations."),
                    _text_item("121073", "Impression", ident.report_addendum),
                ],
            ),
        ]
    )
    return ds


def _text_item(code: str, meaning: str, text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
    item.ConceptNameCodeSequence = DicomSequence([_code(code, "DCM", meaning)])
    item.TextValue = text
    return item


def _container(code: str, meaning: str, children: Sequence[Dataset]) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "CONTAINER"
    item.ConceptNameCodeSequence = DicomSequence([_code(code, "DCM", meaning)])
    item.ContinuityOfContent = "SEPARATE"
    item.ContentSequence = DicomSequence(list(children))
    return item
