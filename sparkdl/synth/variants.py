"""Geometry and pixel-encoding variants of the synthetic axial CT series.

Each series gets exactly one variant: everything else stays at the common case (head-first
supine, InstanceNumber along +z, signed pixels, slope 1, Explicit VR Little Endian,
uncompressed), so a test can check each variant on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from sparkdl.synth.phantom import Grid, Phantom

#: Variant names, in the order the first series of a cohort cycle through them.
VARIANTS: tuple[str, ...] = (
    "standard",  # head-first supine, the common case
    "feet_first",  # PatientPosition FFS, rows run toward the patient's right, normal toward feet
    "reversed_instance_number",  # InstanceNumber decreases as z increases
    "unsigned",  # PixelRepresentation 0, BitsStored 12, RescaleIntercept -1024
    "rescale_slope",  # RescaleSlope 0.5 or 2.0, stored values scaled accordingly
    "anisotropic",  # 5 mm slices, the finest pixel spacing of the range
    "rle_lossless",  # RLE Lossless transfer syntax
    "implicit_vr",  # Implicit VR Little Endian transfer syntax
)


@dataclass(frozen=True)
class SeriesSpec:
    """How one axial CT series samples the phantom and encodes its pixels."""

    variant: str
    patient_position: str
    instance_step: int  # +1: InstanceNumber grows along the slice normal; -1: against it
    pixel_representation: int
    bits_stored: int
    rescale_slope: float
    rescale_intercept: float
    transfer_syntax_uid: str
    pixel_spacing_mm: float
    slice_spacing_mm: float
    slice_thickness_mm: float
    write_spacing_between_slices: bool
    grid: Grid
    noise_hu: float

    @property
    def num_slices(self) -> int:
        return self.grid.shape[0]

    @property
    def stored_range(self) -> tuple[int, int]:
        """Smallest and largest stored value that BitsStored/PixelRepresentation allow."""
        if self.pixel_representation:
            return -(1 << (self.bits_stored - 1)), (1 << (self.bits_stored - 1)) - 1
        return 0, (1 << self.bits_stored) - 1


def voxel_half_diagonal(pixel_spacing_mm: float, slice_spacing_mm: float) -> float:
    """Largest distance between a point and its nearest voxel centre."""
    return float(np.sqrt(2 * (pixel_spacing_mm / 2) ** 2 + (slice_spacing_mm / 2) ** 2))


def draw_sampling(rng: np.random.Generator, variant: str, image_size: int) -> tuple[float, float]:
    """Pixel spacing and slice spacing (mm) of a series: FOV 300-380 mm over ``image_size``."""
    if variant == "anisotropic":
        return 300.0 / image_size, 5.0
    fov = float(rng.uniform(300, 380))
    slice_spacing = float(rng.choice([1.25, 2.0, 2.5, 3.0], p=[0.15, 0.25, 0.3, 0.3]))
    return round(fov / image_size, 4), slice_spacing


def make_series_spec(
    rng: np.random.Generator,
    variant: str,
    *,
    image_size: int,
    sampling: tuple[float, float],
    body_center: tuple[float, float],
    lung_z_range: tuple[float, float],
) -> SeriesSpec:
    """Place the series' grid around the chest so that both lungs are fully covered."""
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown synthetic series variant. Received: {variant!r}; expected one of {VARIANTS}"
        )
    pixel_spacing, slice_spacing = sampling
    lung_lo, lung_hi = lung_z_range
    extent = max(float(rng.uniform(250, 320)), lung_hi - lung_lo + 30.0)
    num_slices = int(np.ceil(extent / slice_spacing)) + 1
    slack = extent - (lung_hi - lung_lo)
    z_lo = lung_lo - float(rng.uniform(0.3, 0.7)) * slack
    z_lo = round(z_lo / 0.25) * 0.25  # scanners write short decimals
    fov = pixel_spacing * image_size
    rcx = round(body_center[0] + float(rng.uniform(-10, 10)), 1)
    rcy = round(body_center[1] + float(rng.uniform(-10, 10)), 1)
    half = fov / 2 - pixel_spacing / 2
    if variant == "feet_first":
        # FFS: IOP (-1,0,0, 0,1,0); normal = row x col = (0,0,-1), so slices run toward the feet.
        origin = (rcx + half, rcy - half, z_lo + (num_slices - 1) * slice_spacing)
        steps = ((0.0, 0.0, -slice_spacing), (0.0, pixel_spacing, 0.0), (-pixel_spacing, 0.0, 0.0))
        position = "FFS"
    else:
        origin = (rcx - half, rcy - half, z_lo)
        steps = ((0.0, 0.0, slice_spacing), (0.0, pixel_spacing, 0.0), (pixel_spacing, 0.0, 0.0))
        position = "HFS"
    grid = Grid(origin=origin, steps=steps, shape=(num_slices, image_size, image_size))
    unsigned = variant == "unsigned"
    slope = float(rng.choice([0.5, 2.0])) if variant == "rescale_slope" else 1.0
    intercept = -1024.0 if unsigned else float(rng.choice([0.0, -1024.0]))
    syntax = {"rle_lossless": RLELossless, "implicit_vr": ImplicitVRLittleEndian}.get(
        variant, ExplicitVRLittleEndian
    )
    thickness = slice_spacing if rng.uniform() < 0.7 else slice_spacing * 1.5
    return SeriesSpec(
        variant=variant,
        patient_position=position,
        instance_step=-1 if variant == "reversed_instance_number" else 1,
        pixel_representation=0 if unsigned else 1,
        bits_stored=12 if unsigned else 16,
        rescale_slope=slope,
        rescale_intercept=intercept,
        transfer_syntax_uid=str(syntax),
        pixel_spacing_mm=pixel_spacing,
        slice_spacing_mm=slice_spacing,
        slice_thickness_mm=thickness,
        write_spacing_between_slices=bool(rng.uniform() < 0.5),
        grid=grid,
        noise_hu=float(rng.uniform(15, 25)),
    )


def to_stored(hu: npt.NDArray[np.floating[Any]], spec: SeriesSpec) -> npt.NDArray[np.integer[Any]]:
    """HU → stored values (inverse of the modality LUT), clipped to the stored bit range."""
    lo, hi = spec.stored_range
    stored = np.rint((hu - spec.rescale_intercept) / spec.rescale_slope)
    dtype = np.int16 if spec.pixel_representation else np.uint16
    result: npt.NDArray[np.integer[Any]] = np.clip(stored, lo, hi).astype(dtype)
    return result


def localizer_grids(phantom: Phantom, image_size: int) -> list[Grid]:
    """A coronal (AP) and a lateral scout plane through the lungs, 520 mm square."""
    spacing = 520.0 / image_size
    half = 260.0 - spacing / 2
    cx, _ = phantom.center
    _, ly, lz = phantom.lung_centers[0]
    top = lz + half
    coronal = Grid(
        origin=(cx - half, ly, top),
        steps=((0.0, 1.0, 0.0), (0.0, 0.0, -spacing), (spacing, 0.0, 0.0)),
        shape=(1, image_size, image_size),
    )
    lateral = Grid(
        origin=(cx, ly - half, top),
        steps=((-1.0, 0.0, 0.0), (0.0, 0.0, -spacing), (0.0, spacing, 0.0)),
        shape=(1, image_size, image_size),
    )
    return [coronal, lateral]
