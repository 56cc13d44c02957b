"""DICOM modules every synthetic object shares (PS3.3), and the study's UIDs.

:func:`new_dataset` fills the file meta, SOP Common, Patient and General Study modules (with
all the study's PHI, for de-identification to remove); the other helpers fill one module
each: General Series, CT acquisition, Image Pixel, Image Plane. :mod:`sparkdl.synth.dicom_writer`
builds the objects (CT slices, localizers, dose report, SR) from them. Every UID comes from
:func:`make_uid`, so the same seed writes the same bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID

from sparkdl.synth.identity import Identity
from sparkdl.synth.phantom import Grid

IMPLEMENTATION_VERSION_NAME = "SPARKDL_SYNTH_1"
PRIVATE_CREATOR = "SYNTHVENDOR PHI 1.0"
#: Private group with a creator, and the orphan private element written without one.
PRIVATE_GROUP = 0x0009
ORPHAN_PRIVATE_TAG = 0x00111010

SCANNERS = (
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
        scanner=int(rng.integers(len(SCANNERS))),
    )


def decimal_string(value: float | np.floating[Any]) -> str:
    """A Decimal String of at most 16 characters."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def later(time: str, minutes: int) -> str:
    total = int(time[:2]) * 60 + int(time[2:4]) + minutes
    return f"{min(total // 60, 23):02d}{total % 60:02d}{time[4:6]}"


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def new_dataset(  # noqa: PLR0915 - one assignment per DICOM attribute
    ctx: StudyContext, sop_class: str, sop_uid: str, syntax: str
) -> Dataset:
    """File meta, SOP common, patient and general study modules, with all the study's PHI.

    Long on purpose: a flat list of attribute assignments, in module order, reads as the
    IOD modules it fills.

    Long: one DICOM module after another, as PS3.3 lists them.
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
    ds.Manufacturer = SCANNERS[ctx.scanner][0]
    ds.InstitutionName, ds.InstitutionAddress = ident.institution_name, ident.institution_address
    ds.ReferringPhysicianName = ident.referring_physician
    referrer = Dataset()
    referrer.InstitutionName = ident.institution_name
    referrer.PersonIdentificationCodeSequence = DicomSequence(
        [code_item(ident.referring_physician_id, "99SYNTH", ident.referring_physician)]
    )
    ds.ReferringPhysicianIdentificationSequence = DicomSequence([referrer])
    ds.StationName = ident.station_name
    ds.StudyDescription = ident.study_description
    ds.InstitutionalDepartmentName = ident.institution_department
    ds.PerformingPhysicianName = ident.performing_physician
    ds.OperatorsName = ident.operator
    ds.ManufacturerModelName = SCANNERS[ctx.scanner][1]
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
    ds.SoftwareVersions = SCANNERS[ctx.scanner][3]
    ds.StudyInstanceUID = ctx.study_uid
    ds.StudyID = ident.study_id
    request = Dataset()
    request.RequestedProcedureID = ident.requested_procedure_id
    request.ScheduledProcedureStepID = ident.scheduled_step_id
    request.RequestedProcedureDescription = ident.requested_procedure_description
    request.ScheduledProtocolCodeSequence = DicomSequence(
        [code_item("CTCHESTLD", "99SYNTH", ident.procedure_title)]
    )
    ds.RequestAttributesSequence = DicomSequence([request])
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", ident.private_name_value)
    block.add_new(0x02, "LO", ident.private_mrn_value)
    ds.add_new(ORPHAN_PRIVATE_TAG, "LO", ident.orphan_private_value)  # no (0011,0010) creator
    return ds


def series_module(
    ds: Dataset, ctx: StudyContext, series_uid: str, number: int, modality: str, description: str
) -> None:
    ds.SeriesDate = ds.ContentDate = ctx.identity.study_date
    ds.SeriesTime = ds.ContentTime = later(ctx.study_time, number)
    ds.Modality, ds.SeriesDescription = modality, description
    ds.SeriesInstanceUID, ds.SeriesNumber = series_uid, number


def ct_acquisition_module(ds: Dataset, ctx: StudyContext, position: str) -> None:
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
    ds.ConvolutionKernel = SCANNERS[ctx.scanner][2]
    ds.PatientPosition = position
    ds.FrameOfReferenceUID = ctx.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""


def pixel_module(
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
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = (
        decimal_string(intercept),
        decimal_string(slope),
        "HU",
    )


def plane_module(ds: Dataset, grid: Grid) -> None:
    """ImageOrientationPatient and PixelSpacing of ``grid``'s slices."""
    steps = np.asarray(grid.steps)
    row_spacing, col_spacing = np.linalg.norm(steps[1]), np.linalg.norm(steps[2])
    row_dir, col_dir = steps[2] / col_spacing, steps[1] / row_spacing
    ds.ImageOrientationPatient = [decimal_string(v) for v in (*row_dir, *col_dir)]
    ds.PixelSpacing = [decimal_string(row_spacing), decimal_string(col_spacing)]


def image_position(grid: Grid, k: int) -> npt.NDArray[np.float64]:
    """World position (mm) of slice ``k``'s first voxel: its ImagePositionPatient."""
    return np.asarray(grid.origin, dtype=np.float64) + k * np.asarray(
        grid.steps[0], dtype=np.float64
    )
