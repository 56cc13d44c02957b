"""pydicom datasets for the synthetic study: axial CT slices, localizers, a dose-report
Secondary Capture and a Comprehensive SR, each a complete Part 10 file.

All identifying values come from :class:`~sparkdl.synth.identity.Identity`; every UID comes
from :func:`~sparkdl.synth.dicom_modules.make_uid`, so the same seed writes the same bytes.
The modules they share are in :mod:`sparkdl.synth.dicom_modules`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    ComprehensiveSRStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    RLELossless,
    SecondaryCaptureImageStorage,
)

from sparkdl.synth.dicom_modules import (
    SCANNERS,
    StudyContext,
    code_item,
    ct_acquisition_module,
    decimal_string,
    image_position,
    later,
    make_uid,
    new_dataset,
    pixel_module,
    plane_module,
    series_module,
)
from sparkdl.synth.part10 import encode_series
from sparkdl.synth.phantom import Grid
from sparkdl.synth.rle import encode_rle_frame
from sparkdl.synth.variants import SeriesSpec

logger = logging.getLogger(__name__)


def _ct_template(
    ctx: StudyContext, spec: SeriesSpec, series_uid: str, series_number: int
) -> Dataset:
    """Everything but the per-slice elements (see :func:`_ct_slice_elements`)."""
    sop_uid = make_uid(ctx.seed, ctx.patient_index, series_number, "ct", 0)
    ds = new_dataset(ctx, CTImageStorage, sop_uid, spec.transfer_syntax_uid)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    series_module(
        ds,
        ctx,
        series_uid,
        series_number,
        "CT",
        f"THORAX {spec.slice_thickness_mm:g}MM {SCANNERS[ctx.scanner][2]}",
    )
    ct_acquisition_module(ds, ctx, spec.patient_position)
    ds.AcquisitionTime = later(ctx.study_time, series_number)
    ds.ScanOptions = "HELICAL MODE"
    ds.SliceThickness = decimal_string(spec.slice_thickness_mm)
    if spec.write_spacing_between_slices:
        ds.SpacingBetweenSlices = decimal_string(spec.slice_spacing_mm)
    ds.ReconstructionDiameter = decimal_string(spec.pixel_spacing_mm * spec.grid.shape[2])
    ds.AcquisitionNumber = 1
    plane_module(ds, spec.grid)
    ds.WindowCenter, ds.WindowWidth = ["-600", "40"], ["1500", "400"]
    ds.WindowCenterWidthExplanation = ["LUNG", "MEDIASTINUM"]
    pixel_module(
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
    position = image_position(spec.grid, k)
    ds.ImagePositionPatient = [decimal_string(v) for v in position]
    ds.SliceLocation = decimal_string(position[2])
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
    ds = new_dataset(ctx, CTImageStorage, sop_uid, ExplicitVRLittleEndian)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    series_module(ds, ctx, series_uid, series_number, "CT", "TOPOGRAM 0.6 T20s")
    ct_acquisition_module(ds, ctx, "HFS")
    ds.AcquisitionTime = ctx.study_time
    ds.SliceThickness = "0.6"
    ds.AcquisitionNumber, ds.InstanceNumber = 1, index + 1
    ds.ImagePositionPatient = [decimal_string(v) for v in image_position(grid, 0)]
    plane_module(ds, grid)
    ds.WindowCenter, ds.WindowWidth = "0", "2000"
    stored = np.clip(np.rint(hu + 1024.0), 0, 4095).astype(np.uint16)
    pixel_module(ds, stored.shape, bits_stored=12, representation=0, slope=1.0, intercept=-1024.0)
    ds.PixelData = stored.tobytes()
    return ds


def dose_report(
    ctx: StudyContext, series_uid: str, series_number: int, rng: np.random.Generator
) -> Dataset:
    """A scanner dose report saved as a Secondary Capture with burned-in text."""
    sop_uid = make_uid(ctx.seed, ctx.patient_index, series_number, "dose-report")
    ds = new_dataset(ctx, SecondaryCaptureImageStorage, sop_uid, ExplicitVRLittleEndian)
    ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    series_module(ds, ctx, series_uid, series_number, "CT", "Patient Protocol / Dose Report")
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
    ds = new_dataset(ctx, ComprehensiveSRStorage, sop_uid, ExplicitVRLittleEndian)
    series_module(ds, ctx, series_uid, series_number, "SR", "CT Chest Report")
    ds.InstanceNumber = 1
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence()
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "VERIFIED"
    observer = Dataset()
    observer.VerifyingObserverName = ident.verifying_observer
    observer.VerifyingOrganization = ident.institution_name
    observer.VerificationDateTime = ident.study_date + later(ctx.study_time, 90)
    observer.VerifyingObserverIdentificationCodeSequence = DicomSequence()
    ds.VerifyingObserverSequence = DicomSequence([observer])
    ds.PerformedProcedureCodeSequence = DicomSequence()
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence(
        [code_item("18748-4", "LN", "Diagnostic Imaging Report")]
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
    item.ConceptNameCodeSequence = DicomSequence([code_item(code, "DCM", meaning)])
    item.TextValue = text
    return item


def _container(code: str, meaning: str, children: Sequence[Dataset]) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "CONTAINER"
    item.ConceptNameCodeSequence = DicomSequence([code_item(code, "DCM", meaning)])
    item.ContinuityOfContent = "SEPARATE"
    item.ContentSequence = DicomSequence(list(children))
    return item
