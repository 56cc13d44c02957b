"""What de-identification writes into the header it cleaned: PS3.3 C.7.1.1 and C.12.1.

PatientIdentityRemoved YES, DeidentificationMethod and its code sequence (CID 7050, one
code per option applied) and LongitudinalTemporalInformationModified. The elements are the
same for every instance of a run but for the temporal mode, so a little-endian data set gets
them as raw elements encoded once per (options, mode, VR encoding) (:func:`encoded_marks`):
the exporter copies them and nothing builds four item data sets per instance.
"""

from __future__ import annotations

import functools
import struct

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from sparkdl.deid.options import DeidOptions
from sparkdl.deid.values import encode_text, iter_values

# CID 7050 De-identification Method, scheme DCM, in the order we list them.
_METHOD_CODES = (
    ("retain_safe_private", "113111", "Retain Safe Private Option"),
    ("retain_uids", "113110", "Retain UIDs Option"),
    ("retain_device_identity", "113109", "Retain Device Identity Option"),
    ("retain_institution_identity", "113112", "Retain Institution Identity Option"),
    ("retain_patient_characteristics", "113108", "Retain Patient Characteristics Option"),
    (
        "retain_long_full_dates",
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    (
        "retain_long_modified_dates",
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    ("clean_descriptors", "113105", "Clean Descriptors Option"),
    ("clean_structured_content", "113104", "Clean Structured Content Option"),
    ("clean_graphics", "113103", "Clean Graphics Option"),
)


def mark_elements(options: DeidOptions, mode: str) -> list[DataElement]:
    """PatientIdentityRemoved, DeidentificationMethod (Code Sequence) and the temporal mode."""
    applied = [(code, meaning) for name, code, meaning in _METHOD_CODES if getattr(options, name)]
    methods = ["sparkdl PS3.15 Basic Application Confidentiality Profile"]
    methods += [meaning[:64] for _, meaning in applied]
    items = []
    for code, meaning in [("113100", "Basic Application Confidentiality Profile"), *applied]:
        item = Dataset()
        item.CodeValue = code
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    return [
        DataElement(0x00120062, "CS", "YES"),  # PatientIdentityRemoved
        DataElement(0x00120063, "LO", methods),  # DeidentificationMethod
        DataElement(0x00120064, "SQ", Sequence(items)),  # DeidentificationMethodCodeSequence
        DataElement(0x00280303, "CS", mode),  # LongitudinalTemporalInformationModified
    ]


@functools.cache
def encoded_marks(options: DeidOptions, mode: str, implicit: bool) -> list[RawDataElement]:
    """:func:`mark_elements` as raw little-endian elements, the sequence and its items of
    defined length (all values are ASCII: the same bytes in every character set)."""
    encoded = []
    for elem in mark_elements(options, mode):
        if elem.VR != "SQ":
            values = [str(value) for value in iter_values(elem.value)]
            encoded.append(raw_text(elem.tag, elem.VR, values, implicit))
            continue
        items = [b"".join(_with_header(e, implicit) for e in item) for item in elem.value]
        value = b"".join(_ITEM.pack(0xFFFE, 0xE000, len(i)) + i for i in items)
        vr = None if implicit else "SQ"
        encoded.append(RawDataElement(elem.tag, vr, len(value), value, 0, implicit, True))
    return encoded


def _with_header(elem: DataElement, implicit: bool) -> bytes:
    """An item's element as pydicom writes it, header included."""
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = implicit, True
    write_data_element(buffer, elem)
    return buffer.getvalue()


_ITEM = struct.Struct("<HHI")


def raw_text(tag: int, vr: str, values: list[str], implicit: bool) -> RawDataElement:
    """A little-endian text element as the raw bytes pydicom would have read."""
    data = encode_text(vr, values)
    return RawDataElement(
        BaseTag(tag), None if implicit else vr, len(data), data, 0, implicit, True
    )
