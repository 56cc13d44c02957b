"""The de-identified header as DICOM JSON (PS3.18 F.2), for the catalog's ``header_json``.

pydicom's ``Dataset.to_json_dict`` converts every element into a value object first, which
made the JSON the costliest step of parsing an instance. Most elements of a de-identified
header are still the raw bytes pydicom read, and their JSON needs no value objects: strings
are split on the backslash, numbers unpacked, binary values base64-encoded. This module does
that for raw elements in little-endian data sets whose character set decodes byte by byte
(the default repertoire, ISO_IR 100 or ISO_IR 192); everything else (converted elements,
other character sets, values that are not valid for their VR) goes through pydicom's own
``DataElement.to_json_dict``, so the result is the same JSON either way.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

__all__ = ["header_json"]

#: Values longer than this many bytes are left out ("BulkDataURI": "omitted"), as the
#: catalog keeps headers, not payloads (pydicom's threshold of 4096 base64 characters).
BULK_BYTES = 4096 // 4 * 3
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_NUMBER_FORMATS = {
    "FD": "d",
    "FL": "f",
    "SL": "l",
    "SS": "h",
    "SV": "q",
    "UL": "L",
    "US": "H",
    "UV": "Q",
}
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI"})
_TEXT_VRS = frozenset({"LO", "SH", "UC"})
_SINGLE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UR"})
# Character sets whose text decodes byte by byte with one Python codec (PS3.3 C.12.1.1.2).
_CODECS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}


def header_json(ds: Dataset) -> str:
    """``ds`` without its pixel data as a DICOM JSON object, serialized."""
    return json.dumps(
        _dataset(ds, "latin-1", top=True)
    )  # no SpecificCharacterSet: default repertoire


def _dataset(ds: Dataset, parent_codec: str | None, *, top: bool = False) -> dict[str, Any]:
    codec = _codec(ds, parent_codec)
    little = ds.original_encoding[1] is not False
    out: dict[str, Any] = {}
    for elem in sorted(ds.elements(), key=lambda e: int(e.tag)):
        tag = int(elem.tag)
        if top and tag in _PIXEL_TAGS:
            continue  # an icon's pixel data (in a sequence) stays: it is small
        entry = _raw_entry(elem, codec) if isinstance(elem, RawDataElement) and little else None
        if entry is None:
            entry = _converted_entry(ds[tag], codec)
        out[f"{tag:08X}"] = entry
    return out


def _codec(ds: Dataset, parent: str | None) -> str | None:
    """The Python codec for the data set's text, or None (pydicom must decode it)."""
    if "SpecificCharacterSet" not in ds:
        return parent  # items inherit it (PS3.5 7.5.1)
    value = ds.SpecificCharacterSet
    terms = [str(v).strip() for v in value] if isinstance(value, list) else [str(value).strip()]
    codecs = {_CODECS.get(term) for term in terms}
    return codecs.pop() if len(codecs) == 1 else None


def _converted_entry(elem: DataElement, codec: str | None) -> dict[str, Any]:
    if elem.VR == "SQ":
        return {"vr": "SQ", "Value": [_dataset(item, codec) for item in elem.value]}
    return elem.to_json_dict(_omitted, BULK_BYTES // 3 * 4)


def _omitted(_: DataElement) -> str:
    return "omitted"


def _raw_entry(elem: RawDataElement, codec: str | None) -> dict[str, Any] | None:
    """The JSON of a raw little-endian element, or None to let pydicom do it."""
    # UN: pydicom looks the VR up (public or private dictionary) and decodes by it.
    vr = elem.VR or _dictionary_vr(int(elem.tag))
    if vr is None or vr == "UN" or elem.length == 0xFFFFFFFF:
        return None
    data = bytes(elem.value or b"")
    convert = _CONVERTERS.get(vr)
    if convert is None or (codec is None and vr in _CHARSET_VRS):
        return None
    if not data:
        return {"vr": vr}
    try:
        value = convert(data, codec or "latin-1")
    except (ValueError, struct.error, UnicodeDecodeError):
        return None  # not valid for its VR: pydicom decides
    if vr in _BINARY_VRS:
        if len(data) > BULK_BYTES:
            return {"vr": vr, "BulkDataURI": "omitted"}
        return {"vr": vr, "InlineBinary": value}
    return {"vr": vr, "Value": value} if value else {"vr": vr}


def _dictionary_vr(tag: int) -> str | None:
    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return None
    return vr if len(vr) == 2 else None  # "US or SS" and the like: pydicom resolves them


def _strings(data: bytes, codec: str) -> list[str]:
    text = data.decode(codec).rstrip("\x00 ")
    return text.split("\\") if text else []


def _ascii(data: bytes, _: str) -> list[str]:
    return _strings(data, "ascii")


def _single_text(data: bytes, codec: str) -> list[str]:
    text = data.decode(codec).rstrip("\x00 ")
    return [text] if text else []


def _person_names(data: bytes, codec: str) -> list[dict[str, str]]:
    names = []
    for value in _strings(data, codec):
        components = value.split("=")
        while len(components) > 1 and not components[-1]:
            components.pop()
        names.append(dict(zip(("Alphabetic", "Ideographic", "Phonetic"), components)))
    return names


def _integer_strings(data: bytes, _: str) -> list[int]:
    return [int(v) for v in _strings(data, "ascii")]


def _decimal_strings(data: bytes, _: str) -> list[float]:
    return [float(v) for v in _strings(data, "ascii")]


def _numbers(fmt: str) -> Callable[[bytes, str], list[Any]]:
    size = struct.calcsize(fmt)

    def unpack(data: bytes, _: str) -> list[Any]:
        return list(struct.unpack(f"<{len(data) // size}{fmt}", data))

    return unpack


def _tags(data: bytes, _: str) -> list[str]:
    pairs = struct.unpack(f"<{len(data) // 2}H", data)
    return [f"{group:04X}{element:04X}" for group, element in zip(pairs[::2], pairs[1::2])]


def _inline(data: bytes, _: str) -> str:
    return base64.b64encode(data).decode("ascii")


_CHARSET_VRS = _TEXT_VRS | _SINGLE_TEXT_VRS | {"PN"}
_CONVERTERS: dict[str, Callable[[bytes, str], Any]] = {
    **dict.fromkeys(_ASCII_VRS, _ascii),
    **dict.fromkeys(_TEXT_VRS, _strings),
    **dict.fromkeys(_SINGLE_TEXT_VRS, _single_text),
    **{vr: _numbers(fmt) for vr, fmt in _NUMBER_FORMATS.items()},
    **dict.fromkeys(_BINARY_VRS, _inline),
    "PN": _person_names,
    "IS": _integer_strings,
    "DS": _decimal_strings,
    "AT": _tags,
}
