"""One group of slices → an int16 HU stack on a regular grid, or the reason why not.

The second half of series assembly (:mod:`sparkdl.assembly.series`, steps 4 to 6 of its
docstring), on one candidate group of :class:`~sparkdl.assembly.slices.Slice`: order and dedupe it,
measure its spacing along the normal and its in-plane drift (gantry tilt), decide between
excluding and resampling, then build the array. Each step is a function of the previous
ones' results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sparkdl import geometry
from sparkdl.assembly.slices import Slice, order_and_dedupe

if TYPE_CHECKING:
    from sparkdl.assembly.options import VolumeOptions

#: HU written where a resampled (gantry-tilt) grid falls outside a slice's field of view.
AIR_HU = -1000.0


@dataclass(frozen=True)
class Excluded:
    """Why a candidate group makes no volume: a reason code and its detail."""

    reason: str
    detail: str


@dataclass(frozen=True)
class Built:
    """A stacked volume: int16 HU (z, y, x), its geometry and its warnings."""

    volume: npt.NDArray[np.int16]
    spacing: npt.NDArray[np.float64]  # (z, y, x) mm
    origin: npt.NDArray[np.float64]
    direction: npt.NDArray[np.float64]  # 3×3, columns: the x, y and z index axes
    warnings: list[dict[str, str]]


@dataclass(frozen=True)
class Stack:
    """What one candidate group became: its slices (the kept ones once ordered), the
    duplicates dropped on the way, and a volume or an exclusion."""

    slices: list[Slice]
    duplicates: dict[str, str]
    outcome: Built | Excluded


@dataclass(frozen=True)
class _Shear:
    """Where each slice lies relative to the first: along the normal, and in-plane."""

    along: npt.NDArray[np.float64]  # (n,) mm along the normal
    inplane: npt.NDArray[np.float64]  # (n, 3) the rest of the IPP step, mm
    drift: npt.NDArray[np.float64]  # (n,) its length
    sheared: bool  # a drift beyond the tolerances: gantry tilt
    tag_tilt: float  # the largest |GantryDetectorTilt| (0018,1120), degrees


@dataclass(frozen=True)
class _Spacing:
    """The output grid's step along the normal, and how the input slices are spaced."""

    step: float  # mm
    uneven: bool
    warnings: list[dict[str, str]]


def build_stack(group: list[Slice], options: VolumeOptions) -> Stack:
    """Order, check and stack one geometry group into int16 HU (or say why not)."""
    ordered = order_and_dedupe(group, options.spacing_tolerance_mm)
    if ordered.num_conflicts:
        detail = (
            f"{ordered.num_conflicts} positions hold slices with different pixels and "
            "AcquisitionNumber does not separate them"
        )
        return Stack(group, {}, Excluded("duplicate_positions", detail))
    kept, positions, duplicates = ordered.kept, ordered.positions, ordered.duplicates
    if len(kept) < options.min_slices:
        detail = f"{len(kept)} slices at distinct positions; min_slices is {options.min_slices}"
        return Stack(kept, duplicates, Excluded("too_few_slices", detail))
    direction = geometry.direction_from_iop(np.concatenate([group[0].row, group[0].col]))
    shear = _measure_shear(kept, direction[:, 2], options)
    spacing = _measure_spacing(kept, positions, options)
    if isinstance(spacing, Excluded):
        return Stack(kept, duplicates, spacing)
    refused = _refused(spacing, shear, positions, options)
    if refused is not None:
        return Stack(kept, duplicates, refused)
    warnings = []
    if duplicates:
        detail = f"{len(duplicates)} instances repeat another's position and pixels"
        warnings.append(warning("dropped_duplicate_slices", detail))
    warnings += spacing.warnings
    dy, dx = (float(v) for v in group[0].pixel_spacing)
    if shear.sheared or spacing.uneven:
        volume, origin, num_clipped, resampled = _resample(
            kept, positions, direction, (dy, dx), spacing, shear
        )
        warnings += resampled
    else:
        volume, num_clipped = _stack_hu(kept)
        origin = kept[0].ipp.copy()
    warnings += _checks(kept, shear, num_clipped)
    spacing_zyx = np.array([spacing.step, dy, dx], dtype=np.float64)
    return Stack(kept, duplicates, Built(volume, spacing_zyx, origin, direction, warnings))


def _measure_shear(
    kept: list[Slice], normal: npt.NDArray[np.float64], options: VolumeOptions
) -> _Shear:
    """Split each IPP step from the first slice into along-normal and in-plane parts."""
    relative = np.array([s.ipp - kept[0].ipp for s in kept])
    along = relative @ normal
    inplane = relative - np.outer(along, normal)
    tilt_tags = [
        abs(float(s.record["GantryDetectorTilt"]))
        for s in kept
        if s.record.get("GantryDetectorTilt") is not None
    ]
    drift = np.linalg.norm(inplane, axis=1)
    limit = options.spacing_tolerance_mm + options.orientation_tolerance * np.abs(along)
    sheared = bool(np.any(drift > limit))
    return _Shear(along, inplane, drift, sheared, max(tilt_tags, default=0.0))


def _measure_spacing(
    kept: list[Slice], positions: npt.NDArray[np.float64], options: VolumeOptions
) -> _Spacing | Excluded:
    """The z step (the median spacing when uneven), or ``missing_slices`` for a wide gap."""
    if len(kept) == 1:
        thickness = kept[0].record.get("SliceThickness")
        step = float(thickness) if thickness else 1.0
        detail = f"one slice: z spacing {step} mm taken from SliceThickness (or 1 mm)"
        return _Spacing(step, False, [warning("single_slice_spacing", detail)])
    diffs = np.diff(positions)
    nominal = float(np.median(diffs))
    tolerance = options.spacing_tolerance_at(nominal)
    if np.max(diffs) > options.max_gap_slices * nominal + tolerance:
        detail = (
            f"gap of {np.max(diffs):.3f} mm = {np.max(diffs) / nominal:.1f}× the "
            f"nominal {nominal:.3f} mm spacing; max_gap_slices is {options.max_gap_slices}"
        )
        return Excluded("missing_slices", detail)
    uneven = bool(np.any(np.abs(diffs - nominal) > tolerance))
    step = nominal if uneven else float((positions[-1] - positions[0]) / (len(kept) - 1))
    return _Spacing(step, uneven, [])


def _refused(
    spacing: _Spacing, shear: _Shear, positions: npt.NDArray[np.float64], options: VolumeOptions
) -> Excluded | None:
    """``gantry_tilt`` or ``uneven_spacing`` where ``on_tilt``/``on_uneven`` say exclude."""
    if (shear.sheared or shear.tag_tilt > 1e-3) and options.on_tilt == "exclude":
        detail = (
            f"in-plane drift up to {np.max(shear.drift):.3f} mm; GantryDetectorTilt "
            f"{shear.tag_tilt} deg; on_tilt is exclude"
        )
        return Excluded("gantry_tilt", detail)
    if spacing.uneven and options.on_uneven == "exclude":
        detail = (
            f"slice spacing {np.min(np.diff(positions)):.3f}–"
            f"{np.max(np.diff(positions)):.3f} mm; on_uneven is exclude"
        )
        return Excluded("uneven_spacing", detail)
    return None


def _resample(
    kept: list[Slice],
    positions: npt.NDArray[np.float64],
    direction: npt.NDArray[np.float64],
    pixel_spacing: tuple[float, float],
    spacing: _Spacing,
    shear: _Shear,
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.float64], int, list[dict[str, str]]]:
    """Resample onto a regular, orthogonal grid: ``(volume, origin, num_clipped, warnings)``.

    A sheared stack is shifted in-plane onto the mean in-plane position of its slices (the
    grid's origin moves there); uneven slices are interpolated at ``spacing.step``.
    """
    row, col = direction[:, 0], direction[:, 1]
    dy, dx = pixel_spacing
    u, v = shear.inplane @ row, shear.inplane @ col
    u_ref, v_ref = (float(u.mean()), float(v.mean())) if shear.sheared else (0.0, 0.0)
    shifts = np.column_stack([(v_ref - v) / dy, (u_ref - u) / dx])
    volume, num_clipped, num_filled = geometry.resample_stack(
        lambda k: kept[k].hu(np.float32), positions - positions[0], shifts, spacing.step, AIR_HU
    )
    origin = kept[0].ipp + u_ref * row + v_ref * col
    warnings = []
    if shear.sheared:
        angle = float(np.degrees(np.arctan2(shear.drift[-1], abs(shear.along[-1]))))
        detail = (
            f"slices shifted in-plane by up to {np.max(shear.drift):.3f} mm "
            f"(~{angle:.2f} deg tilt; GantryDetectorTilt {shear.tag_tilt} deg); "
            f"{num_filled} voxels outside the field of view set to {AIR_HU:g} HU"
        )
        warnings.append(warning("resampled_gantry_tilt", detail))
    if spacing.uneven:
        diffs = np.diff(positions)
        detail = (
            f"{len(kept)} slices spaced {np.min(diffs):.3f}–{np.max(diffs):.3f} mm "
            f"resampled to {volume.shape[0]} slices at {spacing.step:.3f} mm"
        )
        warnings.append(warning("resampled_uneven_spacing", detail))
    return volume, origin, num_clipped, warnings


def _stack_hu(kept: list[Slice]) -> tuple[npt.NDArray[np.int16], int]:
    """The slices as they are, in int16 HU, and how many voxels were clipped."""
    volume = np.empty((len(kept), *kept[0].pixels.shape), dtype=np.int16)
    num_clipped = 0
    for k, s in enumerate(kept):
        volume[k], clipped = s.hu_int16()
        num_clipped += clipped
    return volume, num_clipped


def _checks(kept: list[Slice], shear: _Shear, num_clipped: int) -> list[dict[str, str]]:
    """Warnings about a stacked volume: a tilt tag not seen in the IPPs, clipping, and
    InstanceNumber out of order."""
    warnings = []
    if shear.tag_tilt > 1e-3 and not shear.sheared:
        detail = (
            f"GantryDetectorTilt {shear.tag_tilt} deg but the slices are stacked along the "
            "normal of ImageOrientationPatient: geometry used as is"
        )
        warnings.append(warning("gantry_tilt_tag", detail))
    if num_clipped:
        detail = f"{num_clipped} voxels outside the int16 range were clipped"
        warnings.append(warning("hu_clipped", detail))
    numbers = [s.record.get("InstanceNumber") for s in kept]
    if len(kept) > 2 and None not in numbers:
        steps = np.diff(np.asarray(numbers, dtype=np.float64))
        if not (np.all(steps > 0) or np.all(steps < 0)):
            detail = "InstanceNumber is not monotonic along the normal; ordered by position"
            warnings.append(warning("instance_number_order", detail))
    return warnings


def warning(code: str, detail: str) -> dict[str, str]:
    """A volume warning as stored in ``volumes/``: a stable code and a detail."""
    return {"code": code, "detail": detail}
