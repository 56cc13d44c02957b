"""CT series → Hounsfield volumes on a regular grid, or exclusions with a reason.

:func:`assemble_series` takes the records of every instance of one series (de-identified
header fields plus ``pixels``) and returns the volumes it makes and one
:class:`InstanceOutcome` per instance, so no instance disappears without a reason.

What happens, in order (see DESIGN.md, "Geometry"):

1. Instances that cannot be slices of a volume are excluded: ``multiframe_unsupported``
   (NumberOfFrames > 1; enhanced multi-frame CT is not assembled yet), ``localizer``
   (ImageType contains LOCALIZER), ``missing_geometry`` (no ImagePositionPatient,
   ImageOrientationPatient or PixelSpacing), ``invalid_geometry`` (those values are not
   usable), ``invalid_pixels`` (pixels missing, not 2-D or not Rows×Columns).
2. The rest is split into groups of one FrameOfReferenceUID, orientation (within
   ``orientation_tolerance``), Rows×Columns and PixelSpacing. Each group is a candidate
   volume; when there are several, each carries a ``split_mixed_geometry`` warning.
3. Slices are ordered by the projection of ImagePositionPatient on the slice normal, never
   by InstanceNumber. Slices at the same position with the same pixels are duplicates: one
   is kept (``dropped_duplicate_slices``), the others are excluded as ``duplicate_instance``.
   Different pixels at one position are two acquisitions in one series: when
   AcquisitionNumber separates them into conflict-free stacks, each becomes its own
   candidate volume (``split_by_acquisition``); otherwise the group is excluded as
   ``duplicate_positions`` (there is no right slice to pick).
4. ``too_few_slices`` below ``min_slices``. A gap wider than ``max_gap_slices`` nominal
   (median) spacings is ``missing_slices``: interpolating across it would invent anatomy.
5. Uneven spacing → linear interpolation along the normal at the median spacing
   (``resampled_uneven_spacing``) or ``uneven_spacing`` per ``on_uneven``. Gantry tilt
   (IPP steps not parallel to the normal: the stack is sheared) → each slice is shifted
   in-plane onto one grid, so each output voxel is sampled at its own world position
   (``resampled_gantry_tilt``), or ``gantry_tilt`` per ``on_tilt``. A non-zero
   GantryDetectorTilt (0018,1120) whose stack is not sheared needs no resampling: the
   tilt is already in ImageOrientationPatient (``gantry_tilt_tag`` warning).
6. HU = stored × RescaleSlope + RescaleIntercept in float, per instance, then int16;
   clipped voxels are counted (``hu_clipped``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sparkdl import config, geometry
from sparkdl.errors import InputError

logger = logging.getLogger(__name__)

_MODES = ("resample", "exclude")
#: HU written where a resampled (gantry-tilt) grid falls outside a slice's field of view.
AIR_HU = -1000.0


@dataclass(frozen=True)
class VolumeOptions:
    """How series become volumes. Validates itself; :meth:`from_mapping` reads config.

    ``min_slices`` defaults to 16: fewer than any volumetric chest CT (even 10 mm slices
    over a 30 cm chest give ~30), more than the non-volumetric sets that share a series
    with one (localizers, key images, a few test slices).
    ``max_gap_slices`` defaults to 2.0: one missing slice is interpolated (with a
    warning), two or more are not.
    """

    min_slices: int = 16
    spacing_tolerance: float = 0.01
    spacing_tolerance_mm: float = 0.05
    on_uneven: Literal["resample", "exclude"] = "resample"
    on_tilt: Literal["resample", "exclude"] = "resample"
    max_gap_slices: float = 2.0
    orientation_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        # Ranges only: config.from_mapping checks the types. Written so NaN fails too.
        config.check_ranges(
            self,
            [
                ("min_slices", self.min_slices >= 1, "an integer >= 1"),
                ("spacing_tolerance", 0 <= self.spacing_tolerance < 1, "a number in [0, 1)"),
                ("spacing_tolerance_mm", 0 <= self.spacing_tolerance_mm < 1, "a number in [0, 1)"),
                (
                    "orientation_tolerance",
                    0 <= self.orientation_tolerance < 1,
                    "a number in [0, 1)",
                ),
                ("max_gap_slices", 1 <= self.max_gap_slices < math.inf, "a finite number >= 1"),
                ("on_uneven", self.on_uneven in _MODES, "one of " + ", ".join(_MODES)),
                ("on_tilt", self.on_tilt in _MODES, "one of " + ", ".join(_MODES)),
            ],
        )

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None, *, where: str = "volumes"
    ) -> VolumeOptions:
        """Options from a config section (e.g. the ``volumes:`` block of the YAML file)."""
        return config.from_mapping(cls, values, where=where)

    def spacing_tolerance_at(self, spacing_mm: float) -> float:
        """Allowed deviation (mm) from a nominal spacing."""
        return max(self.spacing_tolerance * spacing_mm, self.spacing_tolerance_mm)


@dataclass(frozen=True)
class InstanceOutcome:
    """What became of one instance: in a volume, or excluded with a stable reason code."""

    status: str  # "volume" | "excluded"
    volume_id: str | None = None
    reason: str | None = None
    detail: str = ""


@dataclass
class AssembledVolume:
    """One volume: int16 HU indexed (z, y, x), geometry as in :mod:`sparkdl.schemas`."""

    volume_id: str
    series_uid: str
    study_uid: str
    patient_id: str
    volume: npt.NDArray[np.int16]
    spacing: npt.NDArray[np.float64]
    origin: npt.NDArray[np.float64]
    direction: npt.NDArray[np.float64]
    warnings: list[dict[str, str]] = field(default_factory=list)
    sop_uids: list[str] = field(default_factory=list)

    def to_row(self) -> dict[str, Any]:
        """The row for ``sparkdl.schemas.VolumeSchema`` (warnings as a JSON string)."""
        return {
            "series_uid": self.series_uid,
            "patient_id": self.patient_id,
            "study_uid": self.study_uid,
            "volume_id": self.volume_id,
            "volume": np.ascontiguousarray(self.volume, dtype=np.int16),
            "spacing": np.asarray(self.spacing, dtype=np.float64),
            "origin": np.asarray(self.origin, dtype=np.float64),
            "direction": np.asarray(self.direction, dtype=np.float64).reshape(9),
            "num_slices": int(self.volume.shape[0]),
            "warnings": json.dumps(self.warnings),
        }


@dataclass
class AssemblyResult:
    volumes: list[AssembledVolume]
    instances: dict[str, InstanceOutcome]


def assemble_series(
    records: Sequence[Mapping[str, Any]], options: VolumeOptions | None = None
) -> AssemblyResult:
    """Assemble the instances of one series into volumes; every instance gets an outcome."""
    options = options or VolumeOptions()
    result = AssemblyResult(volumes=[], instances={})
    if not records:
        return result
    series_uids = {str(r.get("series_uid")) for r in records}
    if len(series_uids) != 1:
        raise InputError(
            f"assemble_series takes the records of one series; received "
            f"{len(series_uids)} series_uid values. Group the records by series_uid first."
        )
    series_uid = series_uids.pop()
    slices: list[_Slice] = []
    for record in sorted(records, key=lambda r: str(r.get("sop_uid"))):
        slice_or_reason = _screen(record)
        if isinstance(slice_or_reason, _Slice):
            slices.append(slice_or_reason)
        else:
            reason, detail = slice_or_reason
            result.instances[str(record.get("sop_uid"))] = InstanceOutcome(
                "excluded", reason=reason, detail=detail
            )

    groups = _group_by_geometry(slices, options)
    candidates: list[tuple[list[_Slice], list[dict[str, str]]]] = []
    for group in groups:
        notes = []
        if len(groups) > 1:
            notes.append(
                _warning(
                    "split_mixed_geometry",
                    f"series holds {len(groups)} geometry groups; this one: {_describe(group[0])}",
                )
            )
        candidates.extend(_split_by_acquisition(group, notes, options))
    candidates.sort(key=lambda c: (-len(c[0]), min(s.sop_uid for s in c[0])))

    for group, notes in candidates:
        volume_id = f"{series_uid}.{len(result.volumes)}"
        built = _build_stack(group, options)
        for sop_uid, detail in built.duplicates.items():
            result.instances[sop_uid] = InstanceOutcome(
                "excluded", reason="duplicate_instance", detail=detail
            )
        if built.reason is not None:
            logger.warning(
                "series %s: %d instances excluded: %s", series_uid, len(built.slices), built.reason
            )
            for s in built.slices:
                result.instances[s.sop_uid] = InstanceOutcome(
                    "excluded", reason=built.reason, detail=built.detail
                )
            continue
        first = group[0].record
        assert built.volume is not None and built.spacing is not None
        assert built.origin is not None and built.direction is not None
        volume = AssembledVolume(
            volume_id=volume_id,
            series_uid=series_uid,
            study_uid=str(first.get("study_uid")),
            patient_id=str(first.get("patient_id")),
            volume=built.volume,
            spacing=built.spacing,
            origin=built.origin,
            direction=built.direction.reshape(9),
            warnings=notes + built.warnings,
            sop_uids=[s.sop_uid for s in built.slices],
        )
        if volume.warnings:
            logger.warning(
                "volume %s: %s", volume_id, ", ".join(w["code"] for w in volume.warnings)
            )
        result.volumes.append(volume)
        for s in built.slices:
            result.instances[s.sop_uid] = InstanceOutcome("volume", volume_id=volume_id)
    return result


@dataclass
class _Slice:
    """One usable instance: its record and parsed geometry (internal)."""

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


@dataclass
class _Stack:
    """What :func:`_build_stack` made of one candidate group (internal)."""

    slices: list[_Slice]
    duplicates: dict[str, str] = field(default_factory=dict)
    reason: str | None = None
    detail: str = ""
    volume: npt.NDArray[np.int16] | None = None
    spacing: npt.NDArray[np.float64] | None = None
    origin: npt.NDArray[np.float64] | None = None
    direction: npt.NDArray[np.float64] | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)


def _build_stack(group: list[_Slice], options: VolumeOptions) -> _Stack:
    """Order, check and stack one geometry group into int16 HU (or say why not)."""
    direction = geometry.direction_from_iop(np.concatenate([group[0].row, group[0].col]))
    row, col, normal = direction[:, 0], direction[:, 1], direction[:, 2]
    kept, positions, duplicates, conflicts = _order_and_dedupe(group, options)
    if conflicts:
        return _Stack(
            group,
            reason="duplicate_positions",
            detail=f"{conflicts} positions "
            "hold slices with different pixels and AcquisitionNumber does not "
            "separate them",
        )
    stack = _Stack(kept, duplicates=duplicates)
    if duplicates:
        stack.warnings.append(
            _warning(
                "dropped_duplicate_slices",
                f"{len(duplicates)} instances repeat another's position and pixels",
            )
        )
    if len(kept) < options.min_slices:
        stack.reason = "too_few_slices"
        stack.detail = (
            f"{len(kept)} slices at distinct positions; min_slices is {options.min_slices}"
        )
        return stack
    dy, dx = (float(v) for v in group[0].pixel_spacing)
    ipp0 = kept[0].ipp
    relative = np.array([s.ipp - ipp0 for s in kept])
    along = relative @ normal
    inplane = relative - np.outer(along, normal)
    tilt_tags = [
        abs(float(s.record["GantryDetectorTilt"]))
        for s in kept
        if s.record.get("GantryDetectorTilt") is not None
    ]
    tag_tilt = max(tilt_tags, default=0.0)
    drift = np.linalg.norm(inplane, axis=1)
    sheared = bool(
        np.any(drift > options.spacing_tolerance_mm + options.orientation_tolerance * np.abs(along))
    )
    if len(kept) == 1:
        thickness = kept[0].record.get("SliceThickness")
        step = float(thickness) if thickness else 1.0
        stack.warnings.append(
            _warning(
                "single_slice_spacing",
                f"one slice: z spacing {step} mm taken from SliceThickness (or 1 mm)",
            )
        )
        uneven = False
    else:
        diffs = np.diff(positions)
        nominal = float(np.median(diffs))
        tolerance = options.spacing_tolerance_at(nominal)
        if np.max(diffs) > options.max_gap_slices * nominal + tolerance:
            stack.reason = "missing_slices"
            stack.detail = (
                f"gap of {np.max(diffs):.3f} mm = {np.max(diffs) / nominal:.1f}× the "
                f"nominal {nominal:.3f} mm spacing; max_gap_slices is {options.max_gap_slices}"
            )
            return stack
        uneven = bool(np.any(np.abs(diffs - nominal) > tolerance))
        step = nominal if uneven else float((positions[-1] - positions[0]) / (len(kept) - 1))
    if (sheared or tag_tilt > 1e-3) and options.on_tilt == "exclude":
        stack.reason = "gantry_tilt"
        stack.detail = (
            f"in-plane drift up to {np.max(drift):.3f} mm; GantryDetectorTilt "
            f"{tag_tilt} deg; on_tilt is exclude"
        )
        return stack
    if uneven and options.on_uneven == "exclude":
        stack.reason = "uneven_spacing"
        stack.detail = (
            f"slice spacing {np.min(np.diff(positions)):.3f}–"
            f"{np.max(np.diff(positions)):.3f} mm; on_uneven is exclude"
        )
        return stack

    origin = ipp0.copy()
    if sheared or uneven:
        u, v = inplane @ row, inplane @ col
        u_ref, v_ref = (float(u.mean()), float(v.mean())) if sheared else (0.0, 0.0)
        shifts = np.column_stack([(v_ref - v) / dy, (u_ref - u) / dx])
        volume, num_clipped, num_filled = geometry.resample_stack(
            lambda k: kept[k].hu(np.float32), positions - positions[0], shifts, step, AIR_HU
        )
        origin = ipp0 + u_ref * row + v_ref * col
        if sheared:
            angle = float(np.degrees(np.arctan2(drift[-1], abs(along[-1]))))
            stack.warnings.append(
                _warning(
                    "resampled_gantry_tilt",
                    (
                        f"slices shifted in-plane by up to {np.max(drift):.3f} mm (~{angle:.2f} deg "
                        f"tilt; GantryDetectorTilt {tag_tilt} deg); {num_filled} voxels outside "
                        f"the field of view set to {AIR_HU:g} HU"
                    ),
                )
            )
        if uneven:
            diffs = np.diff(positions)
            stack.warnings.append(
                _warning(
                    "resampled_uneven_spacing",
                    (
                        f"{len(kept)} slices spaced {np.min(diffs):.3f}–{np.max(diffs):.3f} mm "
                        f"resampled to {volume.shape[0]} slices at {step:.3f} mm"
                    ),
                )
            )
    else:
        volume = np.empty((len(kept), *kept[0].pixels.shape), dtype=np.int16)
        num_clipped = 0
        for k, s in enumerate(kept):
            volume[k], clipped = geometry.hu_to_int16(s.hu())
            num_clipped += clipped
    if tag_tilt > 1e-3 and not sheared:
        stack.warnings.append(
            _warning(
                "gantry_tilt_tag",
                (
                    f"GantryDetectorTilt {tag_tilt} deg but the slices are stacked along the normal "
                    "of ImageOrientationPatient: geometry used as is"
                ),
            )
        )
    if num_clipped:
        stack.warnings.append(
            _warning("hu_clipped", f"{num_clipped} voxels outside the int16 range were clipped")
        )
    numbers = [s.record.get("InstanceNumber") for s in kept]
    if len(kept) > 2 and None not in numbers:
        steps = np.diff(np.asarray(numbers, dtype=np.float64))
        if not (np.all(steps > 0) or np.all(steps < 0)):
            stack.warnings.append(
                _warning(
                    "instance_number_order",
                    "InstanceNumber is not monotonic along the normal; ordered by position",
                )
            )
    stack.volume = volume
    stack.spacing = np.array([step, dy, dx], dtype=np.float64)
    stack.origin = origin
    stack.direction = direction
    return stack


def _order_and_dedupe(
    group: list[_Slice], options: VolumeOptions
) -> tuple[list[_Slice], npt.NDArray[np.float64], dict[str, str], int]:
    """Sort by position on the normal; drop exact duplicates; count conflicting positions.

    Returns ``(kept, positions, duplicates {sop_uid: detail}, num_conflicts)``. Two slices
    share a position when their projections on the normal differ by at most
    ``spacing_tolerance_mm``; they are duplicates when their ImagePositionPatient and HU are
    also identical, and a conflict otherwise.
    """
    normal = geometry.slice_normal(np.concatenate([group[0].row, group[0].col]))
    ordered = sorted(group, key=lambda s: (geometry.slice_position(s.ipp, normal), s.sop_uid))
    kept: list[_Slice] = []
    duplicates: dict[str, str] = {}
    conflicts = 0
    conflict_at: set[str] = set()
    for s in ordered:
        same = [
            k
            for k in kept[-1:]
            if abs(geometry.slice_position(s.ipp - k.ipp, normal)) <= options.spacing_tolerance_mm
        ]
        if not same:
            kept.append(s)
        elif np.linalg.norm(s.ipp - same[0].ipp) <= options.spacing_tolerance_mm and np.array_equal(
            s.hu(), same[0].hu()
        ):
            duplicates[s.sop_uid] = f"same position and pixels as {same[0].sop_uid}"
        elif same[0].sop_uid not in conflict_at:
            conflict_at.add(same[0].sop_uid)
            conflicts += 1
    positions = np.array([geometry.slice_position(s.ipp, normal) for s in kept])
    return kept, positions, duplicates, conflicts


def _screen(record: Mapping[str, Any]) -> _Slice | tuple[str, str]:
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
    pixels = record.get("pixels")
    if pixels is None or np.ndim(pixels) != 2:
        return "invalid_pixels", f"pixels must be a 2-D array; got ndim {np.ndim(pixels)}"
    shape = (record.get("Rows") or pixels.shape[0], record.get("Columns") or pixels.shape[1])
    if tuple(pixels.shape) != tuple(int(v) for v in shape):
        return "invalid_pixels", f"pixels shape {pixels.shape} is not Rows×Columns {shape}"
    return _Slice(
        sop_uid=str(record.get("sop_uid")),
        record=record,
        ipp=ipp,
        row=row,
        col=col,
        pixel_spacing=spacing,
        frame_of_reference=record.get("frame_of_reference_uid"),
    )


def _group_by_geometry(slices: list[_Slice], options: VolumeOptions) -> list[list[_Slice]]:
    """Greedy clusters of equal frame of reference, size, pixel spacing and orientation.

    Deterministic: ``slices`` arrive sorted by sop_uid and each joins the first group whose
    first member matches. Pixel spacings match when their difference accumulated across the
    image stays within ``spacing_tolerance_mm``.
    """
    groups: list[list[_Slice]] = []
    for s in slices:
        for group in groups:
            ref = group[0]
            if (
                s.frame_of_reference == ref.frame_of_reference
                and s.pixels.shape == ref.pixels.shape
                and np.all(
                    np.abs(s.pixel_spacing - ref.pixel_spacing) * max(s.pixels.shape)
                    <= options.spacing_tolerance_mm
                )
                and np.all(np.abs(s.row - ref.row) <= options.orientation_tolerance)
                and np.all(np.abs(s.col - ref.col) <= options.orientation_tolerance)
            ):
                group.append(s)
                break
        else:
            groups.append([s])
    return groups


def _split_by_acquisition(
    group: list[_Slice], notes: list[dict[str, str]], options: VolumeOptions
) -> list[tuple[list[_Slice], list[dict[str, str]]]]:
    """Split a group whose positions conflict by AcquisitionNumber, when that resolves it."""
    if _order_and_dedupe(group, options)[3] == 0:
        return [(group, notes)]
    numbers: list[Any] = [s.record.get("AcquisitionNumber") for s in group]
    if any(n is None for n in numbers) or len(set(numbers)) < 2:
        return [(group, notes)]  # build_stack excludes it as duplicate_positions
    parts = [[s for s, n in zip(group, numbers) if n == value] for value in sorted(set(numbers))]
    if any(_order_and_dedupe(part, options)[3] for part in parts):
        return [(group, notes)]
    return [
        (
            part,
            [
                *notes,
                _warning(
                    "split_by_acquisition",
                    f"slices at the same positions differ; AcquisitionNumber "
                    f"{part[0].record.get('AcquisitionNumber')} of {len(parts)} acquisitions",
                ),
            ],
        )
        for part in parts
    ]


def _describe(s: _Slice) -> str:
    iop = ", ".join(f"{v:.4f}" for v in np.concatenate([s.row, s.col]))
    return (
        f"ImageOrientationPatient [{iop}], Rows×Columns {s.pixels.shape[0]}×"
        f"{s.pixels.shape[1]}, PixelSpacing {s.pixel_spacing.tolist()}"
    )


def _warning(code: str, detail: str) -> dict[str, str]:
    return {"code": code, "detail": detail}
