"""NIfTI-1 and NIfTI-2 volumes (``.nii``, ``.nii.gz``), their header read by nibabel.

nibabel (MIT, NIPY) parses and checks the header and computes the sform and qform
affines; the voxels are then taken straight from the bytes (x fastest on disk, which is
the ``(z, y, x)`` C order), so a gzip stream is inflated once and bounded by the header's
own size, and nothing is copied twice.

Geometry, as the NIfTI-1 header documentation (``nifti1.h``) defines it, with the
precedence of nibabel's ``get_best_affine``: the sform (method 3) when ``sform_code > 0``,
else the qform (method 2) when ``qform_code > 0``, else method 1, ``x = pixdim[1] * i``
(and so on) with no rotation and no offset, "present mainly for compatibility with
ANALYZE 7.5". The spatial unit of ``xyzt_units`` is applied (metres and microns become
mm; unknown is taken as mm). NIfTI world is RAS+: x and y are negated to give LPS. The
4×4 affine's columns give the spacing (their norms) and the direction (the normalised
columns); its last column is the origin.

Stored values become ``scl_slope * stored + scl_inter`` when ``scl_slope`` is finite and
not 0 (NIfTI-1: "if the scl_slope field is nonzero"; 0, NaN and ±inf mean no scaling, as
nibabel reads them), in float32 for stored types up to 16 bits and float64 above (numpy's
promotion with float32, as nibabel scales), unless slope is 1 and intercept 0.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from ..geometry import Geometry
from .volume import (
    DEFAULT_MAX_VOXELS,
    VolumeFile,
    VolumeFileError,
    check_shape,
    checked_geometry,
    decode_array,
)

logger = logging.getLogger(__name__)

#: sizeof_hdr → header size; NIfTI-1 is 348 bytes, NIfTI-2 540.
HEADER_SIZES = (348, 540)
_GZIP_MAGIC = b"\x1f\x8b"
#: NIfTI ``xyzt_units`` spatial units (as nibabel names them) → mm.
_UNIT_MM = {"unknown": 1.0, "mm": 1.0, "meter": 1000.0, "micron": 0.001}
#: RAS+ → LPS: negate x and y.
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def sizeof_hdr(head: bytes) -> int | None:
    """348 or 540 when the first 4 bytes say so in either byte order, else None."""
    if len(head) < 4:
        return None
    for order in ("little", "big"):
        size = int.from_bytes(head[:4], order)
        if size in HEADER_SIZES:
            return size
    return None


def gunzip_head(data: bytes, size: int) -> bytes:
    """Up to ``size`` leading bytes of a gzip stream (as many as ``data`` holds); b"" if none."""
    try:
        return zlib.decompressobj(wbits=31).decompress(data, size)
    except zlib.error:
        return b""


def read_nifti(data: bytes, *, max_voxels: int = DEFAULT_MAX_VOXELS) -> VolumeFile:
    """Read a single-file NIfTI-1 or NIfTI-2 (gzip-compressed or not) from its bytes."""
    if data[:2] != _GZIP_MAGIC:
        return _read(memoryview(data), None, max_voxels)
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        head = bytearray(max(HEADER_SIZES))
        size = _gunzip_into(stream, memoryview(head))
        return _read(memoryview(head)[:size], stream, max_voxels)


def _read(head: memoryview, stream: gzip.GzipFile | None, max_voxels: int) -> VolumeFile:
    """``head`` is the whole file, or its first bytes when the rest is still in ``stream``."""
    header = _header(bytes(head[: max(HEADER_SIZES)]))
    shape_zyx, dtype, offset, expected = _layout(header, max_voxels)
    geometry = _geometry(header)
    raw = head
    if stream is not None:  # one buffer for all, one byte more than needed: bounded
        buffer = bytearray(max(expected + 1, len(head)))
        buffer[: len(head)] = head
        size = len(head) + _gunzip_into(stream, memoryview(buffer)[len(head) :])
        raw = memoryview(buffer)[:size]
    if len(raw) != expected:
        raise VolumeFileError(
            "truncated_data" if len(raw) < expected else "excess_data",
            f"{len(raw)} bytes of NIfTI; vox_offset {offset} + dim × bitpix/8 needs {expected}.",
        )
    stored = decode_array(raw[offset:], dtype, shape_zyx)
    return VolumeFile(_scaled(stored, header), geometry, "nifti")


def _gunzip_into(stream: gzip.GzipFile, buffer: memoryview) -> int:
    """Fill ``buffer`` from the gzip stream as far as it goes; how many bytes came."""
    try:
        return stream.readinto(buffer)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise VolumeFileError(
            "corrupt_compressed_data", f"The gzip stream does not inflate ({exc})."
        ) from None


def _header(head: bytes) -> Any:
    """nibabel's Nifti1Header or Nifti2Header of the first bytes, checked as nibabel checks."""
    import nibabel

    size = sizeof_hdr(head)
    if size is None or len(head) < size:
        raise VolumeFileError(
            "unreadable_nifti", "No NIfTI header: sizeof_hdr is not 348 or 540, or too short."
        )
    header_class: Any = nibabel.Nifti1Header if size == 348 else nibabel.Nifti2Header
    try:
        header = header_class(binaryblock=head[:size], check=False)
        header.check_fix(logger=logger, error_level=40)  # nibabel's default level
        header.get_slope_inter()  # refuses a valid slope with a non-finite intercept
    except nibabel.spatialimages.HeaderDataError as exc:
        raise VolumeFileError("unreadable_nifti", f"nibabel refuses the header: {exc}.") from None
    if header["magic"].item() != header.single_magic:
        raise VolumeFileError(
            "unreadable_nifti",
            "The header is one of a .hdr/.img pair (magic ni1/ni2); only single .nii files "
            "are read.",
        )
    return header


def _layout(header: Any, max_voxels: int) -> tuple[tuple[int, int, int], np.dtype[Any], int, int]:
    """Array shape ``(z, y, x)``, stored type, data offset and file size, checked first."""
    shape = [int(n) for n in header.get_data_shape()]
    if len(shape) < 3 or any(n != 1 for n in shape[3:]):
        raise VolumeFileError(
            "unsupported_dimensions",
            f"The image is {len(shape)}-D with sizes {shape}; only 3-D volumes (or a 4th "
            f"size of 1) are read.",
        )
    shape_zyx = check_shape(shape[:3], max_voxels)
    dtype = header.get_data_dtype()
    if dtype.kind not in "iuf" or dtype.itemsize > 8:
        raise VolumeFileError(
            "unsupported_element_type",
            f"The NIfTI datatype is {dtype}; expected 8/16/32/64-bit integers or 32/64-bit floats.",
        )
    offset = int(header.get_data_offset())
    if offset < header.sizeof_hdr:
        raise VolumeFileError(
            "unreadable_nifti",
            f"vox_offset {offset} lies inside the {header.sizeof_hdr}-byte header.",
        )
    return shape_zyx, dtype, offset, offset + math.prod(shape_zyx) * dtype.itemsize


def _geometry(header: Any) -> Geometry:
    """Geometry of the best affine (sform, qform, pixdim), RAS → LPS, in mm."""
    import nibabel

    try:
        if int(header["sform_code"]) > 0:
            affine = header.get_sform()
        elif int(header["qform_code"]) > 0:
            affine = header.get_qform()
        else:
            affine = np.diag([*np.asarray(header["pixdim"][1:4], dtype=np.float64), 1.0])
    except nibabel.spatialimages.HeaderDataError as exc:  # pixdim < 0 in the qform
        raise VolumeFileError("invalid_spacing", f"nibabel refuses the qform: {exc}.") from None
    unit = _UNIT_MM.get(header.get_xyzt_units()[0], 1.0)
    matrix = _RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)[:3, :3] * unit
    origin = _RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)[:3, 3] * unit
    spacing = np.linalg.norm(matrix, axis=0)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        return checked_geometry(spacing, origin, matrix)  # raises invalid_spacing
    return checked_geometry(spacing, origin, matrix / spacing)  # normalised columns


def _scaled(stored: npt.NDArray[Any], header: Any) -> npt.NDArray[Any]:
    slope, inter = header.get_slope_inter()
    if slope is None or (slope == 1 and inter == 0):
        return stored
    scaled = stored.astype(np.result_type(stored.dtype, np.float32))
    scaled *= slope
    scaled += inter
    return scaled
