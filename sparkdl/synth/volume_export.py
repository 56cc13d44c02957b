"""A synthetic cohort's axial series as volume files, named as LUNA16 names its scans."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from sparkdl.synth.phantom import Grid

VolumeFormat = Literal["dicom", "mhd", "nifti"]


def write_volumes(
    folder: Path, volumes: list[tuple[str, Grid, np.ndarray]], volume_format: VolumeFormat
) -> int:
    """Each axial series as ``<uid>.mhd`` + ``<uid>.raw`` or ``<uid>.nii.gz``; files written."""
    from sparkdl.geometry import Geometry, hu_to_int16
    from sparkdl.volume_files import write_metaimage, write_nifti

    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for uid, grid, hu in volumes:
        steps = np.asarray(grid.steps, dtype=np.float64)  # rows: the k, r, c index steps
        spacing = np.linalg.norm(steps, axis=1)
        direction = (steps[::-1] / spacing[::-1, None]).T  # columns: x (c), y (r), z (k)
        geometry = Geometry(tuple(spacing), grid.origin, tuple(direction.ravel()))
        array = hu_to_int16(np.asarray(hu))[0]
        if volume_format == "mhd":
            header, data = write_metaimage(array, geometry, f"{uid}.raw")
            (folder / f"{uid}.mhd").write_bytes(header)
            (folder / f"{uid}.raw").write_bytes(data)
            written += 2
        else:
            (folder / f"{uid}.nii.gz").write_bytes(write_nifti(array, geometry, compressed=True))
            written += 1
    return written
