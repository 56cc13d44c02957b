"""A chest phantom in Hounsfield units, defined in patient (LPS) world coordinates.

The phantom is a set of analytic shapes (elliptic body with a fat ring, ribs, two lungs, heart,
aorta, spine, branching lung vessels and nodules). It is evaluated directly on the world
coordinates of each voxel of a :class:`Grid`, so any series geometry (feet-first, reversed
slices, coronal localizer, thick slices) shows the same anatomy at the same world positions.

Everything here is a pure function of its inputs. Where the organs, vessels and nodules of
one patient go is drawn by :mod:`sparkdl.synth.anatomy`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

AIR_HU = -1000.0
FAT_HU = -100.0
SOFT_TISSUE_HU = 40.0
LUNG_HU = -850.0
BONE_HU = 700.0
MARROW_HU = 250.0
SOLID_NODULE_HU = 30.0
GROUND_GLASS_HU = -500.0

Texture = Literal["solid", "part_solid", "ground_glass"]
Margin = Literal["smooth", "lobulated", "spiculated"]
#: What a nodule touches: nothing (free in the parenchyma), the pleura (juxtapleural: chest
#: wall, diaphragm or mediastinum) or a vessel (juxtavascular), the classic misses of CAD.
Attachment = Literal["none", "pleura", "vessel"]

_CHUNK_SLICES = 24  # slices rendered at once: bounds memory of the float32 coordinate arrays


@dataclass(frozen=True)
class Grid:
    """A regular voxel grid in world space: voxel (k, r, c) sits at
    ``origin + k * steps[0] + r * steps[1] + c * steps[2]`` (mm, LPS).

    ``steps[1]`` is the DICOM column direction times the row spacing, ``steps[2]`` the row
    direction times the column spacing, ``steps[0]`` the slice normal times the slice spacing.
    """

    origin: tuple[float, float, float]
    steps: tuple[tuple[float, float, float], ...]
    shape: tuple[int, int, int]

    def world(
        self,
        ks: npt.NDArray[np.integer[Any]],
        rs: npt.NDArray[np.integer[Any]],
        cs: npt.NDArray[np.integer[Any]],
    ) -> list[npt.NDArray[np.float32]]:
        """World x, y, z (float32, shape ``(len(ks), len(rs), len(cs))``) of a sub-grid."""
        o = np.asarray(self.origin, dtype=np.float64)
        s = np.asarray(self.steps, dtype=np.float64)
        kk = ks.astype(np.float64)[:, None, None]
        rr = rs.astype(np.float64)[None, :, None]
        cc = cs.astype(np.float64)[None, None, :]
        out = []
        for axis in range(3):
            a = (o[axis] + kk * s[0, axis]) + (rr * s[1, axis] + cc * s[2, axis])
            out.append(np.broadcast_to(a, (len(ks), len(rs), len(cs))).astype(np.float32))
        return out

    def index_box(
        self, lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64]
    ) -> tuple[slice, slice, slice] | None:
        """Voxel index ranges covering the world axis-aligned box ``[lo, hi]``, or None."""
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        m = np.asarray(self.steps, dtype=np.float64).T  # world = origin + m @ (k, r, c)
        idx = np.linalg.solve(m, (corners - np.asarray(self.origin)).T).T
        bounds = []
        for axis in range(3):
            start = max(int(np.floor(idx[:, axis].min())), 0)
            stop = min(int(np.ceil(idx[:, axis].max())) + 1, self.shape[axis])
            if start >= stop:
                return None
            bounds.append(slice(start, stop))
        return bounds[0], bounds[1], bounds[2]


@dataclass(frozen=True)
class Vessel:
    """A straight vessel segment (a capsule) painted only inside the lungs."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    radius_mm: float
    hu: float


@dataclass(frozen=True)
class Nodule:
    """A pulmonary nodule: a rotated ellipsoid, optionally lobulated and spiculated.

    The equivalent diameter is ``2 * radius_mm`` (the relative ``axes`` multiply to 1).
    """

    center: tuple[float, float, float]
    radius_mm: float
    axes: tuple[float, float, float]
    rotation: tuple[tuple[float, float, float], ...]
    texture: Texture
    margin: Margin
    lobulation: float
    lobe_freq: tuple[int, int]
    lobe_phase: float
    spicules: tuple[tuple[float, float, float, float], ...]  # unit direction, length mm
    malignant: bool
    attached_to: Attachment = "none"

    @property
    def diameter_mm(self) -> float:
        return 2.0 * self.radius_mm

    @property
    def body_radius_mm(self) -> float:
        """Radius of a ball around the centre that holds the (lobulated) ellipsoid body."""
        return self.radius_mm * max(self.axes) * (1.0 + self.lobulation)

    @property
    def bounding_radius_mm(self) -> float:
        """As :attr:`body_radius_mm`, spicules included."""
        return max([self.body_radius_mm] + [s[3] + 1.5 for s in self.spicules])


@dataclass(frozen=True)
class Phantom:
    """One patient's chest. Lengths in mm, positions in world LPS."""

    center: tuple[float, float]  # body centre (x, y)
    body_axes: tuple[float, float]  # semi-axes (x, y)
    fat_mm: float
    lung_centers: tuple[tuple[float, float, float], ...]
    lung_axes: tuple[float, float, float]
    heart_center: tuple[float, float, float]
    heart_axes: tuple[float, float, float]
    aorta: tuple[float, float, float]  # x, y, radius
    spine: tuple[float, float, float]  # x, y, radius
    rib_period_mm: float
    vessels: tuple[Vessel, ...]
    nodules: tuple[Nodule, ...]

    @property
    def lung_z_range(self) -> tuple[float, float]:
        z = self.lung_centers[0][2]
        return z - self.lung_axes[2], z + self.lung_axes[2]


def lung_mask(
    phantom: Phantom,
    x: npt.NDArray[np.floating[Any]],
    y: npt.NDArray[np.floating[Any]],
    z: npt.NDArray[np.floating[Any]],
) -> npt.NDArray[np.bool_]:
    """True where a world point is lung parenchyma (inside a lung, outside every organ)."""
    lx, ly, lz = phantom.lung_axes
    inside = np.zeros(np.broadcast(x, y, z).shape, dtype=bool)
    for lcx, lcy, lcz in phantom.lung_centers:
        inside |= ((x - lcx) / lx) ** 2 + ((y - lcy) / ly) ** 2 + ((z - lcz) / lz) ** 2 < 1.0
    hx, hy, hz = phantom.heart_center
    hax = phantom.heart_axes
    inside &= ((x - hx) / hax[0]) ** 2 + ((y - hy) / hax[1]) ** 2 + ((z - hz) / hax[2]) ** 2 >= 1
    for px, py, pr in (phantom.aorta, phantom.spine):
        inside &= (x - px) ** 2 + (y - py) ** 2 >= (pr + 3.0) ** 2
    return inside


def _background(
    phantom: Phantom,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.float32],
    z: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """HU of the body without vessels and nodules, and the lung mask."""
    cx, cy = phantom.center
    ax, ay = phantom.body_axes
    rho = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)
    hu = np.full(x.shape, AIR_HU, dtype=np.float32)
    hu[rho < 1.0] = FAT_HU
    hu[rho < 1.0 - phantom.fat_mm / min(ax, ay)] = SOFT_TISSUE_HU
    # Ribs: an elliptic band, interrupted along z with a phase that follows the angle (oblique).
    angle = np.arctan2(y - cy, x - cx)
    rib_phase = (z + 18.0 * np.cos(angle)) * (2 * np.pi / phantom.rib_period_mm)
    hu[(rho > 0.84) & (rho < 0.89) & (np.sin(rib_phase) > 0.55)] = BONE_HU
    hx, hy, hz = phantom.heart_center
    hax = phantom.heart_axes
    hu[((x - hx) / hax[0]) ** 2 + ((y - hy) / hax[1]) ** 2 + ((z - hz) / hax[2]) ** 2 < 1] = 45.0
    px, py, pr = phantom.aorta
    hu[(x - px) ** 2 + (y - py) ** 2 < pr**2] = 50.0
    sx, sy, sr = phantom.spine
    d2 = (x - sx) ** 2 + (y - sy) ** 2
    hu[d2 < sr**2] = BONE_HU
    hu[d2 < (0.65 * sr) ** 2] = MARROW_HU
    lungs = lung_mask(phantom, x, y, z)
    hu[lungs] = LUNG_HU + 30.0 * (y[lungs] - cy) / ay  # dependent lung is a little denser
    return hu, lungs


def render_hu(phantom: Phantom, grid: Grid) -> npt.NDArray[np.float32]:
    """Noise-free HU (float32, shape ``grid.shape``) of the phantom on the grid's voxels."""
    nz, ny, nx = grid.shape
    hu = np.empty(grid.shape, dtype=np.float32)
    lungs = np.empty(grid.shape, dtype=bool)
    rs, cs = np.arange(ny), np.arange(nx)
    for k0 in range(0, nz, _CHUNK_SLICES):
        ks = np.arange(k0, min(k0 + _CHUNK_SLICES, nz))
        x, y, z = grid.world(ks, rs, cs)
        hu[ks[0] : ks[-1] + 1], lungs[ks[0] : ks[-1] + 1] = _background(phantom, x, y, z)
    for vessel in phantom.vessels:
        _paint_capsule(hu, lungs, grid, vessel.start, vessel.end, vessel.radius_mm, vessel.hu)
    for nodule in phantom.nodules:
        _paint_nodule(hu, grid, nodule)
    return hu


def add_noise(
    hu: npt.NDArray[np.float32], rng: np.random.Generator, sigma_hu: float
) -> npt.NDArray[np.float32]:
    """Gaussian quantum-like noise (float32), added in place and returned."""
    hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(sigma_hu)
    return hu


def _paint_capsule(
    hu: npt.NDArray[np.float32],
    where: npt.NDArray[np.bool_] | None,
    grid: Grid,
    start: tuple[float, float, float],
    end: tuple[float, float, float],
    radius: float,
    value: float,
) -> None:
    a, b = np.asarray(start), np.asarray(end)
    box = grid.index_box(np.minimum(a, b) - radius, np.maximum(a, b) + radius)
    if box is None:
        return
    ks, rs, cs = (np.arange(s.start, s.stop) for s in box)
    x, y, z = grid.world(ks, rs, cs)
    d = b - a
    t = ((x - a[0]) * d[0] + (y - a[1]) * d[1] + (z - a[2]) * d[2]) / float(d @ d)
    t = np.clip(t, 0.0, 1.0)
    dist2 = (x - a[0] - t * d[0]) ** 2 + (y - a[1] - t * d[1]) ** 2 + (z - a[2] - t * d[2]) ** 2
    inside = dist2 < radius**2
    if where is not None:
        inside &= where[box]
    hu[box][inside] = value


def nodule_mask(
    nodule: Nodule,
    x: npt.NDArray[np.floating[Any]],
    y: npt.NDArray[np.floating[Any]],
    z: npt.NDArray[np.floating[Any]],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Masks of the nodule body and of its solid core (part-solid nodules) at world points."""
    rot = np.asarray(nodule.rotation)  # columns are the ellipsoid's axes in world space
    c = nodule.center
    dx, dy, dz = x - c[0], y - c[1], z - c[2]
    q = [(dx * rot[0, i] + dy * rot[1, i] + dz * rot[2, i]) / nodule.axes[i] for i in range(3)]
    norm = np.sqrt(q[0] ** 2 + q[1] ** 2 + q[2] ** 2)
    theta = np.arccos(np.clip(q[2] / np.maximum(norm, 1e-6), -1.0, 1.0))
    phi = np.arctan2(q[1], q[0])
    k, m = nodule.lobe_freq
    radius = nodule.radius_mm * (
        1.0 + nodule.lobulation * np.cos(k * theta) * np.cos(m * phi + nodule.lobe_phase)
    )
    return norm < radius, norm < 0.5 * nodule.radius_mm


def _paint_nodule(hu: npt.NDArray[np.float32], grid: Grid, nodule: Nodule) -> None:
    c = np.asarray(nodule.center)
    for sx, sy, sz, length in nodule.spicules:
        tip = c + length * np.array([sx, sy, sz])
        _paint_capsule(
            hu, None, grid, nodule.center, (tip[0], tip[1], tip[2]), 1.2, SOLID_NODULE_HU
        )
    reach = nodule.body_radius_mm
    box = grid.index_box(c - reach, c + reach)
    if box is None:
        return
    x, y, z = grid.world(*(np.arange(s.start, s.stop) for s in box))
    body, core = nodule_mask(nodule, x, y, z)
    block = hu[box]
    value = np.full(x.shape, SOLID_NODULE_HU, dtype=np.float32)
    if nodule.texture != "solid":
        # Ground glass: hazy, heterogeneous; part-solid adds a solid core.
        value = GROUND_GLASS_HU + 40.0 * np.cos(0.9 * x) * np.sin(0.8 * y)
        if nodule.texture == "part_solid":
            value[core] = SOLID_NODULE_HU
    if nodule.attached_to != "none":
        # An attached nodule abuts denser tissue (chest wall, rib, vessel): it shows only where
        # it is denser than what is there, so the wall keeps its bone and a vessel runs on.
        value = np.maximum(value, block)
    block[body] = value[body]
