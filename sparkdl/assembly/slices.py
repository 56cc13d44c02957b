"""CT instances as slices: screened, grouped by geometry, ordered along the normal.

The first half of series assembly (:mod:`sparkdl.assembly.series`, steps 1 to 3 of its docstring):
:func:`screen` turns a record into a :class:`Slice` or the reason it cannot be one;
:func:`group_by_geometry` splits a series into groups that can share one grid;
:func:`order_and_dedupe` orders a group by position on the slice normal, never by
InstanceNumber, and finds duplicates and conflicting positions; :func:`split_by_acquisition`
separates two acquisitions at the same positions. Pure functions: tolerances are passed in
(they are :class:`~sparkdl.assembly.series.VolumeOptions` fields).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sparkdl import geometry


@dataclass
class Slice:
    """One usable instance: its record and parsed geometry."""

    sop_uid: str
    record: Mapping[str, Any]
    ipp: npt.NDArray[np.float64]
    row: npt.NDArray[np.float64]
    col: npt.NDArray[np.float64]
    pixel_spacing: npt.NDArray[np.float64]  # (row spacing y, column spacing x)
    frame_of_reference: str | None

    @property
    def pixels(self) -> npt.NDArray[Any]:
        return np.asarray(self.record["pixels"])

    def hu(self, dtype: type[np.floating[Any]] = np.float64) -> npt.NDArray[np.floating[Any]]:
        return geometry.to_hounsfield(
            self.pixels, self.record.get("RescaleSlope"), self.record.get("RescaleIntercept"), dtype
        )

    def hu_int16(self) -> tuple[npt.NDArray[np.int16], int]:
        """In int16 HU as a volume stores it (rounded, clipped), and how many voxels clipped."""
        return geometry.stored_to_int16_hu(
            self.pixels, self.record.get("RescaleSlope"), self.record.get("RescaleIntercept")
        )

    def describe(self) -> str:
        """Orientation, size and pixel spacing, for messages."""
        iop = ", ".join(f"{v:.4f}" for v in np.concatenate([self.row, self.col]))
        return (
            f"ImageOrientationPatient [{iop}], Rows×Columns {self.pixels.shape[0]}×"
            f"{self.pixels.shape[1]}, PixelSpacing {self.pixel_spacing.tolist()}"
        )


@dataclass(frozen=True)
class Ordered:
    """A group ordered along its normal: see :func:`order_and_dedupe`."""

    kept: list[Slice]
    positions: npt.NDArray[np.float64]  # of ``kept`` on the normal, mm, increasing
    duplicates: dict[str, str]  # sop_uid → detail
    num_conflicts: int


def screen(record: Mapping[str, Any]) -> Slice | tuple[str, str]:
    """A usable slice, or the (reason, detail) that excludes this instance."""
    frames = record.get("NumberOfFrames")
    if frames is not None and int(frames) > 1:
        return (
            "multiframe_unsupported",
            f"NumberOfFrames is {int(frames)}; only single-frame CT images are assembled",
        )
    image_type = record.get("ImageType") or []
    if isinstance(image_type, str):  # a multi-valued CS kept as its DICOM string
        image_type = image_type.split("\\")
    image_type = [str(v).strip().upper() for v in image_type]
    if "LOCALIZER" in image_type:
        return "localizer", "ImageType contains LOCALIZER"
    missing = [
        k
        for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
        if record.get(k) is None
    ]
    if missing:
        return "missing_geometry", "no " + ", ".join(missing)
    try:
        ipp = np.asarray(record["ImagePositionPatient"], dtype=np.float64).reshape(3)
        spacing = np.asarray(record["PixelSpacing"], dtype=np.float64).reshape(2)
        row, col = geometry.row_and_column_directions(record["ImageOrientationPatient"])
    except (ValueError, TypeError) as exc:
        return (
            "invalid_geometry",
            f"unusable ImagePositionPatient, ImageOrientationPatient "
            f"or PixelSpacing ({type(exc).__name__})",
        )
    if not np.all(np.isfinite(ipp)) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        return "invalid_geometry", "non-finite ImagePositionPatient or non-positive PixelSpacing"
    pixels: Any = record.get("pixels")  # an array, or anything a bad record holds
    if pixels is None or np.ndim(pixels) != 2:
        return "invalid_pixels", f"pixels must be a 2-D array; got ndim {np.ndim(pixels)}"
    shape = (record.get("Rows") or pixels.shape[0], record.get("Columns") or pixels.shape[1])
    if tuple(pixels.shape) != tuple(int(v) for v in shape):
        return "invalid_pixels", f"pixels shape {pixels.shape} is not Rows×Columns {shape}"
    return Slice(
        sop_uid=str(record.get("sop_uid")),
        record=record,
        ipp=ipp,
        row=row,
        col=col,
        pixel_spacing=spacing,
        frame_of_reference=record.get("frame_of_reference_uid"),
    )


def group_by_geometry(
    slices: list[Slice], spacing_tolerance_mm: float, orientation_tolerance: float
) -> list[list[Slice]]:
    """Greedy clusters of equal frame of reference, size, pixel spacing and orientation.

    Deterministic: ``slices`` arrive sorted by sop_uid and each joins the first group whose
    first member matches. Pixel spacings match when their difference accumulated across the
    image stays within ``spacing_tolerance_mm``.
    """
    groups: list[list[Slice]] = []
    for s in slices:
        for group in groups:
            ref = group[0]
            if (
                s.frame_of_reference == ref.frame_of_reference
                and s.pixels.shape == ref.pixels.shape
                and np.all(
                    np.abs(s.pixel_spacing - ref.pixel_spacing) * max(s.pixels.shape)
                    <= spacing_tolerance_mm
                )
                and np.all(np.abs(s.row - ref.row) <= orientation_tolerance)
                and np.all(np.abs(s.col - ref.col) <= orientation_tolerance)
            ):
                group.append(s)
                break
        else:
            groups.append([s])
    return groups


def order_and_dedupe(group: list[Slice], spacing_tolerance_mm: float) -> Ordered:
    """Sort by position on the normal; drop exact duplicates; count conflicting positions.

    Two slices share a position when their projections on the normal differ by at most
    ``spacing_tolerance_mm``; they are duplicates when their ImagePositionPatient and HU are
    also identical, and a conflict otherwise.
    """
    normal = geometry.slice_normal(np.concatenate([group[0].row, group[0].col]))
    ordered = sorted(group, key=lambda s: (geometry.slice_position(s.ipp, normal), s.sop_uid))
    kept: list[Slice] = []
    duplicates: dict[str, str] = {}
    conflicts = 0
    conflict_at: set[str] = set()
    for s in ordered:
        same = [
            k
            for k in kept[-1:]
            if abs(geometry.slice_position(s.ipp - k.ipp, normal)) <= spacing_tolerance_mm
        ]
        if not same:
            kept.append(s)
        elif np.linalg.norm(s.ipp - same[0].ipp) <= spacing_tolerance_mm and np.array_equal(
            s.hu(), same[0].hu()
        ):
            duplicates[s.sop_uid] = f"same position and pixels as {same[0].sop_uid}"
        elif same[0].sop_uid not in conflict_at:
            conflict_at.add(same[0].sop_uid)
            conflicts += 1
    positions = np.array([geometry.slice_position(s.ipp, normal) for s in kept])
    return Ordered(kept, positions, duplicates, conflicts)


def split_by_acquisition(group: list[Slice], spacing_tolerance_mm: float) -> list[list[Slice]]:
    """The group's acquisitions (by AcquisitionNumber) when that resolves conflicting positions.

    ``[group]`` when nothing conflicts, or when AcquisitionNumber is missing, single-valued,
    or does not separate the conflicts (the group is then excluded as duplicate_positions).
    """
    if order_and_dedupe(group, spacing_tolerance_mm).num_conflicts == 0:
        return [group]
    numbers: list[Any] = [s.record.get("AcquisitionNumber") for s in group]
    if any(n is None for n in numbers) or len(set(numbers)) < 2:
        return [group]
    parts = [[s for s, n in zip(group, numbers) if n == value] for value in sorted(set(numbers))]
    if any(order_and_dedupe(part, spacing_tolerance_mm).num_conflicts for part in parts):
        return [group]
    return parts
