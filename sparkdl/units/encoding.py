"""Part 10 bytes of a data set that pydicom read and sparkdl edited in place.

pydicom's writer costs about 10 µs an element even when the element is still the raw bytes
it read (a buffer per element, checks per VR), which made writing the export the largest
step of an ingest. An element still raw is already encoded in the data set's own transfer
syntax, so here it is copied with its header (PS3.5 7.1.2 explicit, 7.1.3 implicit VR);
elements pydicom converted (those de-identification set, sequences, what ``deidentify``
added) go through pydicom's own element writer. The bytes are those ``dcmwrite`` gives,
except that the preamble is always 128 zero bytes: a source's preamble may hold anything
(PS3.10 7.1, dual-personality TIFF headers), so it is never copied.

A data set whose encoding is not the little-endian one its transfer syntax names (big
endian, deflated, or raw elements read in another encoding) is written by ``dcmwrite``.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable

from pydicom import dcmwrite
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.uid import UID

__all__ = ["to_part10"]

_PREAMBLE = b"\x00" * 128 + b"DICM"
# VRs with a 4-byte length in explicit VR (PS3.5 Table 7.1-1).
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_UNDEFINED = 0xFFFFFFFF
_SHORT = struct.Struct("<HH2sH")
_LONG = struct.Struct("<HH2s2xI")
_IMPLICIT = struct.Struct("<HHI")
# File meta values set as text (the UIDs, the implementation version name, AE titles).
_META_STRING_VRS = frozenset({"UI", "SH", "AE", "UR"})


def to_part10(ds: Dataset) -> bytes:
    """The Part 10 file of ``ds``: zero preamble, ``DICM``, file meta, data set.

    The file meta is updated as ``dcmwrite(..., enforce_file_format=True)`` does
    (MediaStorageSOPClassUID / InstanceUID follow the data set) and must be valid.
    """
    meta = ds.file_meta
    syntax = UID(str(meta.get("TransferSyntaxUID", "")))
    implicit = syntax.is_implicit_VR if syntax.is_transfer_syntax else None
    if (
        implicit is None
        or not syntax.is_little_endian
        or syntax.is_deflated
        or ds.original_encoding not in ((implicit, True), (None, None))
    ):
        return _with_pydicom(ds)
    for keyword, meta_keyword in (
        ("SOPClassUID", "MediaStorageSOPClassUID"),
        ("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
    ):
        value = ds.get(keyword)
        if value and meta.get(meta_keyword) != value:
            setattr(meta, meta_keyword, value)
    parts = [_PREAMBLE, _file_meta(meta)]  # joined once: the pixel data is copied once
    charset = ds.get("SpecificCharacterSet") or default_encoding
    for elem in _sorted_elements(ds):
        if not isinstance(elem, RawDataElement) or elem.length == _UNDEFINED:
            converted = DicomBytesIO()
            converted.is_implicit_VR, converted.is_little_endian = implicit, True
            write_data_element(converted, elem, charset)
            parts.append(converted.getvalue())
            continue
        value = elem.value or b""
        group, number = elem.tag >> 16, elem.tag & 0xFFFF
        if implicit:
            parts.append(_IMPLICIT.pack(group, number, len(value)))
        elif elem.VR is None:  # read as implicit VR from a file that says explicit
            return _with_pydicom(ds)
        else:
            vr = elem.VR.encode("ascii")
            header = _LONG if vr in _LONG_VRS else _SHORT
            parts.append(header.pack(group, number, vr, len(value)))
        parts.append(value)
    return b"".join(parts)


def _file_meta(meta: FileMetaDataset) -> bytes:
    """The file meta group as ``write_file_meta_info(..., enforce_standard=True)`` writes it:
    completed and checked by pydicom, encoded here (always explicit VR little endian, PS3.10
    7.1), with its group length first."""
    validate_file_meta(meta, enforce_standard=True)
    parts = []
    for elem in sorted(meta.elements(), key=lambda elem: int(elem.tag)):
        if elem.tag == 0x00020000:
            continue  # group length: computed below
        if isinstance(elem, RawDataElement) and elem.VR and elem.length != _UNDEFINED:
            vr, value = elem.VR, bytes(elem.value or b"")
        elif elem.VR in _META_STRING_VRS and isinstance(elem.value, str):
            vr, value = elem.VR, elem.value.encode("ascii")
            value += (b"\x00" if vr == "UI" else b" ") * (len(value) % 2)
        elif elem.VR == "OB" and isinstance(elem.value, bytes):
            vr, value = "OB", elem.value + b"\x00" * (len(elem.value) % 2)
        else:  # any other kind of value: pydicom encodes the whole group
            buffer = DicomBytesIO()
            write_file_meta_info(buffer, meta, enforce_standard=True)
            return buffer.getvalue()
        header = _LONG if vr.encode("ascii") in _LONG_VRS else _SHORT
        parts.append(header.pack(elem.tag >> 16, elem.tag & 0xFFFF, vr.encode("ascii"), len(value)))
        parts.append(value)
    body = b"".join(parts)
    return _SHORT.pack(0x0002, 0x0000, b"UL", 4) + struct.pack("<I", len(body)) + body


def _sorted_elements(ds: Dataset) -> Iterable[DataElement | RawDataElement]:
    """Top-level elements in ascending tag order (PS3.5 7.1), none converted, without the
    retired group lengths (PS3.5 7.2), as pydicom writes them."""
    elements = (elem for elem in ds.elements() if elem.tag & 0xFFFF or elem.tag >> 16 <= 6)
    return sorted(elements, key=lambda elem: int(elem.tag))


def _with_pydicom(ds: Dataset) -> bytes:
    ds.preamble = None  # dcmwrite writes zeros instead
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
