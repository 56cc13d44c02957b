"""LIDC-IDRI read messages: the radiologists' XML marks of one CT series, parsed safely.

A read message (root ``LidcReadMessage`` in namespace ``http://www.nih.gov``) holds a
``ResponseHeader`` (SeriesInstanceUid, StudyInstanceUID) and one ``readingSession`` per
radiologist. A session lists the reader's ``unblindedReadNodule`` marks, each with optional
``characteristics`` (ratings 1–5, calcification 1–6) and one ``roi`` per slice: the slice's
``imageSOP_UID`` and ``imageZposition``, ``inclusion`` (FALSE: a hole cut out of the nodule)
and the ``edgeMap`` outline in pixel coordinates (``xCoord`` = column, ``yCoord`` = row).
By the LIDC convention a nodule < 3 mm is marked by a single point without characteristics,
and ``nonNodule`` marks (lesions ≥ 3 mm that are not nodules) are a single ``locus`` point.

The files come from outside, so they are parsed with :mod:`defusedxml`: a DTD, entity
declarations (billion laughs) or external references (XXE) are refused, and nothing is ever
fetched. The parser is tolerant where the LIDC schema and its real files vary (whitespace in
numbers, sessions without nodules, missing characteristics, header variants) and strict
where a mark becomes unusable: such a mark is kept out of the reads and listed in
``ReadingSession.unusable`` with a reason code.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np
import numpy.typing as npt

from sparkdl.errors import InputError
from sparkdl.lidc.sniff import LIDC_NAMESPACE, ROOT_ELEMENT

logger = logging.getLogger(__name__)

__all__ = [
    "CHARACTERISTICS",
    "NoduleRead",
    "NonNoduleMark",
    "ReadMessage",
    "ReadMessageError",
    "ReadingSession",
    "Roi",
    "SmallNoduleRead",
    "Unusable",
    "parse_read_message",
]

#: The rated characteristics, in the order of the LIDC schema (and pylidc's feature_names).
CHARACTERISTICS = (
    "subtlety",
    "internalStructure",
    "calcification",
    "sphericity",
    "margin",
    "lobulation",
    "spiculation",
    "texture",
    "malignancy",
)
MarkKind = Literal["nodule", "small_nodule", "non_nodule"]


class ReadMessageError(InputError):
    """A read message cannot be parsed; ``reason`` is a short code.

    Codes: ``xml_entities_forbidden`` (entity declarations: billion laughs, XXE),
    ``xml_external_forbidden`` (an external DTD), ``xml_dtd_forbidden`` (any other DTD),
    ``xml_malformed`` (not well-formed or truncated), ``not_lidc_xml`` (another root
    element or namespace), ``series_uid_missing``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{message} (reason: {reason})")
        self.reason = reason


@dataclass(frozen=True, eq=False)
class Roi:
    """One slice of a nodule outline. ``xy`` is ``(n, 2)`` int: x = column, y = row
    (read-only).

    ``z_position`` is the XML's imageZposition (NaN when absent or not a number); it is
    informative only: marks are placed through ``sop_uid``.
    """

    sop_uid: str
    z_position: float
    inclusion: bool
    xy: npt.NDArray[np.int64] = field(repr=False)

    def __post_init__(self) -> None:
        xy = np.array(self.xy, dtype=np.int64).reshape(-1, 2)
        xy.flags.writeable = False
        object.__setattr__(self, "xy", xy)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Roi):
            return NotImplemented
        same_z = self.z_position == other.z_position or (
            math.isnan(self.z_position) and math.isnan(other.z_position)
        )
        return (
            (self.sop_uid, self.inclusion) == (other.sop_uid, other.inclusion)
            and same_z
            and np.array_equal(self.xy, other.xy)
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class NoduleRead:
    """A nodule ≥ 3 mm as one reader outlined it; ``characteristics`` holds those present."""

    nodule_id: str
    characteristics: Mapping[str, int]
    rois: tuple[Roi, ...]


@dataclass(frozen=True)
class SmallNoduleRead:
    """A nodule < 3 mm: one point (x = column, y = row) on one slice, no characteristics."""

    nodule_id: str
    sop_uid: str
    z_position: float
    xy: tuple[int, int]


@dataclass(frozen=True)
class NonNoduleMark:
    """A ``nonNodule``: a lesion ≥ 3 mm the reader judged not a nodule, marked by a point."""

    non_nodule_id: str
    sop_uid: str
    z_position: float
    xy: tuple[int, int]


@dataclass(frozen=True)
class Unusable:
    """A mark left out, and why. ``reader`` is the session index; ``mark_id`` the XML id."""

    reader: int
    kind: MarkKind
    mark_id: str
    reason: str


@dataclass(frozen=True)
class ReadingSession:
    """One radiologist's reads. ``reader_id`` is the XML's servicingRadiologistID ("" if
    absent): an opaque code, which is why marks carry the session index instead."""

    reader_id: str
    nodules: tuple[NoduleRead, ...]
    small_nodules: tuple[SmallNoduleRead, ...]
    non_nodules: tuple[NonNoduleMark, ...]
    unusable: tuple[Unusable, ...] = ()


@dataclass(frozen=True)
class ReadMessage:
    """A parsed read message: the series it marks and one session per reader."""

    series_uid: str
    study_uid: str | None
    sessions: tuple[ReadingSession, ...]


# --- parsing --------------------------------------------------------------------------------


def _local(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2] if isinstance(element.tag, str) else ""


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child) == name]


def _text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child) == name:
            return (child.text or "").strip()
    return None


def _number(text: str | None) -> float:
    """A float from XML text (``-100.750000 ``); NaN when absent or not a number."""
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


def _pixel(element: ET.Element) -> tuple[int, int] | None:
    """``(x, y)`` from an ``edgeMap``/``locus``; None unless both are pixel indices (integers
    from 0 to 65534: Rows and Columns (0028,0010/0011) are 16-bit)."""
    x, y = _number(_text(element, "xCoord")), _number(_text(element, "yCoord"))
    if not all(math.isfinite(v) and v.is_integer() and 0 <= v < 65535 for v in (x, y)):
        return None
    return int(x), int(y)


def _characteristics(read: ET.Element) -> dict[str, int]:
    ratings: dict[str, int] = {}
    for block in _children(read, "characteristics"):
        for child in block:
            name, value = _local(child), _number(child.text)
            if name in CHARACTERISTICS and math.isfinite(value) and value.is_integer():
                ratings[name] = int(value)
    return ratings


def _roi(element: ET.Element) -> Roi | str:
    """One ``roi``, or the reason it is unusable."""
    sop_uid = _text(element, "imageSOP_UID")
    if not sop_uid:
        return "roi_sop_uid_missing"
    points = []
    for edge in _children(element, "edgeMap"):
        point = _pixel(edge)
        if point is None:
            return "roi_coordinate_invalid"
        points.append(point)
    if not points:
        return "roi_edge_map_empty"
    inclusion = (_text(element, "inclusion") or "TRUE").upper() != "FALSE"
    xy = np.asarray(points, dtype=np.int64)
    return Roi(sop_uid, _number(_text(element, "imageZposition")), inclusion, xy)


def _nodule(element: ET.Element) -> NoduleRead | SmallNoduleRead | str:
    nodule_id = _text(element, "noduleID") or ""
    rois: list[Roi] = []
    for roi_element in _children(element, "roi"):
        roi = _roi(roi_element)
        if isinstance(roi, str):
            return roi
        rois.append(roi)
    if not rois:
        return "nodule_without_roi"
    characteristics = _characteristics(element)
    if len(rois) == 1 and len(rois[0].xy) == 1 and not characteristics:
        roi = rois[0]
        x, y = (int(v) for v in roi.xy[0])
        return SmallNoduleRead(nodule_id, roi.sop_uid, roi.z_position, (x, y))
    return NoduleRead(nodule_id, characteristics, tuple(rois))


def _non_nodule(element: ET.Element) -> NonNoduleMark | str:
    sop_uid = _text(element, "imageSOP_UID")
    if not sop_uid:
        return "roi_sop_uid_missing"
    loci = _children(element, "locus")
    point = _pixel(loci[0]) if loci else None
    if point is None:
        return "locus_invalid"
    z = _number(_text(element, "imageZposition"))
    return NonNoduleMark(_text(element, "nonNoduleID") or "", sop_uid, z, point)


def _session(element: ET.Element, reader: int) -> ReadingSession:
    nodules: list[NoduleRead] = []
    small: list[SmallNoduleRead] = []
    non_nodules: list[NonNoduleMark] = []
    unusable: list[Unusable] = []
    for child in element:
        name = _local(child)
        if name == "unblindedReadNodule":
            read = _nodule(child)
            if isinstance(read, str):
                unusable.append(Unusable(reader, "nodule", _text(child, "noduleID") or "", read))
            elif isinstance(read, SmallNoduleRead):
                small.append(read)
            else:
                nodules.append(read)
        elif name == "nonNodule":
            mark = _non_nodule(child)
            if isinstance(mark, str):
                mark_id = _text(child, "nonNoduleID") or ""
                unusable.append(Unusable(reader, "non_nodule", mark_id, mark))
            else:
                non_nodules.append(mark)
    for problem in unusable:
        logger.warning("LIDC reader %d: %s mark left out: %s", reader, problem.kind, problem.reason)
    return ReadingSession(
        _text(element, "servicingRadiologistID") or "",
        tuple(nodules),
        tuple(small),
        tuple(non_nodules),
        tuple(unusable),
    )


def _header_uid(root: ET.Element, name: str) -> str | None:
    """A UID from the header, whatever its spelling (``SeriesInstanceUid``/``…UID``)."""
    headers = [child for child in root if _local(child).lower().endswith("header")]
    for header in headers or [root]:
        for element in header.iter():
            if _local(element).lower() == name and (element.text or "").strip():
                return (element.text or "").strip()
    return None


def _refusal_reason(data: bytes, exc: defusedxml.DefusedXmlException) -> str:
    """The most telling reason for refused XML: entities (billion laughs, XXE) over an
    external DTD over any DTD (defusedxml stops at the DOCTYPE, before either is read)."""
    if isinstance(exc, defusedxml.EntitiesForbidden) or b"<!ENTITY" in data:
        return "xml_entities_forbidden"
    external = isinstance(exc, defusedxml.ExternalReferenceForbidden)
    if external or (isinstance(exc, defusedxml.DTDForbidden) and (exc.sysid or exc.pubid)):
        return "xml_external_forbidden"
    return "xml_dtd_forbidden"


def _parse_xml(data: bytes) -> ET.Element:
    try:
        root: ET.Element = SafeET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DefusedXmlException as exc:
        raise ReadMessageError(
            _refusal_reason(data, exc),
            "The read message carries a DTD, entity declarations or external references, "
            "which are refused unread; LIDC read messages have none",
        ) from None
    except ET.ParseError as exc:
        raise ReadMessageError(
            "xml_malformed", f"The read message is not well-formed XML ({exc})"
        ) from None
    return root


def parse_read_message(data: bytes) -> ReadMessage:
    """Parse an LIDC read message (the bytes of e.g. ``071.xml``).

    Raises:
        ReadMessageError: with ``reason`` ``xml_entities_forbidden``,
            ``xml_external_forbidden`` or ``xml_dtd_forbidden`` (a DOCTYPE is refused before
            anything is expanded or fetched),
            ``xml_malformed``, ``not_lidc_xml`` (root is not ``LidcReadMessage`` in
            ``http://www.nih.gov``) or ``series_uid_missing``.
    """
    root = _parse_xml(data)
    if root.tag != f"{{{LIDC_NAMESPACE}}}{ROOT_ELEMENT}":
        raise ReadMessageError(
            "not_lidc_xml",
            f"Expected the root element {ROOT_ELEMENT} in namespace {LIDC_NAMESPACE}. "
            f"Received: {root.tag[:80]!r}",
        )
    series_uid = _header_uid(root, "seriesinstanceuid")
    if series_uid is None:
        raise ReadMessageError(
            "series_uid_missing",
            "The read message's ResponseHeader has no SeriesInstanceUid, so its marks "
            "cannot be matched to a series",
        )
    sessions = tuple(
        _session(element, reader)
        for reader, element in enumerate(_children(root, "readingSession"))
    )
    return ReadMessage(series_uid, _header_uid(root, "studyinstanceuid"), sessions)
