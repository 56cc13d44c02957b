"""A synthetic LIDC read message for a synthetic series: readers' outlines of known spheres.

:func:`write_read_message` simulates 2–4 radiologists reading one series. Each reader who
sees a nodule outlines it on every slice its sphere crosses, the way LIDC readers drew:
the outline pixels are those just outside the nodule's cross-section (a disc), listed in
order around it. Readers disagree a little: each jitters the centre (σ 0.25 mm) and the
radius (σ 4 %). A nodule < 3 mm is a single point without characteristics. Ratings follow
the nodule's malignancy (1–5) with reader noise; margin, lobulation and spiculation worsen
with it. Everything is drawn from ``seed``, so the same call gives the same bytes.
"""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom

from sparkdl.lidc.marks import SliceGeometry
from sparkdl.lidc.sniff import LIDC_NAMESPACE

__all__ = ["SynthNodule", "read_message_for", "write_read_message"]

_CENTRE_SIGMA_MM = 0.25
_RADIUS_SIGMA = 0.04
_SMALL_NODULE_MM = 3.0


@dataclass(frozen=True)
class SynthNodule:
    """A nodule to read: centre (LPS mm), diameter (mm), malignancy (1–5), and how many of
    the readers mark it (``None``: all of them)."""

    centre_lps: tuple[float, float, float]
    diameter_mm: float
    malignancy: int
    num_readers: int | None = None


def _ns(tag: str) -> str:
    return f"{{{LIDC_NAMESPACE}}}{tag}"


def _add(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, _ns(tag))
    if text is not None:
        element.text = text
    return element


def _outline(
    geometry: SliceGeometry, centre: npt.NDArray[np.float64], radius: float
) -> list[tuple[int, int]]:
    """``(x, y)`` outline pixels of a sphere's cross-section on one slice, in angular order;
    empty when the disc holds no pixel centre."""
    row_c, col_c, height = geometry.to_pixel(centre)
    if abs(height) >= radius:
        return []
    rho = math.sqrt(radius**2 - height**2)
    spacing_r, spacing_c = geometry.spacing
    half_r, half_c = int(rho / spacing_r) + 2, int(rho / spacing_c) + 2
    rows = np.arange(round(row_c) - half_r, round(row_c) + half_r + 1)
    cols = np.arange(round(col_c) - half_c, round(col_c) + half_c + 1)
    dr = (rows[:, None] - row_c) * spacing_r
    dc = (cols[None, :] - col_c) * spacing_c
    disc = dr**2 + dc**2 < rho**2
    if not disc.any():
        return []
    padded = np.pad(disc, 1)
    near = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    ring_r, ring_c = np.nonzero(near & ~disc)
    angle = np.arctan2(dr[ring_r, 0], dc[0, ring_c])
    order = np.lexsort((ring_c, ring_r, angle))
    return [(int(cols[ring_c[k]]), int(rows[ring_r[k]])) for k in order]


def _ratings(rng: np.random.Generator, nodule: SynthNodule) -> dict[str, int]:
    def rate(mean: float, sigma: float, high: int = 5) -> int:
        return int(np.clip(round(mean + rng.normal(0.0, sigma)), 1, high))

    grade = (nodule.malignancy - 1) / 4.0  # 0 benign-looking … 1 suspicious
    return {
        "subtlety": rate(3.0 + nodule.diameter_mm / 10.0, 0.8),
        "internalStructure": 1,
        "calcification": 6,
        "sphericity": rate(4.0, 0.8),
        "margin": rate(4.5 - 3.0 * grade, 0.6),
        "lobulation": rate(1.3 + 2.5 * grade, 0.6),
        "spiculation": rate(1.2 + 2.5 * grade, 0.6),
        "texture": 5,
        "malignancy": rate(float(nodule.malignancy), 0.5),
    }


def _read_nodule(
    session: ET.Element,
    rng: np.random.Generator,
    nodule: SynthNodule,
    number: int,
    slices: Mapping[str, SliceGeometry],
) -> None:
    centre = np.asarray(nodule.centre_lps, dtype=np.float64)
    centre = centre + rng.normal(0.0, _CENTRE_SIGMA_MM, size=3)
    radius = nodule.diameter_mm / 2.0 * float(np.clip(rng.normal(1.0, _RADIUS_SIGMA), 0.9, 1.1))
    read = _add(session, "unblindedReadNodule")
    _add(read, "noduleID", f"Nodule {number:03d}")
    if nodule.diameter_mm < _SMALL_NODULE_MM:
        heights = {uid: abs(g.to_pixel(centre)[2]) for uid, g in slices.items()}
        uid = min(sorted(heights), key=heights.__getitem__)
        row, col, _ = slices[uid].to_pixel(centre)
        _add_roi(read, uid, slices[uid], [(round(col), round(row))])
        return
    characteristics = _add(read, "characteristics")
    for name, value in _ratings(rng, nodule).items():
        _add(characteristics, name, str(value))
    for uid in sorted(slices, key=lambda u: slices[u].position[2]):
        points = _outline(slices[uid], centre, radius)
        if points:
            _add_roi(read, uid, slices[uid], points)


def _add_roi(
    read: ET.Element, uid: str, geometry: SliceGeometry, points: list[tuple[int, int]]
) -> None:
    roi = _add(read, "roi")
    _add(roi, "imageZposition", f"{geometry.position[2]:.6f}")
    _add(roi, "imageSOP_UID", uid)
    _add(roi, "inclusion", "TRUE")
    for x, y in points:
        edge = _add(roi, "edgeMap")
        _add(edge, "xCoord", str(x))
        _add(edge, "yCoord", str(y))


def write_read_message(
    series_uid: str,
    study_uid: str,
    slices: Mapping[str, SliceGeometry],
    nodules: Sequence[SynthNodule],
    *,
    num_readers: int | None = None,
    seed: int = 0,
) -> bytes:
    """The bytes of an LIDC read message for one series.

    ``slices`` maps each SOPInstanceUID of the series to its geometry. ``num_readers``
    (1–4) defaults to 2–4 drawn from ``seed``; a nodule with ``num_readers`` set is read by
    that many of them (which ones is drawn too).
    """
    rng = np.random.default_rng([seed, 0x11DC])
    readers = int(rng.integers(2, 5)) if num_readers is None else num_readers
    if not 1 <= readers <= 4:
        raise ValueError(f"num_readers must be 1–4 (LIDC had 4 readers). Received: {readers}")
    seen_by = [
        set(
            rng.permutation(readers)[: readers if n.num_readers is None else n.num_readers].tolist()
        )
        for n in nodules
    ]
    root = ET.Element(_ns("LidcReadMessage"))
    header = _add(root, "ResponseHeader")
    _add(header, "Version", "1.8.1")
    _add(header, "TaskDescription", "Second unblinded read")
    _add(header, "SeriesInstanceUid", series_uid)
    _add(header, "StudyInstanceUID", study_uid)
    for reader in range(readers):
        session = _add(root, "readingSession")
        _add(session, "annotationVersion", "3.12")
        _add(session, "servicingRadiologistID", str(int(rng.integers(10**8, 10**9))))
        for number, nodule in enumerate(nodules, start=1):
            if reader in seen_by[number - 1]:
                _read_nodule(session, rng, nodule, number, slices)
    data: bytes = ET.tostring(
        root, encoding="utf-8", xml_declaration=True, default_namespace=LIDC_NAMESPACE
    )
    return data


def read_message_for(files: Sequence[bytes], nodules: Sequence[Any], seed: int) -> bytes:
    """The read message of one synthetic series, from its Part 10 files and the phantom's
    nodules (``center``, ``diameter_mm``, ``malignant``): 5 when malignant, else 1."""
    slices: dict[str, SliceGeometry] = {}
    study_uid = series_uid = ""
    positions = []
    for data in files:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        series_uid, study_uid = str(ds.SeriesInstanceUID), str(ds.StudyInstanceUID)
        positions.append((str(ds.SOPInstanceUID), ds))
    iop = np.asarray(positions[0][1].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    along = np.sort([float(np.dot(normal, ds.ImagePositionPatient)) for _, ds in positions])
    spacing = float(np.median(np.diff(along))) if len(along) > 1 else 1.0
    for sop_uid, ds in positions:
        slices[sop_uid] = SliceGeometry(
            tuple(float(v) for v in ds.ImagePositionPatient),  # type: ignore[arg-type]
            tuple(float(v) for v in ds.ImageOrientationPatient),  # type: ignore[arg-type]
            tuple(float(v) for v in ds.PixelSpacing),  # type: ignore[arg-type]
            spacing,
        )
    reads = [
        SynthNodule(tuple(n.center), float(n.diameter_mm), 5 if n.malignant else 1) for n in nodules
    ]
    return write_read_message(series_uid, study_uid, slices, reads, seed=seed)
