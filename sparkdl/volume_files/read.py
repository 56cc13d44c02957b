"""Which format a volume file is (:func:`sniff`), and reading it from bytes (:func:`read_volume`).

Files come from folders or from inside zip and tar archives, so everything here works on
bytes; an ``.mhd``'s data file is fetched through ``companion``, e.g. for archive members::

    folder = posixpath.dirname(name)
    volume = read_volume(name, data, lambda rel: members.get(posixpath.join(folder, rel)))
"""

from __future__ import annotations

import re

from .metaimage import read_metaimage
from .nifti import gunzip_head, read_nifti, sizeof_hdr
from .volume import DEFAULT_MAX_VOXELS, Companion, Kind, VolumeFile, VolumeFileError

#: How many leading bytes :func:`sniff` needs (a gzip header and the first header bytes).
SNIFF_BYTES = 1024
#: The keys MetaIO writes first (Comment only when set): the first line of a MetaImage.
_FIRST_KEY = re.compile(rb"^\s*(ObjectType|NDims|Comment)\s*[=:]")


def sniff(name: str, head: bytes) -> Kind | None:
    """The kind of a file from its name suffix AND its first bytes, or None.

    MetaImage: ``.mhd`` or ``.mha`` whose first line is ObjectType, NDims (or Comment).
    NIfTI: ``.nii`` or ``.nii.gz`` whose sizeof_hdr (first 4 bytes, either byte order, after
    gunzip when the bytes are gzip) is 348 or 540.
    """
    lower = name.lower()
    if lower.endswith((".mhd", ".mha")):
        return "metaimage" if _FIRST_KEY.match(head[:SNIFF_BYTES]) else None
    if lower.endswith((".nii", ".nii.gz")):
        if head[:2] == b"\x1f\x8b":
            head = gunzip_head(head[:SNIFF_BYTES], 4)
        return "nifti" if sizeof_hdr(head) is not None else None
    return None


def read_volume(
    name: str, data: bytes, companion: Companion, *, max_voxels: int = DEFAULT_MAX_VOXELS
) -> VolumeFile:
    """Read the volume in ``data``, a file called ``name`` (only its suffix is used).

    ``companion(relative_path)`` returns the bytes of the data file an ``.mhd`` names,
    relative to the header's folder, or None when it is missing. Headers announcing more
    than ``max_voxels`` voxels are refused before any allocation. Raises
    :class:`VolumeFileError` with a ``reason`` code (:data:`~.volume.REASONS`).
    """
    kind = sniff(name, data[:SNIFF_BYTES])
    if kind is None:
        raise VolumeFileError(
            "unknown_format",
            "Not a MetaImage (.mhd/.mha starting with ObjectType or NDims) nor a NIfTI "
            "(.nii/.nii.gz with sizeof_hdr 348 or 540).",
        )
    if kind == "metaimage":
        return read_metaimage(data, companion, max_voxels=max_voxels)
    return read_nifti(data, max_voxels=max_voxels)
