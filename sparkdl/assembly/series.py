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
   Steps 1 to 3 are :mod:`sparkdl.assembly.slices`, 4 to 6 :mod:`sparkdl.assembly.stacks`.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from sparkdl.assembly.options import VolumeOptions
from sparkdl.assembly.slices import Slice, group_by_geometry, screen, split_by_acquisition
from sparkdl.assembly.stacks import AIR_HU, Excluded, Stack, build_stack, warning
from sparkdl.errors import InputError

__all__ = [
    "AIR_HU",
    "AssembledVolume",
    "AssemblyResult",
    "InstanceOutcome",
    "VolumeOptions",
    "assemble_series",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstanceOutcome:
    """What became of one instance: in a volume, or excluded with a stable reason code."""

    status: str  # "volume" | "excluded"
    volume_id: str | None = None
    reason: str | None = None
    detail: str = ""


@dataclass
class AssembledVolume:
    """One volume: int16 HU indexed (z, y, x), geometry as in :mod:`sparkdl.store.tables`."""

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
        """The row for ``sparkdl.store.tables.VolumeSchema`` (warnings as a JSON string)."""
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
    slices: list[Slice] = []
    for record in sorted(records, key=lambda r: str(r.get("sop_uid"))):
        if record.get("volume_file"):
            _add_volume_file(result, series_uid, record, options)
            continue
        slice_or_reason = screen(record)
        if isinstance(slice_or_reason, Slice):
            slices.append(slice_or_reason)
        else:
            reason, detail = slice_or_reason
            result.instances[str(record.get("sop_uid"))] = InstanceOutcome(
                "excluded", reason=reason, detail=detail
            )
    for group, notes in _candidates(slices, options):
        _add_outcomes(result, series_uid, group[0].record, notes, build_stack(group, options))
    return result


def _add_volume_file(
    result: AssemblyResult, series_uid: str, record: Mapping[str, Any], options: VolumeOptions
) -> None:
    """A MetaImage/NIfTI volume (:mod:`sparkdl.units.volume_file`): on its grid as the file states.

    Its voxels are already one regular grid (no slice order, gaps or tilt to resolve); only
    the checks that apply to any volume do: ``too_few_slices``.
    """
    sop_uid = str(record.get("sop_uid"))
    described = json.loads(str(record["volume_file"]))["volume_file"]
    volume = np.asarray(record["pixels"], dtype=np.int16)
    if volume.shape[0] < options.min_slices:
        result.instances[sop_uid] = InstanceOutcome(
            "excluded",
            reason="too_few_slices",
            detail=f"{volume.shape[0]} slices < volumes.min_slices {options.min_slices}",
        )
        return
    notes = []
    if described.get("hu_clipped"):
        notes.append(warning("hu_clipped", f"{described['hu_clipped']} voxels clipped to int16"))
    volume_id = f"{series_uid}.{len(result.volumes)}"
    result.volumes.append(
        AssembledVolume(
            volume_id=volume_id,
            series_uid=series_uid,
            study_uid=str(record.get("study_uid")),
            patient_id=str(record.get("patient_id")),
            volume=volume,
            spacing=np.asarray(described["spacing"], dtype=np.float64),
            origin=np.asarray(described["origin"], dtype=np.float64),
            direction=np.asarray(described["direction"], dtype=np.float64).reshape(9),
            warnings=notes,
            sop_uids=[sop_uid],
        )
    )
    result.instances[sop_uid] = InstanceOutcome("volume", volume_id=volume_id)


def _candidates(
    slices: list[Slice], options: VolumeOptions
) -> list[tuple[list[Slice], list[dict[str, str]]]]:
    """Geometry groups, split by acquisition where that helps, largest first, with notes."""
    groups = group_by_geometry(slices, options.spacing_tolerance_mm, options.orientation_tolerance)
    candidates: list[tuple[list[Slice], list[dict[str, str]]]] = []
    for group in groups:
        notes = []
        if len(groups) > 1:
            notes.append(
                warning(
                    "split_mixed_geometry",
                    f"series holds {len(groups)} geometry groups; this one: {group[0].describe()}",
                )
            )
        parts = split_by_acquisition(group, options.spacing_tolerance_mm)
        if len(parts) == 1:
            candidates.append((group, notes))
            continue
        for part in parts:
            note = warning(
                "split_by_acquisition",
                f"slices at the same positions differ; AcquisitionNumber "
                f"{part[0].record.get('AcquisitionNumber')} of {len(parts)} acquisitions",
            )
            candidates.append((part, [*notes, note]))
    candidates.sort(key=lambda c: (-len(c[0]), min(s.sop_uid for s in c[0])))
    return candidates


def _add_outcomes(
    result: AssemblyResult,
    series_uid: str,
    first: Mapping[str, Any],
    notes: list[dict[str, str]],
    stack: Stack,
) -> None:
    """Record what one candidate became: a volume for its slices, or their exclusion."""
    volume_id = f"{series_uid}.{len(result.volumes)}"
    for sop_uid, detail in stack.duplicates.items():
        result.instances[sop_uid] = InstanceOutcome(
            "excluded", reason="duplicate_instance", detail=detail
        )
    built = stack.outcome
    if isinstance(built, Excluded):
        logger.warning(
            "series %s: %d instances excluded: %s", series_uid, len(stack.slices), built.reason
        )
        for s in stack.slices:
            result.instances[s.sop_uid] = InstanceOutcome(
                "excluded", reason=built.reason, detail=built.detail
            )
        return
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
        sop_uids=[s.sop_uid for s in stack.slices],
    )
    if volume.warnings:
        logger.warning("volume %s: %s", volume_id, ", ".join(w["code"] for w in volume.warnings))
    result.volumes.append(volume)
    for s in stack.slices:
        result.instances[s.sop_uid] = InstanceOutcome("volume", volume_id=volume_id)
