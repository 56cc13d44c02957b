"""Readers' marks in world coordinates: filled outlines, centroids and sizes in LPS mm.

A mark is placed through the slice its ROI names (imageSOP_UID → that slice's
ImagePositionPatient, ImageOrientationPatient and PixelSpacing), never through
imageZposition alone: a mark on a slice that is not in the series is left out with the
reason ``sop_uid_not_in_series``, one on a slice whose geometry is missing or unusable with
``slice_geometry_unusable``.

Pixel ``(row, column)`` of a slice lies at (DICOM PS3.3 C.7.6.2.1.1)::

    IPP + column * PixelSpacing[1] * IOP[0:3] + row * PixelSpacing[0] * IOP[3:6]

IOP's first triplet is the direction in which the column index grows (along a row);
PixelSpacing (0028,0030) lists the spacing between rows first. An edgeMap point is
``(xCoord, yCoord)`` = ``(column, row)``.

Outlines are filled the way the LIDC readers were told to draw them: the outline pixels lie
just outside the nodule, so a nodule is the pixels strictly inside its outline polygon,
without the outline itself (inclusion FALSE cuts such a region out). An outline too small
to enclose any pixel counts as its own pixels, so a drawn mark never vanishes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import numpy.typing as npt

from sparkdl.lidc.read_message import MarkKind, ReadMessage, Roi, Unusable

__all__ = ["MAX_OUTLINE_PIXELS", "Footprint", "Mark", "SliceGeometry", "read_marks"]

#: A set of voxels: ``(slice key, row, column)``.
Footprint = frozenset[tuple[str, int, int]]
#: The widest outline filled, pixels: LIDC nodules are ≤ 30 mm, CT images 512 pixels wide;
#: a wider outline is an error (or hostile), and filling it would cost its area squared.
MAX_OUTLINE_PIXELS = 1024


@dataclass(frozen=True)
class SliceGeometry:
    """Where one slice's pixels lie. ``position``: ImagePositionPatient (0020,0032);
    ``orientation``: ImageOrientationPatient (0020,0037); ``spacing``: PixelSpacing
    (0028,0030), row spacing then column spacing, mm; ``thickness``: the distance to the
    neighbouring slices, mm (the slice spacing, which a filled pixel's volume spans)."""

    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    spacing: tuple[float, float]
    thickness: float

    def __post_init__(self) -> None:
        values = {
            "position": (self.position, 3),
            "orientation": (self.orientation, 6),
            "spacing": (self.spacing, 2),
        }
        for name, (value, size) in values.items():
            floats = tuple(float(v) for v in np.asarray(value, dtype=np.float64).ravel())
            if len(floats) != size or not all(math.isfinite(v) for v in floats):
                raise ValueError(
                    f"SliceGeometry.{name} needs {size} finite numbers. Received: {value!r}"
                )
            object.__setattr__(self, name, floats)
        if min(self.spacing) <= 0 or not (math.isfinite(self.thickness) and self.thickness > 0):
            raise ValueError(
                f"SliceGeometry spacing and thickness must be > 0 mm. Received: "
                f"spacing={self.spacing}, thickness={self.thickness!r}"
            )
        object.__setattr__(self, "thickness", float(self.thickness))

    def to_world(self, rows: npt.ArrayLike, columns: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """LPS mm of pixel centres ``(row, column)``, shape ``(n, 3)``."""
        r = np.asarray(rows, dtype=np.float64).reshape(-1, 1)
        c = np.asarray(columns, dtype=np.float64).reshape(-1, 1)
        iop = np.asarray(self.orientation, dtype=np.float64)
        row_step = iop[:3] * self.spacing[1]  # one column to the right
        column_step = iop[3:] * self.spacing[0]  # one row down
        return np.asarray(self.position, dtype=np.float64) + c * row_step + r * column_step

    def to_pixel(self, xyz: npt.ArrayLike) -> tuple[float, float, float]:
        """Fractional ``(row, column)`` of a world point, and its distance (mm) from the plane
        along the normal row direction × column direction."""
        iop = np.asarray(self.orientation, dtype=np.float64)
        normal = np.cross(iop[:3], iop[3:])
        matrix = np.column_stack([iop[3:] * self.spacing[0], iop[:3] * self.spacing[1], normal])
        offset = np.asarray(xyz, dtype=np.float64) - np.asarray(self.position, dtype=np.float64)
        row, column, height = np.linalg.solve(matrix, offset)
        return float(row), float(column), float(height)

    @property
    def pixel_area(self) -> float:
        """mm² of one pixel."""
        return self.spacing[0] * self.spacing[1]


@dataclass(frozen=True)
class Mark:
    """One reader's mark in world space.

    ``reader`` is the session index in the read message (not the radiologist id).
    ``centre_lps`` is the centroid of the filled voxels (a point mark's pixel centre).
    ``diameter_mm`` is the volume-equivalent diameter ``(6V/π)^(1/3)`` of an outlined
    nodule, None for point marks (small nodules < 3 mm, non-nodules); ``volume_mm3``
    likewise. ``footprint`` holds the marked voxels, for overlap tests.
    """

    reader: int
    kind: MarkKind
    mark_id: str
    centre_lps: tuple[float, float, float]
    diameter_mm: float | None
    volume_mm3: float | None
    characteristics: Mapping[str, int]
    footprint: Footprint = field(repr=False)


def _polygon_interior(xy: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], ...]:
    """Rows and columns of the pixel centres strictly inside the closed polygon ``xy``
    (x = column, y = row), by the even-odd rule, without the polygon's own vertices.

    One scanline per pixel row: an edge crosses row y when y lies in its half-open span
    [min, max), so a vertex on the scanline counts once; a pixel centre is inside when an
    odd number of crossings lie strictly left of it and none exactly on it.
    """
    x = xy[:, 0].astype(np.float64)
    y = xy[:, 1].astype(np.float64)
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    low, high = np.minimum(y, y1), np.maximum(y, y1)
    columns = np.arange(int(x.min()), int(x.max()) + 1, dtype=np.float64)
    vertices = set(zip(xy[:, 1].tolist(), xy[:, 0].tolist()))
    found_rows: list[int] = []
    found_columns: list[int] = []
    for row in range(int(y.min()), int(y.max()) + 1):
        e = np.nonzero((row >= low) & (row < high))[0]
        at = np.sort(x[e] + (row - y[e]) * (x1[e] - x[e]) / (y1[e] - y[e]))
        left = np.searchsorted(at, columns, side="left")
        on_edge = np.searchsorted(at, columns, side="right") > left
        for column in columns[(left % 2 == 1) & ~on_edge].astype(np.int64).tolist():
            if (row, column) not in vertices:
                found_rows.append(row)
                found_columns.append(column)
    return np.asarray(found_rows, dtype=np.int64), np.asarray(found_columns, dtype=np.int64)


def _fill(rois: Iterable[Roi]) -> set[tuple[int, int]]:
    """The pixels ``(row, column)`` of one slice's ROIs: inclusions minus exclusions."""
    included: set[tuple[int, int]] = set()
    excluded: set[tuple[int, int]] = set()
    for roi in rois:
        rows, columns = _polygon_interior(roi.xy)
        pixels = set(zip(rows.tolist(), columns.tolist()))
        if not pixels and roi.inclusion:  # too small to enclose a pixel: the outline itself
            pixels = {(int(y), int(x)) for x, y in roi.xy.tolist()}
        (included if roi.inclusion else excluded).update(pixels)
    return included - excluded


def _outlined(
    rois: tuple[Roi, ...],
    slices: Mapping[str, SliceGeometry],
    uid: Callable[[str], str],
    unplaceable: frozenset[str],
) -> tuple[tuple[float, float, float], float, Footprint] | str:
    """Centroid, volume and footprint of an outlined nodule, or the reason it has none."""
    by_slice: dict[str, list[Roi]] = {}
    for roi in rois:
        by_slice.setdefault(uid(roi.sop_uid), []).append(roi)
    if any(key not in slices for key in by_slice):
        return _missing(by_slice, unplaceable)
    if any(np.ptp(roi.xy, axis=0).max() >= MAX_OUTLINE_PIXELS for roi in rois):
        return "outline_too_large"
    weighted = np.zeros(3)
    volume = 0.0
    footprint: set[tuple[str, int, int]] = set()
    for key in sorted(by_slice, key=lambda k: (slices[k].position, k)):  # key-independent sums
        pixels = _fill(by_slice[key])
        if not pixels:
            continue
        geometry = slices[key]
        rows, columns = np.asarray(sorted(pixels), dtype=np.int64).T
        voxel = geometry.pixel_area * geometry.thickness
        weighted += geometry.to_world(rows, columns).sum(axis=0) * voxel
        volume += len(pixels) * voxel
        footprint.update((key, r, c) for r, c in pixels)
    if volume <= 0:
        return "outline_encloses_nothing"
    centre = weighted / volume
    return (float(centre[0]), float(centre[1]), float(centre[2])), volume, frozenset(footprint)


def _point(
    reader: int,
    kind: MarkKind,
    mark_id: str,
    sop_uid: str,
    xy: tuple[int, int],
    slices: Mapping[str, SliceGeometry],
    uid: Callable[[str], str],
    unplaceable: frozenset[str],
) -> Mark | Unusable:
    """A single-point mark (a small nodule, a non-nodule) on its slice. Eight parameters: the
    pieces of one mark as they are read, for one call site."""
    key = uid(sop_uid)
    if key not in slices:
        return Unusable(reader, kind, mark_id, _missing([key], unplaceable))
    column, row = xy
    x, y, z = (float(v) for v in slices[key].to_world(row, column)[0])
    return Mark(reader, kind, mark_id, (x, y, z), None, None, {}, frozenset({(key, row, column)}))


def _missing(keys: Iterable[str], unplaceable: frozenset[str]) -> str:
    """Why a mark's slice has no geometry: it is in the series but its geometry is not usable
    (missing or degenerate ImagePositionPatient, ImageOrientationPatient, PixelSpacing), or
    it is not in the series at all."""
    if any(key in unplaceable for key in keys):
        return "slice_geometry_unusable"
    return "sop_uid_not_in_series"


def _identity(value: str) -> str:
    return value


def read_marks(
    message: ReadMessage,
    slices: Mapping[str, SliceGeometry],
    uid: Callable[[str], str] = _identity,
    unplaceable: frozenset[str] = frozenset(),
) -> tuple[list[Mark], list[Unusable]]:
    """Every reader's marks of ``message`` in world space, and the marks left out.

    ``slices`` maps a slice key to its geometry; ``uid`` maps an XML imageSOP_UID to that
    key (for de-identified slices: ``lambda u: remap_uid(key, u)``). The marks left out are
    those the parser already refused plus those whose slice is not in ``slices``
    (``sop_uid_not_in_series``; ``slice_geometry_unusable`` when it is among the keys of
    ``unplaceable``, slices of the series whose geometry could not be read), whose outline
    encloses nothing after the exclusions (``outline_encloses_nothing``) or spans
    :data:`MAX_OUTLINE_PIXELS` or more (``outline_too_large``).
    """
    marks: list[Mark] = []
    unusable: list[Unusable] = []
    for reader, session in enumerate(message.sessions):
        unusable.extend(session.unusable)
        for nodule in session.nodules:
            placed = _outlined(nodule.rois, slices, uid, unplaceable)
            if isinstance(placed, str):
                unusable.append(Unusable(reader, "nodule", nodule.nodule_id, placed))
                continue
            centre, volume, footprint = placed
            diameter = (6.0 * volume / math.pi) ** (1.0 / 3.0)
            characteristics = dict(nodule.characteristics)
            marks.append(
                Mark(
                    reader,
                    "nodule",
                    nodule.nodule_id,
                    centre,
                    diameter,
                    volume,
                    characteristics,
                    footprint,
                )
            )
        points = [(s.nodule_id, s.sop_uid, s.xy, "small_nodule") for s in session.small_nodules]
        points += [(n.non_nodule_id, n.sop_uid, n.xy, "non_nodule") for n in session.non_nodules]
        for mark_id, sop_uid, xy, kind in points:
            mark = _point(
                reader, cast(MarkKind, kind), mark_id, sop_uid, xy, slices, uid, unplaceable
            )
            if isinstance(mark, Mark):
                marks.append(mark)
            else:
                unusable.append(mark)
    return marks, unusable
