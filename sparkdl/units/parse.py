"""One DICOM unit in, one outcome out: an accepted, de-identified instance or a reject reason.

Runs on executors, one call per file or archive member. Nothing here raises for bad input:
every problem becomes a stable reason code (see :data:`REASONS`) and a short detail.
Details may quote header values, which is why rejected rows live under ``_restricted/``;
they are never logged.
"""

from __future__ import annotations

import functools
import io
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from sparkdl.deid import DeidOptions, burned_in_reason, deidentify, remap_uid
from sparkdl.lidc.pseudonymous import pseudonymize, to_json
from sparkdl.lidc.read_message import ReadMessageError, parse_read_message
from sparkdl.lidc.sniff import is_read_message
from sparkdl.store.tables import CATALOG_FIELDS
from sparkdl.units.archives import Limits
from sparkdl.units.encoding import to_part10
from sparkdl.units.header_json import header_json
from sparkdl.units.native_pixels import native_frame
from sparkdl.units.volume_file import REASONS as VOLUME_REASONS

logger = logging.getLogger(__name__)

#: Stable reject codes and what they mean (README "Rejected inputs").
REASONS = {
    "empty_file": "zero bytes",
    "not_dicom": "no DICOM preamble/prefix and not a readable raw DICOM dataset",
    "parse_error": "the DICOM stream could not be parsed (truncated or corrupt header)",
    "dicomdir": "a DICOMDIR media directory, not an instance",
    "missing_required_tag": "a Type 1 identifying or image attribute is missing",
    "missing_pixel_data": "an Image Storage SOP class without (7FE0,0010) Pixel Data",
    "declared_size_too_large": (
        "Rows x Columns x NumberOfFrames x SamplesPerPixel over limits.max_pixels"
    ),
    "truncated_pixel_data": "fewer Pixel Data bytes than the header declares",
    "unsupported_transfer_syntax": "no installed decoder reads the transfer syntax (e.g. video)",
    "pixel_decode_error": "the pixel data could not be decoded (e.g. a corrupt compressed stream)",
    "burned_in_annotation": "BurnedInAnnotation is YES",
    "secondary_capture": "secondary capture: may carry burned-in text",
    "screen_save": "screen save: may carry burned-in text",
    "dose_report": "dose report: may carry burned-in text",
    "duplicate_instance": "the same SOPInstanceUID was already cataloged from another input",
    "duplicate_read_message": "an LIDC read message with the same bytes as another input",
    "symlink": "symbolic link: not followed",
    "file_too_large": "over limits.max_file_bytes",
    "corrupt_archive": "the archive (or its remainder) could not be read",
    "corrupt_archive_member": "an archive member could not be read",
    "unsafe_member_path": "archive member with an absolute or ../ path",
    "not_regular_member": "archive member that is a link or special file",
    "archive_bomb": "archive member over the size or compression-ratio caps",
    "read_error": "the input could not be read",
    # MetaImage and NIfTI volume files (sparkdl.units.volume_file).
    **VOLUME_REASONS,
}

_REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: First bytes of a raw dataset: a group 0002 tag (little endian, as file meta always is) or
#: a group 0008 tag in little or big endian.
_RAW_DATASET_STARTS = (b"\x02\x00", b"\x08\x00", b"\x00\x08")


@dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str


@dataclass(frozen=True)
class Accepted:
    """A de-identified instance: catalog fields, and pixels when it may join a CT volume."""

    fields: dict[str, Any]
    pixels: bytes | None
    pixel_dtype: str | None
    dicom_bytes: bytes | None


@dataclass(frozen=True)
class ReadMessageUnit:
    """An LIDC read message (XML), pseudonymized: its series' de-identified UID and the
    message as :func:`sparkdl.lidc.pseudonymous.to_json` writes it."""

    series_uid: str
    read_message: str


#: How an LIDC read message may start: XML, possibly after whitespace or a byte-order mark.
_XML_STARTS = (b"<", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def process_instance(
    data: bytes, key: bytes, deid: DeidOptions, limits: Limits, export_dicom: bool
) -> Accepted | Rejected | ReadMessageUnit:
    """Parse, check, de-identify and describe one DICOM unit.

    pydicom's checks of values against their VR are off meanwhile: they warn (to `warnings`
    and its logger) quoting the value, and "Invalid value for VR UI:
    '1.2.840.99.SMITH.19570314'" would put an identifying UID into the executor's log.
    Values are taken as they are; de-identification replaces the identifying ones.
    """
    if not data:
        return Rejected("empty_file", "0 bytes")
    if data[:64].lstrip().startswith(_XML_STARTS) and is_read_message(data):
        return _read_message(data, key)
    with pydicom.config.disable_value_validation():
        return _process(data, key, deid, limits, export_dicom)


def _process(
    data: bytes, key: bytes, deid: DeidOptions, limits: Limits, export_dicom: bool
) -> Accepted | Rejected:
    try:
        ds = _read(data)
        if isinstance(ds, Rejected):
            return ds
        pixels, dtype = (None, None)
        with _reading(ds):
            problem = _check(ds, deid, limits)
            if problem is not None:
                return problem
            if _is_volume_candidate(ds):
                decoded = _decode_pixels(ds)
                if isinstance(decoded, Rejected):
                    return decoded
                pixels, dtype = decoded.tobytes(), decoded.dtype.str
        result = deidentify(ds, key, deid)
        dicom_bytes = to_part10(ds) if export_dicom else None
        with _reading(ds):
            fields = catalog_fields(ds, result.date_offset_days)
        fields["header_json"] = header_json(ds)
        return Accepted(fields, pixels, dtype, dicom_bytes)
    except Exception as err:  # noqa: BLE001 - bad input must never crash the job
        return Rejected("parse_error", _describe_error(err))


@contextmanager
def _reading(ds: Dataset) -> Iterator[None]:
    """Steps that only read ``ds`` leave its elements as the raw bytes they were.

    pydicom converts an element in place the first time its value is asked for. The checks,
    pixel decoding and catalog fields read about 35 elements of a CT slice; converted, each
    would be decoded again by the header JSON and re-encoded by the exporter (~10 µs an
    element), while raw ones are copied as bytes. The block must not change ``ds``: the
    elements it converted are put back as the same bytes they came from.
    """
    raw = elements_as_stored(ds)
    try:
        yield
    finally:
        restore_elements(ds, raw)


def elements_as_stored(ds: Dataset) -> dict[BaseTag, DataElement | RawDataElement]:
    """The data set's elements as they are stored now (raw or converted), by tag."""
    return dict(ds._dict)


def restore_elements(ds: Dataset, stored: dict[BaseTag, DataElement | RawDataElement]) -> None:
    """Put the ``stored`` elements back in place of those converted since (none added or
    removed in between)."""
    elements = ds._dict
    for tag, elem in stored.items():
        if tag in elements:
            elements[tag] = elem


def _read_message(data: bytes, key: bytes) -> ReadMessageUnit | Rejected:
    """An LIDC read message parsed safely and pseudonymized (UIDs remapped, no reader ids).

    Refused XML (entities, DTDs, external references), malformed or truncated XML, and a
    message without its series are rejected with the parser's reason; the detail never
    quotes the content.
    """
    try:
        message = parse_read_message(data)
    except ReadMessageError as err:
        return Rejected(err.reason, "LIDC read message (XML) not read")
    message = pseudonymize(message, lambda uid: remap_uid(key, uid))
    return ReadMessageUnit(message.series_uid, to_json(message))


def _describe_error(err: Exception) -> str:
    """The error type and the tags it names: pydicom messages can quote values (PHI)."""
    tags = sorted(set(re.findall(r"\([0-9A-Fa-f]{4}, ?[0-9A-Fa-f]{4}\)", str(err))))
    return type(err).__name__ + (f" at {', '.join(tags)}" if tags else "")


def _read(data: bytes) -> Dataset | Rejected:
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        # Old systems write raw datasets without preamble/DICM; accept only if it really is
        # one. Such a stream starts with a group 0002 or 0008 tag: anything else is not
        # tried (a forced parse of megabytes of junk costs seconds).
        if data[:2] not in _RAW_DATASET_STARTS:
            return Rejected("not_dicom", "no DICM prefix and not a raw DICOM dataset")
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
                return Rejected("not_dicom", "no DICM prefix and no SOP identification")
            str(ds.SOPInstanceUID)
        except Exception:  # noqa: BLE001
            return Rejected("not_dicom", "no DICM prefix and not a raw DICOM dataset")
        _record_transfer_syntax(ds)
    return ds


def _record_transfer_syntax(ds: Dataset) -> None:
    """Give a raw dataset (no file meta) the transfer syntax it was read in.

    Pixel decoding and re-encoding look for (0002,0010); pydicom found the encoding from the
    first tags (PS3.5 §10: a raw stream is in one of the three uncompressed syntaxes).
    """
    if "TransferSyntaxUID" in getattr(ds, "file_meta", ()):
        return
    implicit, little = ds.original_encoding
    syntax = (
        ImplicitVRLittleEndian
        if implicit
        else ExplicitVRLittleEndian
        if little
        else ExplicitVRBigEndian
    )
    ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax


def _check(ds: Dataset, deid: DeidOptions, limits: Limits) -> Rejected | None:
    meta_class = getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID", "")
    if str(meta_class) == _DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        return Rejected("dicomdir", "media storage directory (DICOMDIR)")
    missing = [kw for kw in _REQUIRED if not str(ds.get(kw, "") or "").strip()]
    if missing:
        return Rejected("missing_required_tag", "missing " + ", ".join(missing))
    if deid.reject_burned_in:
        reason = burned_in_reason(ds)
        if reason:
            return Rejected(reason, f"SOP class {UID(str(ds.SOPClassUID)).name}")
    sop_class = UID(str(ds.SOPClassUID))
    has_pixels = "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds
    if not has_pixels:
        if sop_class.name.endswith("Image Storage"):
            return Rejected("missing_pixel_data", f"{sop_class.name} without Pixel Data")
        return None
    missing = [kw for kw in ("Rows", "Columns", "BitsAllocated") if not ds.get(kw)]
    if missing:
        return Rejected("missing_required_tag", "missing " + ", ".join(missing))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    declared = int(ds.Rows) * int(ds.Columns) * frames * int(ds.get("SamplesPerPixel", 1) or 1)
    if declared > limits.max_pixels:
        return Rejected("declared_size_too_large", f"{declared} pixels > limits.max_pixels")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if "PixelData" in ds and (syntax is None or not UID(str(syntax)).is_compressed):
        expected = declared * int(ds.BitsAllocated) // 8
        actual = len(ds.PixelData)
        if actual < expected:
            return Rejected("truncated_pixel_data", f"{actual} of {expected} bytes")
    return None


def _is_volume_candidate(ds: Dataset) -> bool:
    """CT slices with geometry and one frame: the instances series assembly needs pixels of."""
    return (
        str(ds.get("Modality", "")).upper() == "CT"
        and "PixelData" in ds
        and "ImagePositionPatient" in ds
        and "ImageOrientationPatient" in ds
        and int(ds.get("NumberOfFrames", 1) or 1) == 1
    )


def _decode_pixels(ds: Dataset) -> npt.NDArray[Any] | Rejected:
    native = native_frame(ds)  # the common case, exactly as pixel_array gives it, 4x cheaper
    if native is not None:
        return native
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2")))
    if not _has_decoder(syntax):
        return Rejected(
            "unsupported_transfer_syntax", f"{syntax.name} ({syntax}): no decoder installed"
        )
    try:
        pixels = ds.pixel_array
    except Exception as err:  # noqa: BLE001 - a corrupt stream of a syntax we can decode
        return Rejected("pixel_decode_error", f"{syntax.name}: {_describe_error(err)}")
    if pixels.ndim != 2:
        return Rejected("pixel_decode_error", f"expected one 2-D frame, got shape {pixels.shape}")
    return np.ascontiguousarray(pixels)


@functools.cache
def _has_decoder(syntax: UID) -> bool:
    """Whether an installed pydicom decoder plugin reads ``syntax`` (uncompressed: native)."""
    try:
        return bool(get_decoder(syntax).is_available)
    except NotImplementedError:  # no decoder exists for it (video, private, unknown UIDs)
        return False


def _values(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]


def _floats(value: Any) -> list[float] | None:
    try:
        return [float(v) for v in _values(value)] or None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    values = _floats(value)
    return values[0] if values else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


#: How a catalog column typed in :data:`sparkdl.store.tables.CATALOG_FIELDS` is read from its
#: DICOM attribute (the column name is the keyword).
_READERS: dict[str, Callable[[Any], Any]] = {
    "int": _int,
    "double": _float,
    "string": _str,
    "array<double>": _floats,
    "array<string>": lambda value: [str(v) for v in _values(value)],
}

#: ``(keyword, reader, in file meta)`` of every catalog column named by a DICOM keyword.
#: Built once: a column type without a reader fails at import, not as a parse_error per row.
_KEYWORD_COLUMNS = [
    (column.name, _READERS[column.dataType.simpleString()], tag >> 16 == 0x0002)
    for column in CATALOG_FIELDS
    if (tag := tag_for_keyword(column.name)) is not None
]


def catalog_fields(ds: Dataset, date_offset_days: int | None) -> dict[str, Any]:
    """Typed catalog columns from a de-identified dataset.

    Columns named by a DICOM keyword are read by their declared type; the others (ids,
    names, what de-identification did) are set here. ``header_json`` is the caller's.
    """
    meta = getattr(ds, "file_meta", Dataset())
    fields: dict[str, Any] = {
        "sop_uid": str(ds.SOPInstanceUID),
        "series_uid": str(ds.SeriesInstanceUID),
        "study_uid": str(ds.StudyInstanceUID),
        "patient_id": str(ds.get("PatientID", "")),
        "frame_of_reference_uid": _str(ds.get("FrameOfReferenceUID")),
        "sop_class_name": UID(str(ds.SOPClassUID)).name,
        "date_offset_applied": date_offset_days is not None and date_offset_days != 0,
    }
    for keyword, read, in_meta in _KEYWORD_COLUMNS:
        fields[keyword] = read((meta if in_meta else ds).get(keyword))
    return fields
