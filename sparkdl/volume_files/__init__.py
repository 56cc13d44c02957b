"""CT volumes read from bytes: MetaImage (``.mhd`` + ``.raw``, ``.mha``) and NIfTI (``.nii[.gz]``).

LUNA16's scans are MetaImage pairs; other public collections ship NIfTI. Both read into one
:class:`VolumeFile`: an array indexed ``(z, y, x)`` and its LPS
:class:`~sparkdl.geometry.Geometry`::

    from sparkdl.volume_files import read_volume
    volume = read_volume("scan.mhd", header_bytes, lambda rel: raw_files.get(rel))
    volume.geometry.to_voxel((x, y, z))  # an annotations.csv point → fractional (z, y, x)

Modules: :mod:`.volume` (result, error, shared checks), :mod:`.metaimage`, :mod:`.nifti`,
:mod:`.read` (sniff and dispatch), :mod:`.write` (for tests and synthetic data).
"""

from __future__ import annotations

from .read import SNIFF_BYTES, read_volume, sniff
from .volume import (
    DEFAULT_MAX_VOXELS,
    REASONS,
    Companion,
    Kind,
    VolumeFile,
    VolumeFileError,
)
from .write import write_metaimage, write_mha, write_nifti

__all__ = [
    "DEFAULT_MAX_VOXELS",
    "REASONS",
    "SNIFF_BYTES",
    "Companion",
    "Kind",
    "VolumeFile",
    "VolumeFileError",
    "read_volume",
    "sniff",
    "write_metaimage",
    "write_mha",
    "write_nifti",
]
