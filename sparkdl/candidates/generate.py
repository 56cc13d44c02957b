"""``generate_candidates``: nodule candidates of one CT volume, for scans that come without a
candidate list.

A CAD system is candidate detection (a few hundred points per scan that keep nearly every
nodule) followed by false-positive reduction (the CNN sparkdl trains on patches around the
candidates): LUNA16's design (Setio et al., Med Image Anal 42, 2017). This module is the
first half, in NumPy and SciPy, one volume at a time:

1. A working grid: block means of the scan's own voxels, about :attr:`working_spacing_mm`
   wide (0.7 mm pixels become 1.4 mm; 1.25 mm slices stay). Averaging, not interpolating:
   no new samples, less noise, a third of the CPU and half the memory of the native grid,
   which also ranked nodules lower (more small peaks of noise and vessels).
2. The lung mask of :mod:`sparkdl.candidates.lungs` (juxtapleural nodules in, airways
   and the outside out); the search is cut to its box.
3. Outside the mask the image is set to the lungs' median HU, so the chest wall, the
   mediastinum and the diaphragm neither hide a nodule that touches them nor look like one;
   above :data:`CLIP_HU` the image is clipped, so a solid nodule and a part-solid or
   ground-glass one (-750…-300 HU) differ less in contrast than in shape.
4. A multi-scale Hessian blob filter (:mod:`sparkdl.candidates.blobs`), scales from
   :attr:`min_diameter_mm` to :attr:`max_diameter_mm`; its local maxima are the candidates.
5. Candidates closer than :attr:`merge_distance_mm` (or inside a stronger one's radius) are
   merged into the stronger; the :attr:`max_candidates` strongest are kept.

Why a blob filter and not thresholds and connected components at several HU levels (the
solid and subsolid detectors of Murphy et al., Med Image Anal 13, 2009, and Jacobs et al.,
Med Image Anal 18, 2014): in the lungs above -600 HU, vessels and nodules are one tree of
components that must then be cut apart by shape anyway; the Hessian measures that shape
directly, at every scale, for solid and subsolid alike. Choices were made on measurements
(sensitivity, candidates per scan, CPU seconds) by ``scripts/bench_candidates_gen.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from sparkdl.candidates.blobs import Blob, Response, detect_blobs
from sparkdl.candidates.lungs import (
    AIR_HU,
    MASK_GRID_MM,
    bin_factors,
    block_mean,
    coarse_lung_mask,
    upsample,
)
from sparkdl.errors import ConfigError
from sparkdl.geometry import ArrayLike, Geometry

logger = logging.getLogger(__name__)

__all__ = [
    "CLIP_HU",
    "RESPONSE",
    "SOLID_HU",
    "Candidate",
    "CandidateOptions",
    "generate_candidates",
]

#: HU above this are clipped before the blob filter: solid and subsolid nodules (-750…-300
#: HU) then differ in shape, not in contrast. -500…-700 measured alike; at -300 the real
#: series' ground-glass nodule fell out of the top 200 (scripts/bench_candidates_gen.py).
CLIP_HU = -600.0
#: Mean HU of a candidate's core at or above which it is called solid.
SOLID_HU = -300.0
#: Tissue above this HU pulls a candidate's centre to it (:func:`_centred`).
CENTROID_FLOOR_HU = -750.0
#: The Hessian response (:mod:`sparkdl.candidates.blobs`): "blob" ranked the hard synthetic
#: cohort's nodules higher than Li's "dot".
RESPONSE: Response = "blob"
#: Peaks considered for merging, per candidate kept: the weak tail cannot be kept anyway.
_PEAKS_PER_CANDIDATE = 50

Kind = Literal["solid", "subsolid"]
Triple = tuple[float, float, float]


@dataclass(frozen=True)
class CandidateOptions:
    """The knobs of candidate generation, validated when built.

    ``working_spacing_mm``: the working grid's voxel size (block means of whole voxels);
    ``min_diameter_mm`` / ``max_diameter_mm``: the nodule sizes searched for;
    ``merge_distance_mm``: candidates closer than this are one; ``max_candidates``: the
    most kept per scan, strongest first; ``min_score``: the weakest blob response kept
    (HU, scale-normalised; see :mod:`sparkdl.candidates.blobs`).

    The smallest scale is raised to one working voxel (``σ`` of 1.4 mm: nodules of 4.8 mm
    and less are found at that scale, and their diameter estimated as 4.8 mm): smaller
    scales on this grid found the steps of the voxelised pleura, not nodules.
    """

    working_spacing_mm: float = 1.4
    min_diameter_mm: float = 3.0
    max_diameter_mm: float = 30.0
    merge_distance_mm: float = 3.0
    max_candidates: int = 200
    min_score: float = 3.0

    def __post_init__(self) -> None:
        positive = {
            "working_spacing_mm": self.working_spacing_mm,
            "min_diameter_mm": self.min_diameter_mm,
            "max_diameter_mm": self.max_diameter_mm,
        }
        for key, value in positive.items():
            _require(
                key, value, _is_number(value) and 0 < value <= 100, "a number of mm in (0, 100]"
            )
        _require(
            "max_diameter_mm",
            self.max_diameter_mm,
            self.max_diameter_mm > self.min_diameter_mm,
            f"more than min_diameter_mm={self.min_diameter_mm}",
        )
        _require(
            "merge_distance_mm",
            self.merge_distance_mm,
            _is_number(self.merge_distance_mm) and 0 <= self.merge_distance_mm <= 50,
            "a number of mm in [0, 50]",
        )
        _require(
            "max_candidates",
            self.max_candidates,
            isinstance(self.max_candidates, int)
            and not isinstance(self.max_candidates, bool)
            and 1 <= self.max_candidates <= 100_000,
            "an integer in [1, 100000]",
        )
        _require(
            "min_score",
            self.min_score,
            _is_number(self.min_score) and self.min_score >= 0,
            "a number of HU >= 0",
        )

    @property
    def sigmas_mm(self) -> tuple[float, ...]:
        """The filter scales: ``σ = r/√3`` for radii from the smallest to the largest nodule,
        a factor of about 1.5 apart."""
        lo = self.min_diameter_mm / (2.0 * math.sqrt(3.0))
        hi = self.max_diameter_mm / (2.0 * math.sqrt(3.0))
        num = max(2, math.ceil(math.log(hi / lo) / math.log(1.5)) + 1)
        return tuple(float(v) for v in np.geomspace(lo, hi, num))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _require(key: str, value: object, ok: bool, expected: str) -> None:
    if not ok:
        raise ConfigError(f"CandidateOptions.{key} must be {expected}. Received: {key}={value!r}")


@dataclass(frozen=True)
class Candidate:
    """One nodule candidate.

    ``coord_x``, ``coord_y``, ``coord_z``: world LPS mm (LUNA16's candidate columns);
    ``index_zyx``: the fractional voxel index in the input volume; ``diameter_mm``: the
    size estimate from the strongest scale; ``score``: the blob response (HU; higher is
    more nodule-like); ``mean_hu``: the mean HU of the candidate's core; ``kind``: solid or
    subsolid (part-solid and ground glass), from that mean.
    """

    coord_x: float
    coord_y: float
    coord_z: float
    diameter_mm: float
    score: float
    index_zyx: tuple[float, float, float]
    mean_hu: float
    kind: Kind


def generate_candidates(
    hu: npt.NDArray[Any],
    spacing: Sequence[float],
    origin: ArrayLike,
    direction: ArrayLike,
    options: CandidateOptions | None = None,
) -> list[Candidate]:
    """Nodule candidates of one CT volume, strongest first.

    ``hu`` is the volume in HU indexed ``(z, y, x)``, an axial stack (z across slices, x
    the patient's left-right: the lungs are told apart by the body's midline); ``spacing``
    ``(z, y, x)`` mm; ``origin`` and ``direction`` place it in the patient
    (:class:`sparkdl.geometry.Geometry`). A volume without lungs (air, water, noise, fewer
    than 3 working voxels along an axis) gives no candidates. About 1 CPU s and 170 MB
    beyond the input for a LUNA16-sized scan.
    """
    options = options or CandidateOptions()
    geometry = _geometry(spacing, origin, direction)
    volume = np.asarray(hu)
    if volume.ndim != 3:
        raise ValueError(f"hu must be a 3D (z, y, x) array. Received: shape {volume.shape}")
    work_factors = bin_factors(geometry.spacing, options.working_spacing_mm)
    work_spacing = tuple(s * f for s, f in zip(geometry.spacing, work_factors))
    if min(n // f for n, f in zip(volume.shape, work_factors)) < 3:
        return []  # too thin for a 3D neighbourhood: no lungs to search
    work = block_mean(volume, work_factors)
    mask = _working_mask(work, work_spacing)
    if mask is None:
        return []
    box = _box(mask)
    work, mask = work[box], mask[box]
    image = _flatten_outside(work, mask)
    blobs = detect_blobs(image, mask, work_spacing, options.sigmas_mm, options.min_score, RESPONSE)
    kept = _merge(blobs, work_spacing, options)
    start = np.array([b.start for b in box], dtype=np.float64)
    logger.debug("candidates: %d peaks, %d kept", len(blobs), len(kept))
    kept = [_centred(b, image, work_spacing) for b in kept]
    return [_candidate(b, work, work_spacing, start, work_factors, geometry) for b in kept]


def _candidate(
    blob: Blob,
    work: npt.NDArray[np.float32],
    spacing: Sequence[float],
    start: npt.NDArray[np.float64],
    work_factors: Sequence[int],
    geometry: Geometry,
) -> Candidate:
    """A blob of the working grid's box (starting at ``start``) as a candidate of the scan."""
    factors = np.asarray(work_factors, dtype=np.float64)
    index = (start + np.asarray(blob.index)) * factors + (factors - 1.0) / 2.0
    x, y, z = (float(v) for v in geometry.to_world(index))
    mean_hu = _core_hu(work, blob, spacing)
    return Candidate(
        coord_x=x,
        coord_y=y,
        coord_z=z,
        diameter_mm=_diameter(blob.sigma_mm),
        score=blob.score,
        index_zyx=(float(index[0]), float(index[1]), float(index[2])),
        mean_hu=mean_hu,
        kind="solid" if mean_hu >= SOLID_HU else "subsolid",
    )


def _geometry(spacing: Sequence[float], origin: ArrayLike, direction: ArrayLike) -> Geometry:
    """The volume's :class:`Geometry` (which checks the three)."""
    values = [tuple(float(v) for v in np.asarray(a, np.float64).ravel()) for a in (spacing, origin)]
    matrix = tuple(float(v) for v in np.asarray(direction, np.float64).ravel())
    return Geometry(cast(Triple, values[0]), cast(Triple, values[1]), matrix)


def _diameter(sigma_mm: float) -> float:
    return 2.0 * math.sqrt(3.0) * sigma_mm


def _working_mask(
    work: npt.NDArray[np.float32], spacing: Sequence[float]
) -> npt.NDArray[np.bool_] | None:
    """The lung mask on the working grid (computed on the coarser mask grid), or None."""
    factors = bin_factors(spacing, MASK_GRID_MM)
    coarse = coarse_lung_mask(block_mean(work, factors), [s * f for s, f in zip(spacing, factors)])
    if not coarse.any():
        return None
    return upsample(coarse, factors, work.shape)


def _box(mask: npt.NDArray[np.bool_]) -> tuple[slice, slice, slice]:
    """The mask's bounding box grown by 2 voxels (clipped to the volume)."""
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(int(hit[0]) - 2, 0), min(int(hit[-1]) + 3, mask.shape[axis])))
    return out[0], out[1], out[2]


def _flatten_outside(
    work: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float32]:
    """The image the blob filter sees: clipped at :data:`CLIP_HU`, and outside the lungs
    the median of the aerated lung, so nothing outside can make or hide a blob."""
    aerated = work[mask & (work < AIR_HU)]
    background = float(np.median(aerated)) if aerated.size else -850.0
    image = np.minimum(work, np.float32(CLIP_HU))
    image[~mask] = background
    return image


def _merge(blobs: list[Blob], spacing: Sequence[float], options: CandidateOptions) -> list[Blob]:
    """Strongest first; a blob closer than the merge distance to a kept one, or inside a
    kept one's radius, is merged into it. At most ``max_candidates``."""
    blobs = sorted(blobs, key=lambda b: -b.score)[: _PEAKS_PER_CANDIDATE * options.max_candidates]
    if not blobs:
        return []
    positions = np.asarray([b.index for b in blobs]) * np.asarray(spacing, dtype=np.float64)
    reach = np.maximum(
        np.asarray([_diameter(b.sigma_mm) / 2.0 for b in blobs]), options.merge_distance_mm
    )
    tree = cKDTree(positions)
    merged = np.zeros(len(blobs), dtype=bool)
    kept: list[Blob] = []
    for i, blob in enumerate(blobs):
        if merged[i]:
            continue
        kept.append(blob)
        if len(kept) >= options.max_candidates:
            break
        merged[tree.query_ball_point(positions[i], reach[i])] = True
    return kept


def _centred(blob: Blob, image: npt.NDArray[np.float32], spacing: Sequence[float]) -> Blob:
    """The blob moved to the centroid of the dense lung tissue within its radius (at least
    1.5 voxels; ``image`` is the filter's, flat outside the lungs, so the chest wall pulls
    nothing): on coarse grids (2.8 mm pixels) the filter's peak sat a voxel or two off small
    nodules, outside their radius. Weights are HU above :data:`CENTROID_FLOOR_HU`, clipped
    at :data:`CLIP_HU` like the filter's image. On the CLI's synthetic 128² cohort (30
    patients, 68 nodules) this took the hits from 64 to 66 (the floor between -800 and -700
    HU and 1 or 2 rounds gave the same)."""
    radius = max(_diameter(blob.sigma_mm) / 2.0, 1.5 * max(spacing))
    centre = np.asarray(blob.index)
    lo = [max(math.floor(c - radius / s), 0) for c, s in zip(centre, spacing)]
    hi = [min(math.ceil(c + radius / s) + 1, n) for c, s, n in zip(centre, spacing, image.shape)]
    block = image[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    grids = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing))
    weights = np.where(d2 <= radius**2, np.clip(block - CENTROID_FLOOR_HU, 0.0, None), 0.0)
    total = float(weights.sum())
    if total <= 0.0:
        return blob
    z, y, x = (float((weights * g).sum() / total) for g in np.broadcast_arrays(*grids))
    return Blob((z, y, x), blob.sigma_mm, blob.score)


def _core_hu(work: npt.NDArray[np.float32], blob: Blob, spacing: Sequence[float]) -> float:
    """Mean HU within half the estimated radius (at least one voxel) of the blob's centre."""
    radius = max(_diameter(blob.sigma_mm) / 4.0, *spacing)
    centre = np.asarray(blob.index)
    lo = [max(math.floor(c - radius / s), 0) for c, s in zip(centre, spacing)]
    hi = [min(math.ceil(c + radius / s) + 1, n) for c, s, n in zip(centre, spacing, work.shape)]
    block = work[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    grids = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing))
    inside = d2 <= radius**2
    return float(block[inside].mean()) if inside.any() else float(block.mean())
