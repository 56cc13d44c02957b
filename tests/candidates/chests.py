"""Synthetic chests rendered for the candidate tests (sparkdl.synth phantoms, no DICOM)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sparkdl.geometry import Geometry, hu_to_int16
from sparkdl.synth.anatomy import make_phantom
from sparkdl.synth.phantom import Grid, Phantom, add_noise, render_hu
from sparkdl.synth.phantom import lung_mask as true_lungs

Volume = npt.NDArray[np.int16]


@dataclass(frozen=True)
class Chest:
    """A rendered synthetic chest: HU, where it lies, and the phantom drawn."""

    hu: Volume
    geometry: Geometry
    grid: Grid
    phantom: Phantom


def render_chest(
    seed: int,
    *,
    pleural_fraction: float = 0.0,
    vascular_fraction: float = 0.0,
    num_nodules: int = 4,
    pixel_mm: float = 1.6,
    slice_mm: float = 2.0,
    size: int = 196,
) -> Chest:
    """An axial head-first chest CT of a synthetic patient (sparkdl.synth), lungs covered
    with 15 mm to spare, 20 HU of noise; ~0.5 s at the defaults."""
    rng = np.random.default_rng(seed)
    phantom = make_phantom(
        rng,
        min_nodule_radius_mm=2.0,
        num_nodules=num_nodules,
        pleural_fraction=pleural_fraction,
        vascular_fraction=vascular_fraction,
    )
    lo, hi = phantom.lung_z_range
    num_slices = int((hi - lo + 30.0) / slice_mm) + 1
    half = (size - 1) * pixel_mm / 2.0
    origin = (phantom.center[0] - half, phantom.center[1] - half, lo - 15.0)
    steps = ((0.0, 0.0, slice_mm), (0.0, pixel_mm, 0.0), (pixel_mm, 0.0, 0.0))
    grid = Grid(origin, steps, (num_slices, size, size))
    hu = hu_to_int16(add_noise(render_hu(phantom, grid), rng, 20.0))[0]
    geometry = Geometry((slice_mm, pixel_mm, pixel_mm), origin, (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return Chest(hu, geometry, grid, phantom)


def truth(chest: Chest) -> npt.NDArray[np.bool_]:
    """The phantom's lung parenchyma on the chest's voxels."""
    shape = chest.grid.shape
    x, y, z = chest.grid.world(*(np.arange(n) for n in shape))
    return true_lungs(chest.phantom, x, y, z)


def voxel(chest: Chest, xyz: tuple[float, float, float]) -> tuple[int, int, int]:
    k, r, c = np.rint(chest.geometry.to_voxel(xyz)).astype(int)
    return int(k), int(r), int(c)


def paint_capsule(
    chest: Chest, a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], radius: float
) -> npt.NDArray[np.bool_]:
    """Air (-1000 HU) in the capsule from ``a`` to ``b`` (world mm); returns where."""
    x, y, z = chest.grid.world(*(np.arange(n) for n in chest.grid.shape))
    d = b - a
    t = np.clip(((x - a[0]) * d[0] + (y - a[1]) * d[1] + (z - a[2]) * d[2]) / (d @ d), 0, 1)
    inside = (x - a[0] - t * d[0]) ** 2 + (y - a[1] - t * d[1]) ** 2 + (
        z - a[2] - t * d[2]
    ) ** 2 < radius**2
    chest.hu[inside] = -1000
    return np.asarray(inside)
