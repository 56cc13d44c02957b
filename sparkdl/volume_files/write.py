"""Writing volumes as MetaImage (``.mhd`` + ``.raw``, ``.mha``) and NIfTI-1 bytes.

For tests and synthetic data. The MetaImage header is laid out as SimpleITK writes LUNA16's
(same keys, same order); the direction goes into ``TransformMatrix`` one index axis after
the other (see :mod:`.metaimage`). NIfTI goes through nibabel with the LPS geometry turned
into a RAS+ affine, set as both sform and qform (code 1, scanner anatomical).
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..geometry import Geometry
from .metaimage import ELEMENT_TYPES

ByteOrder = Literal["little", "big"]
#: numpy type → the ElementType SimpleITK writes for it.
_ELEMENT_TYPE_OF = {
    "i1": "MET_CHAR",
    "u1": "MET_UCHAR",
    "i2": "MET_SHORT",
    "u2": "MET_USHORT",
    "i4": "MET_INT",
    "u4": "MET_UINT",
    "i8": "MET_LONG_LONG",
    "u8": "MET_ULONG_LONG",
    "f4": "MET_FLOAT",
    "f8": "MET_DOUBLE",
}
#: MetaIO's from-letters of an axis along +L, +P, +S (R→L is "R") and along -L, -P, -S.
_ORIENTATION = ("RAI", "LPS")


def write_metaimage(
    array_zyx: npt.ArrayLike,
    geometry: Geometry,
    data_file: str,
    *,
    byte_order: ByteOrder = "little",
    compressed: bool = False,
    element_type: str | None = None,
) -> tuple[bytes, bytes]:
    """An ``.mhd`` header naming ``data_file`` and that file's bytes (``.raw``, ``.zraw``).

    ``element_type`` (``MET_SHORT``, ...) defaults to the array's type; another one must
    hold every value of it (a safe cast).
    """
    return _encode(array_zyx, geometry, data_file, byte_order, compressed, element_type)


def write_mha(
    array_zyx: npt.ArrayLike,
    geometry: Geometry,
    *,
    byte_order: ByteOrder = "little",
    compressed: bool = False,
    element_type: str | None = None,
) -> bytes:
    """A single-file ``.mha``: the header, ``ElementDataFile = LOCAL``, then the data."""
    header, data = _encode(array_zyx, geometry, "LOCAL", byte_order, compressed, element_type)
    return header + data


def write_nifti(
    array_zyx: npt.ArrayLike,
    geometry: Geometry,
    *,
    scale: tuple[float, float] = (1.0, 0.0),
    compressed: bool = False,
) -> bytes:
    """A NIfTI-1 ``.nii`` (gzip-compressed ``.nii.gz`` when ``compressed``).

    ``array_zyx`` holds the stored values; ``scale`` is ``(scl_slope, scl_inter)``, so readers
    see ``slope * stored + inter``.
    """
    import nibabel

    array = _volume(array_zyx)
    affine = np.eye(4)
    direction = np.asarray(geometry.direction, dtype=np.float64).reshape(3, 3)
    spacing_xyz = np.asarray(geometry.spacing, dtype=np.float64)[::-1]
    flip = np.diag([-1.0, -1.0, 1.0])  # LPS ↔ RAS+
    affine[:3, :3] = flip @ direction * spacing_xyz
    affine[:3, 3] = flip @ np.asarray(geometry.origin, dtype=np.float64)
    image_class: Any = nibabel.Nifti1Image
    image = image_class(array.transpose(2, 1, 0), affine, dtype=array.dtype)
    image.header.set_sform(affine, code=1)
    image.header.set_qform(affine, code=1)  # a sheared direction loses its shear here only
    image.header.set_xyzt_units("mm")
    image.header.set_slope_inter(*scale)
    data: bytes = image.to_bytes()
    return gzip.compress(data, mtime=0) if compressed else data


def _volume(array_zyx: npt.ArrayLike) -> npt.NDArray[Any]:
    array = np.asarray(array_zyx)
    if array.ndim != 3 or 0 in array.shape:
        raise ValueError(
            f"A volume is a non-empty 3-D (z, y, x) array. Received: shape {array.shape}."
        )
    return array


def _encode(
    array_zyx: npt.ArrayLike,
    geometry: Geometry,
    data_file: str,
    byte_order: ByteOrder,
    compressed: bool,
    element_type: str | None,
) -> tuple[bytes, bytes]:
    array = _volume(array_zyx)
    if byte_order not in ("little", "big"):
        raise ValueError(f"byte_order must be 'little' or 'big'. Received: {byte_order!r}.")
    if element_type is None:
        element_type = _ELEMENT_TYPE_OF.get(array.dtype.str[1:])
        if element_type is None:
            raise ValueError(
                f"No MetaImage ElementType for arrays of {array.dtype}; pass element_type= "
                f"or convert the array."
            )
    if element_type not in ELEMENT_TYPES:
        raise ValueError(
            f"element_type must be one of {sorted(ELEMENT_TYPES)}. Received: {element_type!r}."
        )
    stored = np.dtype(ELEMENT_TYPES[element_type]).newbyteorder(
        "<" if byte_order == "little" else ">"
    )
    if not np.can_cast(array.dtype, stored, casting="safe"):
        raise ValueError(
            f"{element_type} cannot hold every value of an array of {array.dtype}. "
            f"Received: element_type={element_type!r}."
        )
    data = np.ascontiguousarray(array, dtype=stored).tobytes()  # x fastest
    if compressed:
        data = zlib.compress(data)
    direction = np.asarray(geometry.direction, dtype=np.float64).reshape(3, 3)
    lines = [
        ("ObjectType", "Image"),
        ("NDims", "3"),
        ("BinaryData", "True"),
        ("BinaryDataByteOrderMSB", str(byte_order == "big")),
        ("CompressedData", str(compressed)),
        *([("CompressedDataSize", str(len(data)))] if compressed else []),
        ("TransformMatrix", _numbers(direction.T.ravel())),  # one axis after the other
        ("Offset", _numbers(geometry.origin)),
        ("CenterOfRotation", "0 0 0"),
        ("AnatomicalOrientation", _anatomical_orientation(direction)),
        ("ElementSpacing", _numbers(geometry.spacing[::-1])),
        ("DimSize", " ".join(str(n) for n in array.shape[::-1])),
        ("ElementType", element_type),
        ("ElementDataFile", data_file),
    ]
    header = "".join(f"{key} = {value}\n" for key, value in lines)
    return header.encode("utf-8"), data


def _numbers(values: Any) -> str:
    """Shortest exact decimals, integers without ``.0`` (ITK writes 17 digits; same values)."""
    texts = (repr(float(v)) for v in np.asarray(values, dtype=np.float64).ravel())
    return " ".join(t[:-2] if t.endswith(".0") else t for t in texts)


def _anatomical_orientation(direction: npt.NDArray[np.float64]) -> str:
    """MetaIO's from-letters of each axis' main direction: identity (LPS+) is ``RAI``."""
    letters = []
    for axis in range(3):
        column = direction[:, axis]
        main = int(np.argmax(np.abs(column)))
        letters.append(_ORIENTATION[0 if column[main] > 0 else 1][main])
    return "".join(letters)
