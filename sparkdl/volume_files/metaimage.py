"""MetaImage volumes (ITK's MetaIO format): ``.mhd`` header + ``.raw`` data, or one ``.mha``.

LUNA16 ships its 888 LIDC scans as ``<seriesuid>.mhd`` + ``<seriesuid>.raw`` written by
SimpleITK. The header is a few ``Key = Value`` text lines, parsed here rather than through
SimpleITK: the SimpleITK 2.5.7 wheel is 53 MB (264 MB installed) and reads only from paths,
so every member of a zip or tar would first have to be written to disk; this module reads
bytes and needs numpy alone.

What follows the MetaIO source (``metaObject.cxx``, ``metaImage.cxx``, ``metaUtils.cxx``)
and ITK's reader (``itkMetaImageIO.cxx``, ``itkImageFileReader.hxx``):

* Keys are matched exactly (case-sensitive); ``=`` or ``:`` ends a key. Unknown keys are
  ignored, as MetaIO keeps them aside. ``ElementDataFile`` is the last header line.
* Aliases: ``Origin`` over ``Offset`` over ``Position``; ``TransformMatrix`` over
  ``Rotation`` over ``Orientation`` (MetaIO reads them in that order, the last one wins).
  ``ElementSpacing`` is the spacing; ``ElementSize`` only stands in when it is absent; 1 mm
  when both are. ``BinaryDataByteOrderMSB`` over ``ElementByteOrderMSB``; absent means
  little-endian (MetaIO assumes the reading machine's order: these files come from x86).
  A boolean is true when its value starts with ``T``, ``t`` or ``1``.
* Direction: ITK's ``MetaImageIO::ReadImageInformation`` gives index axis ``i`` the
  direction ``TransformMatrix[i*N : i*N+N]`` and ``ImageFileReader`` stores axis ``i`` as
  column ``i`` of the image's direction matrix ("direction cosines are stored as columns");
  the writer does the reverse. So the values, read three at a time, are the LPS unit
  vectors of the x, y and z index axes: the direction matrix in column-major order.
* ``Offset`` is the LPS position (mm) of the centre of voxel (0, 0, 0). ITK ignores
  ``AnatomicalOrientation`` and ``CenterOfRotation`` when it reads an image; so does this.
* ``ElementDataFile = LOCAL`` (or ``Local``, ``local``): data follow the header's last line.
  Otherwise a file name relative to the header's folder; ``LIST`` and ``%d`` patterns
  (one file per slice) are refused.
* ``HeaderSize`` skips that many bytes from the start of the data file (of the ``.mha`` for
  LOCAL, as MetaIO seeks from the stream's start); ``-1`` means the data are its last bytes.
* ``CompressedData = True``: a zlib or gzip stream (MetaIO inflates with windowBits 47) of
  ``CompressedDataSize`` bytes, or of the rest of the file when that is absent or 0.
* MetaIO reads ``DimSize × element size`` bytes and ignores the rest; a longer data file is
  refused here (``excess_data``): it means the header does not describe the file (wrong
  ``DimSize`` or ``ElementType``), and its first bytes would make a wrong image silently.
"""

from __future__ import annotations

import math
import posixpath
import re
import zlib
from dataclasses import dataclass

import numpy as np

from ..geometry import Float64Array
from .volume import (
    DEFAULT_MAX_VOXELS,
    Companion,
    VolumeFile,
    VolumeFileError,
    check_shape,
    checked_geometry,
    decode_array,
    shown,
)

#: ElementType → numpy type (MetaIO ``metaTypes.h``: MET_LONG is 32-bit). Byte order apart.
ELEMENT_TYPES: dict[str, str] = {
    "MET_CHAR": "i1",
    "MET_UCHAR": "u1",
    "MET_SHORT": "i2",
    "MET_USHORT": "u2",
    "MET_INT": "i4",
    "MET_UINT": "u4",
    "MET_LONG": "i4",
    "MET_ULONG": "u4",
    "MET_LONG_LONG": "i8",
    "MET_ULONG_LONG": "u8",
    "MET_FLOAT": "f4",
    "MET_DOUBLE": "f8",
}
_LOCAL = ("LOCAL", "Local", "local")
#: A real header is a few hundred bytes; ElementDataFile must come within this many.
_MAX_HEADER_BYTES = 65536
#: ``scheme:`` at the start: a URL (http:, file:) or a Windows drive (C:).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class MetaImageHeader:
    """The parts of a MetaImage header that place and decode the voxels (3-D, x y z order)."""

    dim_size: tuple[int, int, int]
    element_type: str
    msb: bool
    compressed: bool
    compressed_size: int | None
    spacing: tuple[float, float, float]
    offset: tuple[float, float, float]
    #: As written: the x, y, z axes' LPS directions one after the other.
    transform_matrix: tuple[float, ...]
    #: "LOCAL", or a checked path relative to the header's folder.
    data_file: str
    header_size: int
    #: Offset of the first byte after the header text.
    data_start: int

    @property
    def direction(self) -> Float64Array:
        """3×3 matrix whose columns are the x, y, z axes' directions (the Geometry convention)."""
        return np.asarray(self.transform_matrix, dtype=np.float64).reshape(3, 3).T


def read_metaimage(
    data: bytes, companion: Companion, *, max_voxels: int = DEFAULT_MAX_VOXELS
) -> VolumeFile:
    """Read an ``.mha`` or ``.mhd`` from its bytes; ``companion`` fetches an .mhd's data file."""
    header = parse_header(data)
    shape_zyx = check_shape(header.dim_size, max_voxels)
    geometry = checked_geometry(header.spacing, header.offset, header.direction)
    dtype = np.dtype(ELEMENT_TYPES[header.element_type]).newbyteorder(">" if header.msb else "<")
    expected = math.prod(shape_zyx) * dtype.itemsize
    if header.data_file == "LOCAL":
        source, start = data, header.data_start
    else:
        fetched = companion(header.data_file)
        if fetched is None:
            raise VolumeFileError(
                "missing_data_file",
                "The data file named by ElementDataFile was not found beside the header.",
            )
        source, start = fetched, 0
    payload = _payload(memoryview(source), start, header, expected)
    return VolumeFile(decode_array(payload, dtype, shape_zyx), geometry, "metaimage")


def parse_header(data: bytes) -> MetaImageHeader:
    """Parse and check the header text at the start of ``data`` (nothing is read past it).

    Long: one branch per MetaImage key, in the order ITK documents them.
    """
    fields, data_start = _fields(data)
    if fields.get("ObjectType", "Image") != "Image":
        raise VolumeFileError(
            "malformed_header",
            f"ObjectType is {shown(fields['ObjectType'])}; a volume has ObjectType = Image.",
        )
    ndims = _integer(fields, "NDims")
    if ndims is None:
        raise VolumeFileError("malformed_header", "The header has no NDims line.")
    if ndims not in (3, 4):
        raise VolumeFileError(
            "unsupported_dimensions", f"NDims is {ndims}; only 3-D volumes are read."
        )
    dims = [int(v) for v in _numbers(fields, "DimSize", ndims, integral=True) or ()]
    if not dims:
        raise VolumeFileError("malformed_header", "The header has no DimSize line.")
    if ndims == 4 and dims[3] != 1:
        raise VolumeFileError(
            "unsupported_dimensions",
            f"NDims is 4 with DimSize {dims}; only a 4th size of 1 is accepted.",
        )
    channels = _integer(fields, "ElementNumberOfChannels")
    if channels is not None and channels != 1:
        raise VolumeFileError(
            "unsupported_channels",
            f"ElementNumberOfChannels is {channels}; only 1 value per voxel is read.",
        )
    element_type = fields.get("ElementType")
    if element_type is None:
        raise VolumeFileError("malformed_header", "The header has no ElementType line.")
    if element_type not in ELEMENT_TYPES:
        raise VolumeFileError(
            "unsupported_element_type",
            f"ElementType is {shown(element_type)}; expected one of {sorted(ELEMENT_TYPES)}.",
        )
    if not _boolean(fields, ("BinaryData",), default=True):
        raise VolumeFileError(
            "unsupported_encoding",
            "BinaryData is False (voxel values as text); only binary data are read.",
        )
    compressed = _boolean(fields, ("CompressedData",), default=False)
    header_size = _integer(fields, "HeaderSize") or 0
    if header_size < -1 or (header_size == -1 and compressed):
        raise VolumeFileError(
            "malformed_header",
            f"HeaderSize must be >= 0, or -1 for uncompressed data. Received: {header_size}.",
        )
    compressed_size = _integer(fields, "CompressedDataSize")
    if compressed_size is not None and compressed_size < 0:
        raise VolumeFileError(
            "malformed_header", f"CompressedDataSize must be >= 0. Received: {compressed_size}."
        )
    spacing = _numbers(fields, "ElementSpacing", ndims) or _numbers(fields, "ElementSize", ndims)
    offset = (
        _numbers(fields, "Origin", ndims)
        or _numbers(fields, "Offset", ndims)
        or _numbers(fields, "Position", ndims)
    )
    matrix = (
        _numbers(fields, "TransformMatrix", ndims * ndims)
        or _numbers(fields, "Rotation", ndims * ndims)
        or _numbers(fields, "Orientation", ndims * ndims)
        or np.eye(ndims).ravel().tolist()
    )
    return MetaImageHeader(
        dim_size=(dims[0], dims[1], dims[2]),
        element_type=element_type,
        msb=_boolean(fields, ("BinaryDataByteOrderMSB", "ElementByteOrderMSB"), default=False),
        compressed=compressed,
        compressed_size=compressed_size or None,  # MetaIO: 0 means "the rest of the file"
        spacing=(spacing[0], spacing[1], spacing[2]) if spacing else (1.0, 1.0, 1.0),
        offset=(offset[0], offset[1], offset[2]) if offset else (0.0, 0.0, 0.0),
        # Of a 4-D matrix, the first three components of the first three axes.
        transform_matrix=tuple(matrix[axis * ndims + c] for axis in range(3) for c in range(3)),
        data_file=_data_file(fields["ElementDataFile"]),
        header_size=header_size,
        data_start=data_start,
    )


def _fields(data: bytes) -> tuple[dict[str, str], int]:
    """``{key: value}`` of the header lines up to ElementDataFile, and where the data start."""
    fields: dict[str, str] = {}
    limit = min(len(data), _MAX_HEADER_BYTES)
    pos = 0
    while pos < limit:
        end = data.find(b"\n", pos, limit)
        if end < 0:
            if limit < len(data):
                break
            end = len(data)  # a last line without a newline
        try:
            line = data[pos:end].decode("utf-8").strip()
        except UnicodeDecodeError:
            raise VolumeFileError(
                "malformed_header", "The header text is not UTF-8 (or ASCII)."
            ) from None
        pos = end + 1
        if not line:
            continue
        match = re.search(r"[=:]", line)
        key = line[: match.start()].strip() if match else ""
        if not key:
            raise VolumeFileError(
                "malformed_header", f"A header line is not 'Key = Value': {shown(line)}."
            )
        if key in fields:
            raise VolumeFileError("malformed_header", f"The key {shown(key)} appears twice.")
        fields[key] = line[match.end() :].strip() if match else ""
        if key == "ElementDataFile":
            return fields, min(pos, len(data))
    raise VolumeFileError(
        "malformed_header",
        f"No ElementDataFile line within the first {_MAX_HEADER_BYTES} bytes; "
        f"is this a MetaImage header?",
    )


def _numbers(
    fields: dict[str, str], key: str, count: int, *, integral: bool = False
) -> list[float] | None:
    """The ``count`` numbers of a field, or None when it is absent."""
    value = fields.get(key)
    if value is None:
        return None
    try:
        numbers = [float(v) for v in value.split()]
    except ValueError:
        numbers = []
    if len(numbers) != count or (integral and not all(v.is_integer() for v in numbers)):
        kind = "integers" if integral else "numbers"
        raise VolumeFileError(
            "malformed_header", f"{key} must be {count} {kind}. Received: {shown(value)}."
        )
    return numbers


def _integer(fields: dict[str, str], key: str) -> int | None:
    numbers = _numbers(fields, key, 1, integral=True)
    return None if numbers is None else int(numbers[0])


def _boolean(fields: dict[str, str], keys: tuple[str, ...], *, default: bool) -> bool:
    """The first of ``keys`` present: true when it starts with T, t or 1 (as MetaIO reads it)."""
    for key in keys:
        if key in fields:
            return fields[key][:1] in ("T", "t", "1")
    return default


def _data_file(value: str) -> str:
    """``LOCAL``, or ElementDataFile as a safe path relative to the header's folder."""
    if value in _LOCAL:
        return "LOCAL"
    if not value:
        raise VolumeFileError("malformed_header", "ElementDataFile is empty.")
    if value.startswith("LIST") or "%" in value:
        raise VolumeFileError(
            "unsupported_data_file",
            "ElementDataFile is a LIST or a %-pattern (one file per slice); only one data "
            "file or LOCAL data are read.",
        )
    problems = (
        (value.startswith(("/", "~")), "an absolute path"),
        (_SCHEME.match(value) is not None, "a URL or a drive"),
        ("\\" in value, "a backslash"),
        (any(ord(c) < 32 for c in value), "a control character"),
        (".." in value.split("/"), "a '..' component"),
    )
    for found, what in problems:
        if found:
            raise VolumeFileError(
                "hostile_data_path",
                f"ElementDataFile holds {what}; it must name a file in or below the header's "
                f"folder.",
            )
    return posixpath.normpath(value)


def _payload(
    source: memoryview, start: int, header: MetaImageHeader, expected: int
) -> bytes | memoryview:
    """The voxels' bytes of a data file (inflated when compressed), exactly ``expected`` long."""
    if header.header_size > 0:
        if header.header_size < start:
            raise VolumeFileError(
                "malformed_header",
                f"HeaderSize {header.header_size} points inside the header text, which ends "
                f"at byte {start}.",
            )
        start = header.header_size
    elif header.header_size == -1:
        start = max(start, len(source) - expected)
    data = source[start:]
    stored = header.compressed_size if header.compressed else expected
    if stored is not None and len(data) != stored:
        what = "CompressedDataSize" if header.compressed else "DimSize × element size"
        raise VolumeFileError(
            "truncated_data" if len(data) < stored else "excess_data",
            f"{len(data)} bytes of pixel data; {what} needs {stored}.",
        )
    return _inflate(data, expected) if header.compressed else data


def _inflate(stream: memoryview, expected: int) -> bytes:
    """Inflate a zlib or gzip stream that must give exactly ``expected`` bytes (bounded)."""
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: zlib or gzip header, as MetaIO
    try:
        inflated = inflater.decompress(stream, expected + 1)
    except zlib.error as exc:
        raise VolumeFileError(
            "corrupt_compressed_data", f"The compressed pixel data do not inflate ({exc})."
        ) from None
    if len(inflated) > expected:
        raise VolumeFileError(
            "corrupt_compressed_data",
            f"The compressed pixel data inflate to more than DimSize × element size, {expected} "
            f"bytes.",
        )
    if not inflater.eof:
        raise VolumeFileError(
            "corrupt_compressed_data",
            f"The compressed pixel data stop before their stream ends (truncated), after "
            f"{len(inflated)} of {expected} bytes.",
        )
    if len(inflated) < expected:
        raise VolumeFileError(
            "corrupt_compressed_data",
            f"The compressed pixel data inflate to {len(inflated)} bytes; DimSize × element "
            f"size needs {expected}.",
        )
    if inflater.unused_data:
        raise VolumeFileError(
            "excess_data",
            f"{len(inflater.unused_data)} bytes follow the end of the compressed pixel data.",
        )
    return inflated
