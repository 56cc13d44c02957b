"""What reading a volume file gives, the error it raises, and the checks every format shares.

A :class:`VolumeFile` is an array indexed ``(z, y, x)`` and its :class:`~sparkdl.geometry.Geometry`
(LPS world, mm). Every refusal is a :class:`VolumeFileError` with a short ``reason`` code
from :data:`REASONS`; messages carry header values but never a file name, since LUNA16 file
names are series identifiers and the caller decides what to log.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..errors import InputError
from ..geometry import Geometry

#: The two families read here: MetaImage (.mhd + .raw, .mha) and NIfTI (.nii, .nii.gz).
Kind = Literal["metaimage", "nifti"]
#: Fetches the data file an .mhd names, by its path relative to the header's folder
#: (already checked: no ``..``, not absolute, not a URL); None when there is no such file.
Companion = Callable[[str], bytes | None]

#: Voxel count above which a header is refused before anything is allocated (2 GiB of int8).
DEFAULT_MAX_VOXELS = 2**31
#: Column norms of a direction matrix may differ from 1 by this much (values written with
#: six decimals are fine; a scaled matrix is not a direction).
_UNIT_TOLERANCE = 1e-3
#: |det| below which a direction matrix of unit columns is taken as singular.
_SINGULAR_DET = 1e-6

#: Every reason code a reader raises, with what it means.
REASONS: dict[str, str] = {
    "unknown_format": "neither a MetaImage nor a NIfTI file, by name and content",
    "malformed_header": "a MetaImage header line or value that cannot be parsed, or a "
    "required key missing",
    "unsupported_element_type": "an element (voxel) type other than 8/16/32/64-bit integers "
    "and 32/64-bit floats",
    "unsupported_dimensions": "not 3-D (a 4-D volume with a 4th size of 1 is accepted)",
    "unsupported_channels": "more than one value per voxel (ElementNumberOfChannels != 1)",
    "unsupported_encoding": "pixel values written as text (MetaImage BinaryData = False)",
    "unsupported_data_file": "MetaImage data spread over files (ElementDataFile LIST or a "
    "%-pattern)",
    "hostile_data_path": "ElementDataFile is absolute, a URL, contains '..' or a backslash",
    "missing_data_file": "the companion data file the header names is not there",
    "truncated_data": "fewer bytes of pixel data than the header's sizes need",
    "excess_data": "more bytes of pixel data than the header's sizes need",
    "corrupt_compressed_data": "a compressed stream that does not inflate, or inflates to "
    "the wrong size",
    "invalid_size": "a dimension size below 1",
    "too_many_voxels": "more voxels than the max_voxels limit",
    "invalid_spacing": "a voxel spacing that is not finite and > 0",
    "invalid_origin": "an origin that is not finite",
    "invalid_direction": "a direction matrix that is not finite, singular, or whose columns "
    "are not unit vectors",
    "unreadable_nifti": "a NIfTI header that nibabel refuses, or a .hdr/.img pair header",
}


class VolumeFileError(InputError):
    """A volume file cannot be read; ``reason`` is a code of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{detail} (reason: {reason})")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, eq=False)
class VolumeFile:
    """A volume read from a file: voxels indexed ``(z, y, x)`` and where they lie.

    ``array_zyx`` is C-contiguous, native byte order, writable, in the stored integer or
    float type (float when a NIfTI scale was applied).
    """

    array_zyx: npt.NDArray[Any]
    geometry: Geometry
    kind: Kind


def shown(value: str, limit: int = 60) -> str:
    """A header value as it may appear in a message: quoted and cut to ``limit`` characters."""
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def check_shape(size_xyz: Sequence[int], max_voxels: int) -> tuple[int, int, int]:
    """Array shape ``(z, y, x)`` of sizes ``(x, y, z)``, checked before any allocation."""
    if any(n < 1 for n in size_xyz):
        raise VolumeFileError(
            "invalid_size", f"Every dimension size must be >= 1. Received: {list(size_xyz)}."
        )
    num_voxels = math.prod(size_xyz)  # Python ints: no overflow, whatever the header says
    if num_voxels > max_voxels:
        raise VolumeFileError(
            "too_many_voxels",
            f"Sizes {list(size_xyz)} make {num_voxels} voxels, more than max_voxels="
            f"{max_voxels}. Raise max_voxels if such volumes are expected.",
        )
    x, y, z = size_xyz
    return z, y, x


def checked_geometry(
    spacing_xyz: npt.ArrayLike, origin_xyz: npt.ArrayLike, direction: npt.ArrayLike
) -> Geometry:
    """A :class:`Geometry` from spacing and origin ``(x, y, z)`` and a 3×3 direction matrix.

    ``direction``'s columns are the LPS directions of the x, y and z index axes. Raises
    ``invalid_spacing``, ``invalid_origin`` or ``invalid_direction`` instead of
    :class:`Geometry`'s ``ValueError``.
    """
    spacing = np.asarray(spacing_xyz, dtype=np.float64)
    origin = np.asarray(origin_xyz, dtype=np.float64)
    matrix = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise VolumeFileError(
            "invalid_spacing", f"Spacing must be finite and > 0 mm. Received: {spacing.tolist()}."
        )
    if not np.all(np.isfinite(origin)):
        raise VolumeFileError(
            "invalid_origin", f"Origin must be finite. Received: {origin.tolist()}."
        )
    if not np.all(np.isfinite(matrix)):
        raise VolumeFileError(
            "invalid_direction", f"Direction must be finite. Received: {matrix.ravel().tolist()}."
        )
    norms = np.linalg.norm(matrix, axis=0)
    if np.any(np.abs(norms - 1) > _UNIT_TOLERANCE):
        raise VolumeFileError(
            "invalid_direction",
            f"Direction columns must be unit vectors; their lengths are {norms.tolist()}.",
        )
    if abs(float(np.linalg.det(matrix))) < _SINGULAR_DET:
        raise VolumeFileError(
            "invalid_direction",
            f"Direction matrix is singular. Received: {matrix.ravel().tolist()}.",
        )
    return Geometry(
        spacing=(float(spacing[2]), float(spacing[1]), float(spacing[0])),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=tuple(float(v) for v in matrix.ravel()),
    )


def decode_array(
    buffer: bytes | memoryview, dtype: np.dtype[Any], shape_zyx: tuple[int, int, int]
) -> npt.NDArray[Any]:
    """Voxels stored x fastest (as both formats store them) → a native, writable (z, y, x) array.

    ``buffer`` must hold exactly the voxels' bytes.
    """
    stored = np.frombuffer(buffer, dtype=dtype).reshape(shape_zyx)
    return stored.astype(dtype.newbyteorder("="), copy=True)
