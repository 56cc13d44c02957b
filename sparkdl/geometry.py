"""Pure geometry of CT slices and volumes: slice normals, Hounsfield units, world ↔ voxel.

Conventions are those of :mod:`sparkdl.store.tables`: arrays are indexed ``(z, y, x)``;
``spacing`` is ``(z, y, x)`` mm; ``origin`` is the LPS position of the centre of voxel
``(0, 0, 0)``; ``direction`` is a row-major 3×3 matrix whose *columns* are the LPS unit
vectors of the x (column), y (row) and z (slice) index axes, so that::

    world_xyz = origin + direction @ (spacing_xyz * index_xyz)

DICOM's Image Orientation (Patient) (0020,0037) lists the *row* direction first (the
direction along a row, in which the column index x increases), then the *column*
direction (in which the row index y increases). Pixel Spacing (0028,0030) is the other way
round: the spacing between rows (y) first, then between columns (x).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

logger = logging.getLogger(__name__)

INT16_MIN = int(np.iinfo(np.int16).min)
INT16_MAX = int(np.iinfo(np.int16).max)

#: Points, vectors and matrices as they arrive: lists, tuples or arrays of numbers.
ArrayLike = Sequence[float] | npt.NDArray[Any]
#: Coordinates, directions and float HU.
Float64Array = npt.NDArray[np.float64]


def row_and_column_directions(iop: ArrayLike) -> tuple[Float64Array, Float64Array]:
    """Unit row (x) and column (y) directions from ImageOrientationPatient (0020,0037).

    Raises ``ValueError`` when the six values are not two non-zero, near-orthogonal vectors.
    """
    values = np.asarray(iop, dtype=np.float64).reshape(-1)
    if values.shape != (6,) or not np.all(np.isfinite(values)):
        raise ValueError(f"ImageOrientationPatient must be 6 finite numbers. Received: {iop!r}")
    row, col = values[:3], values[3:]
    row_norm, col_norm = np.linalg.norm(row), np.linalg.norm(col)
    if row_norm < 1e-6 or col_norm < 1e-6:
        raise ValueError(f"ImageOrientationPatient has a zero vector. Received: {iop!r}")
    row, col = row / row_norm, col / col_norm
    if abs(float(row @ col)) > 1e-3:
        raise ValueError(
            f"ImageOrientationPatient row and column directions are not orthogonal "
            f"(dot product {float(row @ col):.4g}). Received: {iop!r}"
        )
    return row, col


def slice_normal(iop: ArrayLike) -> Float64Array:
    """Unit normal of the image plane: row direction × column direction."""
    row, col = row_and_column_directions(iop)
    normal = np.cross(row, col)
    return normal / np.linalg.norm(normal)


def slice_position(ipp: ArrayLike, normal: Float64Array) -> float:
    """Projection of ImagePositionPatient (0020,0032) on the slice normal, in mm.

    This, not InstanceNumber, is the order of slices in space.
    """
    return float(np.asarray(ipp, dtype=np.float64) @ normal)


def direction_from_iop(iop: ArrayLike) -> Float64Array:
    """The 3×3 direction matrix (columns: x, y, z index axes) of a stack of these images.

    The slice axis is the normal, so the stack must be ordered by increasing
    :func:`slice_position`. The matrix is orthonormal with determinant +1.
    """
    row, col = row_and_column_directions(iop)
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    # Re-orthogonalise the column direction: IOP is written with limited precision.
    col = np.cross(normal, row)
    return np.column_stack([row, col, normal])


def to_hounsfield(
    pixels: npt.NDArray[Any],
    slope: float | None,
    intercept: float | None,
    dtype: type[np.floating[Any]] = np.float64,
) -> npt.NDArray[np.floating[Any]]:
    """Stored values → Hounsfield units: ``pixels * RescaleSlope + RescaleIntercept``.

    RescaleSlope (0028,1053) defaults to 1 and RescaleIntercept (0028,1052) to 0 when
    absent. Computed in float (``float64`` by default, which equals pydicom's
    ``apply_modality_lut``), never in the stored integer type, which would overflow.
    """
    slope = 1.0 if slope is None else float(slope)
    intercept = 0.0 if intercept is None else float(intercept)
    hu = np.asarray(pixels).astype(dtype)  # a new array: scaled in place
    hu *= dtype(slope)
    hu += dtype(intercept)
    return hu


def hu_to_int16(hu: npt.NDArray[Any]) -> tuple[npt.NDArray[np.int16], int]:
    """Round HU to the nearest integer and clip to int16; return the array and how many clipped.

    NaN (should not occur) counts as clipped and becomes the int16 minimum.
    """
    values = np.asarray(hu, dtype=np.float64)
    rounded = np.rint(values)
    nan = np.isnan(rounded)
    num_clipped = int(np.count_nonzero(nan | (rounded < INT16_MIN) | (rounded > INT16_MAX)))
    if nan.any():
        rounded = np.where(nan, INT16_MIN, rounded)
    return np.clip(rounded, INT16_MIN, INT16_MAX).astype(np.int16), num_clipped


def stored_to_int16_hu(
    pixels: npt.NDArray[Any], slope: float | None, intercept: float | None
) -> tuple[npt.NDArray[np.int16], int]:
    """Stored values → int16 HU and how many clipped: ``hu_to_int16(to_hounsfield(...))``.

    Integer pixels with a whole RescaleSlope and RescaleIntercept (nearly every CT: 1 and
    -1024) are computed in integer arithmetic, which gives the same values as the float path
    (every product and sum is exact in float64, and rounding an integer changes nothing) at
    about a fifth of the cost of a 512² slice. Anything else takes the float path.
    """
    pixels = np.asarray(pixels)
    whole = _whole_rescale(slope, intercept)
    work = None if whole is None else _exact_integer_type(pixels.dtype, *whole)
    if whole is None or work is None:
        return hu_to_int16(to_hounsfield(pixels, slope, intercept))
    whole_slope, whole_intercept = whole
    hu = pixels.astype(work)  # a new array: scaled in place
    if whole_slope != 1:
        hu *= whole_slope
    if whole_intercept:
        hu += whole_intercept
    if hu.size == 0 or (hu.min() >= INT16_MIN and hu.max() <= INT16_MAX):
        return hu.astype(np.int16), 0
    num_clipped = int(np.count_nonzero((hu < INT16_MIN) | (hu > INT16_MAX)))
    np.clip(hu, INT16_MIN, INT16_MAX, out=hu)
    return hu.astype(np.int16), num_clipped


def _whole_rescale(slope: float | None, intercept: float | None) -> tuple[int, int] | None:
    """RescaleSlope and RescaleIntercept (defaults 1 and 0) as integers, or None when either
    is fractional or not finite."""
    values = (
        1.0 if slope is None else float(slope),
        0.0 if intercept is None else float(intercept),
    )
    if not all(np.isfinite(v) and v.is_integer() for v in values):
        return None
    return int(values[0]), int(values[1])


def _exact_integer_type(
    dtype: np.dtype[Any], slope: int, intercept: int
) -> type[np.signedinteger[Any]] | None:
    """The signed integer type in which ``pixels * slope + intercept`` is exact for every
    value of ``dtype``, or None (float pixels, a range beyond int64)."""
    if dtype.kind not in "iu":
        return None
    info = np.iinfo(dtype)
    largest = max(abs(int(info.min)), int(info.max)) * abs(slope) + abs(intercept)
    for work in (np.int32, np.int64):
        if largest <= np.iinfo(work).max:
            return work
    return None


def _direction_matrix(direction: ArrayLike) -> Float64Array:
    return np.asarray(direction, dtype=np.float64).reshape(3, 3)


def voxel_to_world(
    index_zyx: ArrayLike,
    origin: ArrayLike,
    spacing_zyx: ArrayLike,
    direction: ArrayLike,
) -> Float64Array:
    """World LPS ``(x, y, z)`` mm of (possibly fractional) voxel indices ``(z, y, x)``.

    ``index_zyx`` may be one index (shape ``(3,)``) or many (shape ``(..., 3)``).
    """
    index = np.asarray(index_zyx, dtype=np.float64)
    spacing_xyz = np.asarray(spacing_zyx, dtype=np.float64)[::-1]
    scaled_xyz = index[..., ::-1] * spacing_xyz
    return np.asarray(origin, dtype=np.float64) + scaled_xyz @ _direction_matrix(direction).T


def world_to_voxel(
    xyz: ArrayLike,
    origin: ArrayLike,
    spacing_zyx: ArrayLike,
    direction: ArrayLike,
) -> Float64Array:
    """Fractional voxel indices ``(z, y, x)`` of world LPS points ``(x, y, z)`` mm.

    Inverts :func:`voxel_to_world` with the full direction matrix (solved, not transposed,
    so it stays exact for a matrix that is not perfectly orthonormal).
    """
    offset = np.asarray(xyz, dtype=np.float64) - np.asarray(origin, dtype=np.float64)
    matrix = _direction_matrix(direction)
    flat = offset.reshape(-1, 3)
    scaled_xyz = np.linalg.solve(matrix, flat.T).T
    index_xyz = scaled_xyz / np.asarray(spacing_zyx, dtype=np.float64)[::-1]
    return index_xyz[:, ::-1].reshape(offset.shape)


def is_inside(index_zyx: ArrayLike, shape: Sequence[int]) -> bool:
    """Whether a fractional voxel index lies within the volume's voxels (their outer faces)."""
    index = np.asarray(index_zyx, dtype=np.float64)
    upper = np.asarray(shape, dtype=np.float64) - 0.5
    return bool(np.all(index >= -0.5) and np.all(index <= upper))


def resample_stack(
    slice_hu: Callable[[int], npt.NDArray[np.floating[Any]]],
    positions_mm: Float64Array,
    shifts_px: Float64Array,
    step_mm: float,
    fill_hu: float,
) -> tuple[npt.NDArray[np.int16], int, int]:
    """Resample parallel slices onto a regular, orthogonal grid; return int16 HU and counts.

    ``slice_hu(k)`` returns slice ``k`` (ordered by position) as float HU. ``positions_mm[k]``
    is its distance along the normal from slice 0 (increasing). ``shifts_px[k]`` is
    ``(rows, columns)``: where the output grid's pixel (0, 0) falls in slice ``k``'s pixel
    index, i.e. how far slice ``k`` is sheared in-plane (gantry tilt); zero otherwise.

    Output slice ``m`` lies at ``m * step_mm`` along the normal. Because all slices are
    parallel, the world point of output voxel ``(m, i, j)`` projects onto the bracketing
    input slices at pixel ``(i, j) + shifts_px[k]``: it is sampled there bilinearly and the
    two samples are blended linearly along the normal. Points outside an input slice's
    field of view become ``fill_hu``. Returns ``(volume, num_clipped, num_filled)``.
    """
    positions = np.asarray(positions_mm, dtype=np.float64)
    shifts = np.asarray(shifts_px, dtype=np.float64)
    num_out = int(np.floor(positions[-1] / step_mm + 1e-6)) + 1
    cache: dict[int, npt.NDArray[np.float32]] = {}

    def shifted(k: int) -> npt.NDArray[np.float32]:
        if k not in cache:
            for old in [key for key in cache if key < k - 1]:
                del cache[old]
            hu = np.asarray(slice_hu(k), dtype=np.float32)
            if np.any(np.abs(shifts[k]) > 1e-3):
                # output[i, j] = hu[(i, j) + shift]  ⇔  ndimage.shift by -shift
                hu = ndimage.shift(hu, -shifts[k], order=1, mode="constant", cval=np.nan)
            cache[k] = hu
        return cache[k]

    first = shifted(0)
    volume = np.empty((num_out, *first.shape), dtype=np.int16)
    num_clipped = num_filled = 0
    for m in range(num_out):
        s = m * step_mm
        k = int(np.clip(np.searchsorted(positions, s, side="right") - 1, 0, len(positions) - 2))
        t = (s - positions[k]) / (positions[k + 1] - positions[k])
        if t <= 1e-6:
            plane = shifted(k)
        elif t >= 1 - 1e-6:
            plane = shifted(k + 1)
        else:
            plane = (1 - t) * shifted(k) + t * shifted(k + 1)
        outside = np.isnan(plane)
        if outside.any():
            num_filled += int(np.count_nonzero(outside))
            plane = np.where(outside, np.float32(fill_hu), plane)
        volume[m], clipped = hu_to_int16(plane)
        num_clipped += clipped
    return volume, num_clipped, num_filled


@dataclass(frozen=True)
class Geometry:
    """Where a volume's voxels lie in the patient: the world ↔ voxel map of one grid.

    ``spacing`` is ``(z, y, x)`` mm; ``origin`` the LPS ``(x, y, z)`` mm of voxel
    ``(0, 0, 0)``'s centre; ``direction`` the 3×3 matrix (row-major, 9 values accepted) whose
    columns are the LPS unit vectors of the x, y and z index axes, so that
    ``world_xyz = origin + direction @ (spacing_xyz * index_xyz)``. Used by assembly (DICOM),
    patches, the contact sheet, and any volume format that states the same three things.
    """

    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    def __post_init__(self) -> None:
        spacing = tuple(float(v) for v in np.asarray(self.spacing, dtype=np.float64).ravel())
        origin = tuple(float(v) for v in np.asarray(self.origin, dtype=np.float64).ravel())
        direction = tuple(float(v) for v in np.asarray(self.direction, dtype=np.float64).ravel())
        if len(spacing) != 3 or len(origin) != 3 or len(direction) != 9:
            raise ValueError(
                f"Geometry needs 3 spacings, 3 origin coordinates and a 3×3 "
                f"direction. Received: {len(spacing)}, {len(origin)}, "
                f"{len(direction)} values."
            )
        if not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise ValueError(f"Geometry spacing must be finite and > 0 mm. Received: {spacing}.")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)

    @classmethod
    def of(cls, volume: Any) -> Geometry:
        """The geometry of a volume row (mapping, Row or object with spacing/origin/direction)."""

        def get(name: str) -> Any:
            return volume[name] if isinstance(volume, Mapping) else getattr(volume, name)

        return cls(get("spacing"), get("origin"), get("direction"))

    def to_voxel(self, xyz: ArrayLike) -> Float64Array:
        """Fractional voxel index ``(z, y, x)`` of world point(s) ``(x, y, z)``, shape (..., 3)."""
        return world_to_voxel(xyz, self.origin, self.spacing, self.direction)

    def to_world(self, index_zyx: ArrayLike) -> Float64Array:
        """World LPS ``(x, y, z)`` mm of voxel index(es) ``(z, y, x)`` (shape ``(..., 3)``)."""
        return voxel_to_world(index_zyx, self.origin, self.spacing, self.direction)
