"""Multi-scale Hessian blob detection: bright, round spots of 3–30 mm inside the lungs.

A nodule is a compact bright blob, a vessel a bright tube, the pleura a bright plate. The
Hessian of the Gaussian-smoothed image tells them apart: at the centre of a blob all three
eigenvalues are strongly negative; on a tube one is near zero, on a plate two are (Sato et
al., Med Image Anal 2(2), 1998; Frangi et al., MICCAI 1998; Li, Sone & Doi, Med Phys 30(8),
2003, the "dot enhancement filter" of lung CAD). Two responses, scale-normalised by ``σ²``
(Lindeberg, IJCV 30(2), 1998), with ``λ₁ ≤ λ₂ ≤ λ₃`` and 0 unless all three are negative:

* ``"blob"`` (the default): ``σ² |λ₃|``, the weakest curvature: how strongly the image
  bends down in *every* direction.
* ``"dot"``: Li's ``σ² λ₃² / |λ₁|``, which also divides by the strongest curvature, so it
  punishes elongation harder.

Both equal ``σ²|λ|`` on a sphere and vanish on tubes and plates. On the hard synthetic
cohort (100 nodules, a third on the pleura, a third beside a vessel; 512² scans) "blob" hit
100 % within 25 candidates per scan, "dot" 97 % (99 % within 200); on the real LIDC-IDRI-0002
series both rank its ground-glass nodule in the top ten (``scripts/bench_candidates_gen.py``).
For a ball of radius ``r`` the response peaks at ``σ = r/√3``, so the scale of a peak
estimates the diameter ``2√3σ``. Candidates are the local maxima of the response in space
at each scale, as in LoG/DoG blob detectors; merging across scales is the caller's
(:mod:`sparkdl.candidates.generate`).

Cost: scales below :data:`PYRAMID_SIGMA_MM` run on the working grid, larger ones on a grid
twice as coarse (block means), where 3–9 mm is still 1–3 voxels. Second derivatives are
central differences of the smoothed volume, taken only at the voxels searched, and the
eigenvalues (closed form) only where the Hessian is negative definite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from sparkdl.candidates.lungs import bin_factors, block_mean

__all__ = ["PYRAMID_SIGMA_MM", "Blob", "Response", "blob_response", "detect_blobs"]

#: Scales above this (mm) are computed on a grid twice as coarse.
PYRAMID_SIGMA_MM = 2.6
#: The smallest σ a grid supports, in voxels: below it central differences see noise and the
#: steps of a voxelised edge, not blobs.
MIN_SIGMA_VOXELS = 1.0

Response = Literal["blob", "dot"]
Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
_NEIGHBOURS = [
    (dz, dy, dx)
    for dz in (-1, 0, 1)
    for dy in (-1, 0, 1)
    for dx in (-1, 0, 1)
    if (dz, dy, dx) != (0, 0, 0)
]


@dataclass(frozen=True)
class Blob:
    """A local maximum of the response: ``index`` is the fractional ``(z, y, x)`` on the
    working grid, ``sigma_mm`` its scale, ``score`` the response (HU)."""

    index: tuple[float, float, float]
    sigma_mm: float
    score: float


def detect_blobs(
    volume: Float32Array,
    mask: Mask,
    spacing: Sequence[float],
    sigmas_mm: Sequence[float],
    min_score: float,
    response: Response = "blob",
) -> list[Blob]:
    """Local maxima of the response, at least ``min_score``, at each scale, inside ``mask``.

    ``volume`` is float HU on the working grid (``spacing`` mm, ``(z, y, x)``). Scales below
    :data:`MIN_SIGMA_VOXELS` of the grid are raised to it (and repeated ones dropped).
    """
    floor = MIN_SIGMA_VOXELS * float(np.mean(spacing[1:]))
    sigmas = sorted({max(float(s), floor) for s in sigmas_mm})
    fine = [s for s in sigmas if s <= PYRAMID_SIGMA_MM]
    levels = [(volume, mask, tuple(spacing), (1, 1, 1), fine)]
    coarse = [s for s in sigmas if s > PYRAMID_SIGMA_MM]
    if coarse:
        factors = bin_factors(spacing, 2.0 * max(spacing))
        levels.append(
            (
                block_mean(volume, factors),
                block_mean(mask, factors) > 0.5,
                tuple(s * f for s, f in zip(spacing, factors)),
                factors,
                coarse,
            )
        )
    blobs: list[Blob] = []
    for level, level_mask, level_spacing, factors, level_sigmas in levels:
        scale = np.asarray(factors, dtype=np.float64)
        for sigma in level_sigmas:
            values = blob_response(level, level_mask, level_spacing, sigma, response)
            peaks = _peaks(values, min_score)
            index = (peaks + _subvoxel(values, peaks)) * scale + (scale - 1.0) / 2.0
            blobs += [
                Blob((float(i[0]), float(i[1]), float(i[2])), sigma, float(v))
                for i, v in zip(index, values[tuple(peaks.T)])
            ]
    return blobs


def _peaks(values: Float32Array, min_score: float) -> npt.NDArray[np.int64]:
    """Voxels whose response is positive, at least ``min_score`` and not below any of their
    26 neighbours. (The response is 0 on the volume's faces, so neighbours exist.)"""
    flat = values.ravel()
    index = np.flatnonzero((flat > 0) & (flat >= min_score))
    top = flat[index]
    ny, nx = values.shape[1], values.shape[2]
    for dz, dy, dx in _NEIGHBOURS:
        keep = top >= flat[index + (dz * ny + dy) * nx + dx]
        index, top = index[keep], top[keep]
    return np.stack(np.unravel_index(index, values.shape), axis=1).astype(np.int64)


def _subvoxel(values: Float32Array, peaks: npt.NDArray[np.int64]) -> Float64Array:
    """Sub-voxel offsets of peaks: the vertex of the parabola through each peak and its two
    neighbours along each axis (within half a voxel)."""
    offsets = np.zeros(peaks.shape, dtype=np.float64)
    centre = values[tuple(peaks.T)].astype(np.float64)
    for axis in range(3):
        lo, hi = peaks.copy(), peaks.copy()
        lo[:, axis] -= 1
        hi[:, axis] += 1
        before = values[tuple(lo.T)].astype(np.float64)
        after = values[tuple(hi.T)].astype(np.float64)
        bend = before - 2.0 * centre + after
        safe = np.where(bend < 0, bend, -1.0)
        offsets[:, axis] = np.where(bend < 0, np.clip(0.5 * (before - after) / safe, -0.5, 0.5), 0)
    return offsets


def blob_response(
    volume: Float32Array,
    mask: Mask,
    spacing: Sequence[float],
    sigma_mm: float,
    response: Response = "blob",
) -> Float32Array:
    """The scale-normalised response (HU) at scale ``sigma_mm``, at the voxels of ``mask``
    away from the volume's faces; 0 elsewhere.

    Eigenvalues are solved only where the Hessian is negative definite (Sylvester's
    criterion: the diagonal, the leading 2×2 minor, the determinant), a few per cent of the
    lung's voxels; elsewhere the response is 0 by definition.
    """
    out = np.zeros(mask.size, dtype=np.float32)
    if min(mask.shape) < 3:
        return out.reshape(mask.shape)
    smoothed = ndimage.gaussian_filter(
        volume, [sigma_mm / s for s in spacing], mode="nearest", truncate=3.0
    )
    flat = smoothed.ravel()
    strides = (mask.shape[1] * mask.shape[2], mask.shape[2], 1)
    inner = np.zeros(mask.shape, dtype=bool)
    inner[1:-1, 1:-1, 1:-1] = mask[1:-1, 1:-1, 1:-1]
    index = np.flatnonzero(inner)
    for axis in range(3):  # the diagonal first: most voxels fail it, and are dropped
        step = strides[axis]
        second = (flat[index + step] + flat[index - step] - 2.0 * flat[index]) / spacing[axis] ** 2
        index = index[second < 0]
    zz, yy, xx = (_second(flat, index, strides[a], strides[a], spacing[a] ** 2) for a in range(3))
    zy, zx, yx = (
        _second(flat, index, strides[a], strides[b], spacing[a] * spacing[b])
        for a, b in ((0, 1), (0, 2), (1, 2))
    )
    det = zz * (yy * xx - yx * yx) - zy * (zy * xx - yx * zx) + zx * (zy * yx - yy * zx)
    definite = (zz * yy - zy * zy > 0) & (det < 0)
    hessian = [h[definite].astype(np.float64) for h in (zz, yy, xx, zy, zx, yx)]
    weakest, strongest = _extreme_eigenvalues(hessian)
    values = weakest**2 / -strongest if response == "dot" else -weakest
    out[index[definite]] = sigma_mm**2 * values
    return out.reshape(mask.shape)


def _second(
    flat: Float32Array, index: npt.NDArray[np.int64], sa: int, sb: int, scale: float
) -> Float32Array:
    """A second derivative by central differences along strides ``sa`` and ``sb`` (the same
    stride twice: a pure one, with steps of one voxel)."""
    if sa == sb:
        total = flat[index + sa] + flat[index - sa]
        total -= flat[index]
        total -= flat[index]
        return total / np.float32(scale)
    total = flat[index + sa + sb] - flat[index + sa - sb] - flat[index - sa + sb]
    total += flat[index - sa - sb]
    return total / np.float32(4.0 * scale)


def _extreme_eigenvalues(hessian: list[Float64Array]) -> tuple[Float64Array, Float64Array]:
    """The largest and the smallest eigenvalue of symmetric 3×3 matrices given as their six
    terms (zz, yy, xx, zy, zx, yx), in closed form: the trigonometric solution of the
    characteristic cubic (Smith, CACM 4(4), 1961)."""
    zz, yy, xx, zy, zx, yx = hessian
    q = (zz + yy + xx) / 3.0
    off_diagonal = zy**2 + zx**2 + yx**2
    p = np.sqrt(((zz - q) ** 2 + (yy - q) ** 2 + (xx - q) ** 2 + 2.0 * off_diagonal) / 6.0)
    safe = np.where(p > 1e-12, p, 1.0)
    a, b, c = (zz - q) / safe, (yy - q) / safe, (xx - q) / safe
    d, e, f = zy / safe, zx / safe, yx / safe
    det = a * (b * c - f * f) - d * (d * c - f * e) + e * (d * f - b * e)
    phi = np.arccos(np.clip(det / 2.0, -1.0, 1.0)) / 3.0
    return q + 2.0 * p * np.cos(phi), q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
