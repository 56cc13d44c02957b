"""Element values as text, read and replaced without pydicom's value conversion.

pydicom reads a data set lazily: an element stays a ``RawDataElement`` (its encoded bytes)
until something asks for its value, and that conversion (VR lookup, hooks, charset, value
objects) costs more than everything the profile does with the value. What the profile
changes is UIDs, dates and dummies, all in the default repertoire (PS3.5 6.1.2: UI, DA, DT
are ASCII), so it edits the bytes: split on the backslash, replace, join, pad to even length,
and put a new ``RawDataElement`` back. The exporter then copies every raw element as bytes
(:mod:`sparkdl.units.encoding`). Elements pydicom has already converted are edited through their
value, with the same results.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

__all__ = [
    "BINARY_VRS",
    "NUMBER_SIZES",
    "encode_text",
    "get_strings",
    "item",
    "iter_values",
    "set_bytes",
    "set_strings",
    "shift_date",
    "shift_datetime",
]

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
#: Bytes of one value of each binary number VR (PS3.5 Table 6.2-1).
NUMBER_SIZES = {"AT": 4, "FD": 8, "FL": 4, "SL": 4, "SS": 2, "SV": 8, "UL": 4, "US": 2, "UV": 8}
# Text values of these VRs are one value that may hold backslashes (PS3.5 6.4).
_SINGLE_VALUED = frozenset({"LT", "ST", "UT", "UR"})


def get_strings(ds: Dataset, tag: int) -> list[str]:
    """The values of a text element (no padding), from its bytes when still raw."""
    elem = item(ds, tag)
    if elem.is_raw:
        data = elem.value or b""
        # latin-1 maps every byte to one character, so set_strings gives back the same bytes.
        text = bytes(data).decode("latin-1").rstrip("\x00 ")
        return [v.strip("\x00 ") for v in text.split("\\")] if text else []
    return [str(v) for v in iter_values(ds[tag].value)]


def set_strings(ds: Dataset, tag: int, vr: str, values: list[str]) -> None:
    """Replace a text element's values (an empty list: zero length)."""
    elem = item(ds, tag)
    if isinstance(elem, RawDataElement):
        _replace(ds, elem, encode_text(vr, values))
        return
    element = ds[tag]
    element.value = "" if not values else values[0] if len(values) == 1 else values


def encode_text(vr: str, values: list[str]) -> bytes:
    """A text element's value bytes: the values joined on the backslash (LT, ST, UT and UR
    hold one value), latin-1, padded to even length (NUL for UI, a space otherwise)."""
    text = values[0] if vr in _SINGLE_VALUED and values else "\\".join(values)
    data = text.encode("latin-1", errors="replace")
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


def set_bytes(ds: Dataset, tag: int, data: bytes | None) -> None:
    """Replace a binary or number element's encoded value (None: empty).

    ``data`` must be valid in either byte order (zeros), since a converted element takes
    it as its value and a raw one as its encoding.
    """
    elem = item(ds, tag)
    if isinstance(elem, RawDataElement):
        _replace(ds, elem, data or b"")
        return
    element = ds[tag]
    if element.VR in NUMBER_SIZES:
        element.value = None if data is None else 0
    else:
        element.value = data or b""


def item(ds: Dataset, tag: int) -> DataElement | RawDataElement:
    """The element as stored: still raw, or converted (read from memory: never deferred)."""
    return ds._dict[tag]  # type: ignore[index]  # an int is a tag


def _replace(ds: Dataset, elem: RawDataElement, data: bytes) -> None:
    ds._dict[elem.tag] = elem._replace(value=data, length=len(data))  # same tag: no checks


def iter_values(value: object) -> Iterable[object]:
    if value is None or value == "":
        return ()
    if isinstance(value, (str, bytes)):
        return (value,)
    if isinstance(value, Iterable):
        return value
    return (value,)


def shift_date(value: str, offset: int) -> str:
    """Shift a DA value (YYYYMMDD, legacy YYYY.MM.DD, or a query range A-B) by days."""
    text = value.strip()
    if "-" in text:
        return "-".join(shift_date(part, offset) if part else "" for part in text.split("-"))
    text = text.replace(".", "") if len(text) == 10 else text
    if len(text) != 8 or not text.isdigit():
        raise ValueError("not a DA value")
    day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    return (day + datetime.timedelta(days=offset)).strftime("%Y%m%d")


def shift_datetime(value: str, offset: int) -> str:
    """Shift the date part of a DT value, keeping its precision, time and UTC offset."""
    text = value.strip()
    suffix = ""
    for sign in ("+", "-"):
        if sign in text[4:]:
            cut = text.index(sign, 4)
            text, suffix = text[:cut], text[cut:]
    digits = len(text[:8])
    if digits not in (4, 6, 8) or not text[:digits].isdigit():
        raise ValueError("not a DT value")
    full = text[:digits] + "0701"[digits - 4 :] if digits < 8 else text[:8]
    shifted = shift_date(full, offset)
    return shifted[:digits] + text[digits:] + suffix
