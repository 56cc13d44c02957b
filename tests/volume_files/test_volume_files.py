"""Volume files: MetaImage and NIfTI round trips, world ↔ voxel checked independently, refusals."""

from __future__ import annotations

import gzip
import struct
import zlib
from typing import Any

import nibabel
import numpy as np
import numpy.typing as npt
import pytest

from sparkdl.geometry import Geometry
from sparkdl.volume_files import (
    REASONS,
    SNIFF_BYTES,
    VolumeFile,
    VolumeFileError,
    read_volume,
    sniff,
    write_metaimage,
    write_mha,
    write_nifti,
)
from sparkdl.volume_files.write import ByteOrder

Files = dict[str, bytes]
#: nibabel's functions are not annotated: the tests call them through Any.
nib: Any = nibabel


def _rotation(degrees_x: float, degrees_z: float) -> npt.NDArray[np.float64]:
    """Rz @ Rx: an oblique direction (columns: the x, y, z index axes in LPS)."""
    a, c = np.radians(degrees_x), np.radians(degrees_z)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    rotation: npt.NDArray[np.float64] = rz @ rx
    return rotation


OBLIQUE = _rotation(20, 20)
GEOMETRY = Geometry(
    spacing=(2.5, 0.7, 0.703125), origin=(-198.1, -195.0, -335.21), direction=tuple(OBLIQUE.ravel())
)


def _volume(dtype: npt.DTypeLike = np.int16) -> npt.NDArray[Any]:
    """A (z, y, x) = (4, 5, 6) volume whose every voxel differs (negative ones when signed)."""
    values = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    if np.dtype(dtype).kind != "u":
        values = values - 50
    return values.astype(dtype)


def _read(name: str, data: bytes, files: Files | None = None) -> VolumeFile:
    return read_volume(name, data, (files or {}).get)


def _assert_native_copy(volume: VolumeFile) -> None:
    array = volume.array_zyx
    assert array.dtype.isnative and array.flags.c_contiguous and array.flags.writeable


# --- MetaImage ------------------------------------------------------------------------------


@pytest.mark.parametrize("byte_order", ["little", "big"])
@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("single_file", [False, True])
def test_metaimage_round_trip(byte_order: ByteOrder, compressed: bool, single_file: bool) -> None:
    array = _volume()
    if single_file:
        volume = _read(
            "scan.mha", write_mha(array, GEOMETRY, byte_order=byte_order, compressed=compressed)
        )
    else:
        header, raw = write_metaimage(
            array, GEOMETRY, "scan.zraw", byte_order=byte_order, compressed=compressed
        )
        assert (b"BinaryDataByteOrderMSB = True" in header) == (byte_order == "big")
        volume = _read("scan.mhd", header, {"scan.zraw": raw})
    assert volume.kind == "metaimage"
    np.testing.assert_array_equal(volume.array_zyx, array)
    assert volume.array_zyx.dtype == np.int16
    _assert_native_copy(volume)
    assert volume.geometry == GEOMETRY  # shortest exact decimals: no rounding at all


@pytest.mark.parametrize("dtype", ["i1", "u1", "<i2", ">u2", "i4", "u4", "i8", "u8", "f4", ">f8"])
def test_metaimage_element_types(dtype: str) -> None:
    array = _volume(dtype)
    volume = _read("scan.mha", write_mha(array, GEOMETRY, byte_order="big"))
    np.testing.assert_array_equal(volume.array_zyx, array)
    assert volume.array_zyx.dtype == np.dtype(dtype).newbyteorder("=")


def test_metaimage_element_type_is_a_safe_cast() -> None:
    header, raw = write_metaimage(_volume(np.uint8), GEOMETRY, "s.raw", element_type="MET_FLOAT")
    assert b"ElementType = MET_FLOAT" in header
    volume = _read("s.mhd", header, {"s.raw": raw})
    assert volume.array_zyx.dtype == np.float32
    np.testing.assert_array_equal(volume.array_zyx, _volume(np.uint8))
    with pytest.raises(ValueError, match="cannot hold"):
        write_metaimage(_volume(np.float32), GEOMETRY, "s.raw", element_type="MET_SHORT")
    with pytest.raises(ValueError, match="3-D"):
        write_mha(np.zeros((2, 2)), GEOMETRY)
    with pytest.raises(ValueError, match="byte_order"):
        write_mha(_volume(), GEOMETRY, byte_order="middle")  # type: ignore[arg-type]


def _header_values(header: bytes) -> dict[str, list[float]]:
    values = {}
    for line in header.decode().splitlines():
        key, _, value = line.partition(" = ")
        if key in ("Offset", "ElementSpacing", "TransformMatrix"):
            values[key] = [float(v) for v in value.split()]
    return values


def test_world_of_a_voxel_by_hand_from_the_header_text() -> None:
    """MetaIO's definition, summed here: Offset + Σ index_a × spacing_a × TransformMatrix row a."""
    header, raw = write_metaimage(_volume(), GEOMETRY, "s.raw")
    volume = _read("s.mhd", header, {"s.raw": raw})
    values = _header_values(header)
    offset, spacing = np.array(values["Offset"]), values["ElementSpacing"]
    axes = np.array(values["TransformMatrix"]).reshape(3, 3)  # one index axis per row
    for i, j, k in [(0, 0, 0), (5, 4, 3), (2, 3, 1), (1.5, -0.5, 2.25)]:
        world = (
            offset + i * spacing[0] * axes[0] + j * spacing[1] * axes[1] + k * spacing[2] * axes[2]
        )
        np.testing.assert_allclose(volume.geometry.to_world((k, j, i)), world, atol=1e-9)
        np.testing.assert_allclose(volume.geometry.to_voxel(world), (k, j, i), atol=1e-9)
    assert values["TransformMatrix"][:3] == pytest.approx(OBLIQUE[:, 0])  # the x axis first


#: Written by SimpleITK 2.5.7 (sitk.WriteImage) for an int16 image of size (6, 5, 4) with
#: SetDirection(OBLIQUE row-major), SetSpacing((0.703125, 0.7, 2.5)) and
#: SetOrigin((-198.1, -195.0, -335.21)), in a throwaway cross-check (SimpleITK is no
#: dependency). _ITK_WORLD holds its TransformIndexToPhysicalPoint of two (x, y, z) indices.
_ITK_HEADER = b"""ObjectType = Image
NDims = 3
BinaryData = True
BinaryDataByteOrderMSB = False
CompressedData = False
TransformMatrix = 0.93969262078590843 0.34202014332566871 0 -0.32139380484326968 \
0.88302222155948906 0.34202014332566871 0.11697777844051097 -0.32139380484326968 \
0.93969262078590843
Offset = -198.09999999999999 -195 -335.20999999999998
CenterOfRotation = 0 0 0
AnatomicalOrientation = RAI
ElementSpacing = 0.703125 0.69999999999999996 2.5
DimSize = 6 5 4
ElementType = MET_SHORT
ElementDataFile = a.raw
"""
_ITK_WORLD = {
    (5, 4, 3): (-194.81896244530685, -193.73557674957866, -327.2046489427938),
    (2, 3, 1): (-197.1610397960894, -193.46817202028154, -332.14252614705134),
}


def test_itk_written_header_places_voxels_where_itk_does() -> None:
    raw = np.arange(120, dtype="<i2").tobytes()
    volume = _read("a.mhd", _ITK_HEADER, {"a.raw": raw})
    np.testing.assert_allclose(np.reshape(volume.geometry.direction, (3, 3)), OBLIQUE, atol=1e-15)
    for index_xyz, world in _ITK_WORLD.items():
        np.testing.assert_allclose(volume.geometry.to_world(index_xyz[::-1]), world, atol=1e-9)
        np.testing.assert_allclose(volume.geometry.to_voxel(world), index_xyz[::-1], atol=1e-9)
    ours = write_metaimage(_volume(), GEOMETRY, "a.raw")[0]
    assert _keys(ours) == _keys(_ITK_HEADER)  # SimpleITK's keys, in SimpleITK's order


def _keys(header: bytes) -> list[str]:
    return [line.split(" = ")[0] for line in header.decode().splitlines()]


_LUNA_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860"
#: LUNA16's header layout verbatim, with a small DimSize.
_LUNA_HEADER = f"""ObjectType = Image
NDims = 3
BinaryData = True
BinaryDataByteOrderMSB = False
CompressedData = False
TransformMatrix = 1 0 0 0 1 0 0 0 1
Offset = -198.100006 -195 -335.209991
CenterOfRotation = 0 0 0
AnatomicalOrientation = RAI
ElementSpacing = 0.7617189884 0.7617189884 2.5
DimSize = 4 3 2
ElementType = MET_SHORT
ElementDataFile = {_LUNA_UID}.raw
""".encode()


def test_luna16_header_and_an_annotation_point() -> None:
    asked: list[str] = []

    def companion(name: str) -> bytes:
        asked.append(name)
        return np.arange(24, dtype="<i2").tobytes()  # x fastest: value = 12 z + 4 y + x

    volume = read_volume(f"subset0/{_LUNA_UID}.mhd", _LUNA_HEADER, companion)
    assert asked == [f"{_LUNA_UID}.raw"]
    assert volume.geometry.origin == (-198.100006, -195.0, -335.209991)
    assert volume.geometry.spacing == (2.5, 0.7617189884, 0.7617189884)
    assert volume.geometry.direction == tuple(np.eye(3).ravel())
    assert volume.array_zyx.shape == (2, 3, 4)
    # annotations.csv coordX, coordY, coordZ of the centre of voxel x=3, y=2, z=1:
    coord = (-198.100006 + 3 * 0.7617189884, -195 + 2 * 0.7617189884, -335.209991 + 2.5)
    index = volume.geometry.to_voxel(coord)
    np.testing.assert_allclose(index, (1, 2, 3), atol=1e-9)
    assert volume.array_zyx[tuple(np.rint(index).astype(int))] == 12 * 1 + 4 * 2 + 3


def test_header_aliases_separators_and_defaults() -> None:
    """Origin over Offset over Position, TransformMatrix over Rotation over Orientation,
    ElementSize when ElementSpacing is absent, ElementByteOrderMSB, ':' and CRLF."""
    header = (
        b"NDims: 3\r\n"
        b"Position = 9 9 9\r\n"
        b"Origin = 1 2 3\r\n"
        b"Offset = 8 8 8\r\n"
        b"Orientation = 0 1 0 1 0 0 0 0 1\r\n"
        b"TransformMatrix = 0 1 0 -1 0 0 0 0 1\r\n"
        b"Rotation = 1 0 0 0 1 0 0 0 1\r\n"
        b"ElementSize = 0.5 0.6 2\r\n"
        b"SomethingElse = kept aside\r\n"
        b"ElementByteOrderMSB = True\r\n"
        b"DimSize = 4 3 2\r\n"
        b"ElementType = MET_SHORT\r\n"
        b"ElementDataFile = sub/./s.raw\r\n"
    )
    raw = np.arange(24, dtype=">i2").tobytes()
    volume = _read("s.mhd", header, {"sub/s.raw": raw})
    assert volume.geometry.origin == (1.0, 2.0, 3.0)
    assert volume.geometry.spacing == (2.0, 0.6, 0.5)
    np.testing.assert_array_equal(np.reshape(volume.geometry.direction, (3, 3))[:, 1], (-1, 0, 0))
    np.testing.assert_array_equal(volume.array_zyx.ravel(), np.arange(24))


@pytest.mark.parametrize(("header_size", "prefix"), [(16, 16), (-1, 7)])
def test_header_size_skips_a_prefix(header_size: int, prefix: int) -> None:
    header, raw = write_metaimage(_volume(), GEOMETRY, "s.raw")
    header = header.replace(b"ElementType", f"HeaderSize = {header_size}\nElementType".encode())
    volume = _read("s.mhd", header, {"s.raw": b"\xff" * prefix + raw})
    np.testing.assert_array_equal(volume.array_zyx, _volume())


def test_four_d_with_one_time_point_is_a_volume() -> None:
    axes = [*OBLIQUE[:, 0], 0, *OBLIQUE[:, 1], 0, *OBLIQUE[:, 2], 0, 0, 0, 0, 1]
    header = (
        "NDims = 4\n"
        f"TransformMatrix = {' '.join(repr(float(v)) for v in axes)}\n"
        "Offset = 1 2 3 0\nElementSpacing = 0.5 0.6 2 1\nDimSize = 4 3 2 1\n"
        "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n"
    ).encode()
    volume = _read("s.mha", header + bytes(range(24)))
    assert volume.array_zyx.shape == (2, 3, 4)
    assert volume.geometry.spacing == (2.0, 0.6, 0.5)
    np.testing.assert_allclose(np.reshape(volume.geometry.direction, (3, 3)), OBLIQUE, atol=1e-15)


# --- NIfTI ----------------------------------------------------------------------------------


def _ras_affine(
    direction: npt.NDArray[np.float64],
    zooms: tuple[float, float, float],
    origin_ras: tuple[float, float, float],
) -> npt.NDArray[np.float64]:
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(zooms)
    affine[:3, 3] = origin_ras
    return affine


def _lps(ras: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return np.asarray(ras, dtype=np.float64) * (-1, -1, 1)


@pytest.mark.parametrize("compressed", [False, True])
def test_nifti_round_trip(compressed: bool) -> None:
    array = _volume()
    name = "scan.nii.gz" if compressed else "scan.nii"
    volume = _read(name, write_nifti(array, GEOMETRY, compressed=compressed))
    assert volume.kind == "nifti"
    np.testing.assert_array_equal(volume.array_zyx, array)
    assert volume.array_zyx.dtype == np.int16
    _assert_native_copy(volume)
    # The sform is stored in float32.
    np.testing.assert_allclose(volume.geometry.spacing, GEOMETRY.spacing, rtol=1e-6)
    np.testing.assert_allclose(volume.geometry.origin, GEOMETRY.origin, atol=1e-4)
    np.testing.assert_allclose(volume.geometry.direction, GEOMETRY.direction, atol=1e-6)


def test_nifti_world_agrees_with_nibabels_affine() -> None:
    data_ijk = np.random.default_rng(0).integers(-1000, 2000, size=(6, 5, 4)).astype(">i2")
    affine = _ras_affine(_rotation(-15, 35), (0.703125, 0.7, 2.5), (12.5, -40.0, 88.0))
    image = nib.Nifti1Image(data_ijk, affine)
    volume = _read("scan.nii", image.to_bytes())
    for ijk in [(0, 0, 0), (5, 4, 3), (2, 1, 3), (0.5, 3.25, 1.0)]:
        expected = _lps(nib.affines.apply_affine(image.affine, ijk))
        np.testing.assert_allclose(volume.geometry.to_world(ijk[::-1]), expected, atol=1e-4)
        np.testing.assert_allclose(volume.geometry.to_voxel(expected), ijk[::-1], atol=1e-5)
    np.testing.assert_array_equal(volume.array_zyx, data_ijk.transpose(2, 1, 0))
    assert volume.array_zyx[3, 1, 2] == data_ijk[2, 1, 3]


_SFORM = _ras_affine(_rotation(10, -25), (0.7, 0.8, 2.5), (-100.0, 50.0, -20.0))
_QFORM = _ras_affine(_rotation(0, 30), (0.9, 1.1, 3.0), (10.0, 20.0, 30.0))


@pytest.mark.parametrize(
    ("sform_code", "qform_code", "source"),
    [(1, 1, "sform"), (2, 0, "sform"), (0, 1, "qform"), (0, 0, "pixdim")],
)
def test_nifti_sform_over_qform_over_pixdim(sform_code: int, qform_code: int, source: str) -> None:
    image = nib.Nifti1Image(np.zeros((4, 3, 2), dtype=np.int16), None, dtype=np.int16)
    image.header.set_sform(_SFORM, code=sform_code)
    image.header.set_qform(_QFORM, code=qform_code)  # also sets pixdim to 0.9 1.1 3.0
    volume = _read("scan.nii", image.to_bytes())
    ijk = np.array([3.0, 2.0, 1.0])
    if source == "sform":
        expected = _SFORM[:3, :3] @ ijk + _SFORM[:3, 3]
    elif source == "qform":
        expected = _QFORM[:3, :3] @ ijk + _QFORM[:3, 3]
    else:  # method 1: x = pixdim[1] * i, and so on; no rotation, no offset
        expected = np.array([0.9, 1.1, 3.0]) * ijk
    np.testing.assert_allclose(volume.geometry.to_world(ijk[::-1]), _lps(expected), atol=1e-4)


def _patched(data: bytes, offset: int, fmt: str, *values: float | bytes) -> bytes:
    """NIfTI-1 bytes with a field overwritten at its standard offset (little-endian)."""
    patched = bytearray(data)
    struct.pack_into(fmt, patched, offset, *values)
    return bytes(patched)


_VOX_OFFSET, _SCL_SLOPE, _MAGIC = 108, 112, 344


@pytest.mark.parametrize(
    ("slope", "inter", "dtype"),
    [
        (2.0, -1024.0, np.float32),
        (1.0, 0.0, np.int16),
        (0.0, 5.0, np.int16),
        (np.nan, 5.0, np.int16),
    ],
)
def test_nifti_scl_slope_and_inter(slope: float, inter: float, dtype: type[np.generic]) -> None:
    stored = _volume()
    data = write_nifti(stored, GEOMETRY)
    data = _patched(data, _SCL_SLOPE, "<ff", slope, inter)
    volume = _read("scan.nii", data)
    assert volume.array_zyx.dtype == dtype
    if dtype == np.float32:
        np.testing.assert_array_equal(
            volume.array_zyx, stored * np.float32(slope) + np.float32(inter)
        )
    else:
        np.testing.assert_array_equal(volume.array_zyx, stored)


def test_write_nifti_scale_is_applied_on_read() -> None:
    volume = _read(
        "scan.nii.gz",
        write_nifti(_volume(np.uint16), GEOMETRY, scale=(0.5, -1024.0), compressed=True),
    )
    np.testing.assert_array_equal(volume.array_zyx, _volume(np.uint16) * np.float32(0.5) - 1024)


def test_nifti2_and_units_and_a_singleton_fourth_dimension() -> None:
    data_ijk = np.arange(24, dtype=np.float64).reshape(4, 3, 2, 1)
    affine = _ras_affine(np.eye(3), (0.0007, 0.0008, 0.0025), (0.1, -0.2, 0.3))
    image = nib.Nifti2Image(data_ijk, affine)
    image.header.set_xyzt_units("meter")
    volume = _read("scan.nii", image.to_bytes())
    assert volume.array_zyx.shape == (2, 3, 4) and volume.array_zyx.dtype == np.float64
    np.testing.assert_allclose(volume.geometry.spacing, (2.5, 0.8, 0.7))
    np.testing.assert_allclose(volume.geometry.origin, (-100.0, 200.0, 300.0))


# --- sniff ----------------------------------------------------------------------------------


def test_sniff_needs_the_suffix_and_the_content() -> None:
    mha = write_mha(_volume(), GEOMETRY)
    nii = write_nifti(_volume(), GEOMETRY)
    nii_gz = gzip.compress(nii)
    big_endian = nib.Nifti1Header(endianness=">")
    data_ijk = _volume().transpose(2, 1, 0)
    big_endian_nii = nib.Nifti1Image(data_ijk, np.eye(4), big_endian, dtype=np.int16).to_bytes()
    assert big_endian_nii[:4] == struct.pack(">i", 348)
    np.testing.assert_array_equal(_read("a.nii", big_endian_nii).array_zyx, _volume())
    assert sniff("a.mha", mha[:SNIFF_BYTES]) == "metaimage"
    assert sniff("A.MHD", b"NDims = 3\nDimSize = 1 1 1\n") == "metaimage"
    assert sniff("a.nii", nii[:SNIFF_BYTES]) == "nifti"
    assert sniff("a.nii", big_endian_nii[:8]) == "nifti"
    assert sniff("a.nii.gz", nii_gz[:SNIFF_BYTES]) == "nifti"
    assert sniff("a.nii.gz", nii) == "nifti"  # mislabelled, uncompressed: content decides
    assert sniff("a.raw", mha) is None
    assert sniff("a.mhd", b"\x00\x01binary") is None
    assert sniff("a.nii", mha) is None
    assert sniff("a.nii.gz", gzip.compress(b"not a header")) is None
    assert sniff("a.mha", nii) is None


# --- refusals -------------------------------------------------------------------------------

_SECRET = "secret-series-uid"  # in every data file name: must never appear in a message
_RAW = np.arange(24, dtype="<i2").tobytes()
_COMPRESSED = zlib.compress(_RAW)
_BASE = {
    "ObjectType": "Image",
    "NDims": "3",
    "BinaryData": "True",
    "BinaryDataByteOrderMSB": "False",
    "CompressedData": "False",
    "TransformMatrix": "1 0 0 0 1 0 0 0 1",
    "Offset": "-198.1 -195 -335.2",
    "ElementSpacing": "0.76 0.76 2.5",
    "DimSize": "4 3 2",
    "ElementType": "MET_SHORT",
    "ElementDataFile": f"{_SECRET}.raw",
}


def _mhd(**changes: str | None) -> bytes:
    """The base header, values changed (None removes a key; new keys go before the last one)."""
    fields = {**_BASE, **changes}
    last = fields.pop("ElementDataFile")
    lines = [f"{k} = {v}\n" for k, v in fields.items() if v is not None]
    if last is not None:
        lines.append(f"ElementDataFile = {last}\n")
    return "".join(lines).encode()


def _pair(raw: bytes = _RAW, /, **changes: str | None) -> tuple[str, bytes, Files]:
    return f"{_SECRET}.mhd", _mhd(**changes), {f"{_SECRET}.raw": raw}


def _nii(
    array: npt.ArrayLike | None = None, sform: npt.ArrayLike | None = None
) -> tuple[str, bytes, Files]:
    """A NIfTI-1 of ``array`` (default: the test volume) whose only transform is ``sform``."""
    image = nib.Nifti1Image(_volume() if array is None else np.asarray(array), None)
    image.header.set_sform(np.eye(4) if sform is None else np.asarray(sform), code=1)
    return f"{_SECRET}.nii", bytes(image.to_bytes()), {}


def _nii_patched(offset: int, fmt: str, *values: float | bytes) -> tuple[str, bytes, Files]:
    name, data, files = _nii()
    return name, _patched(data, offset, fmt, *values), files


def _too_big_nii() -> tuple[str, bytes, Files]:
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_dtype(np.int16)
    header["vox_offset"] = 352
    return f"{_SECRET}.nii", bytes(header.binaryblock) + bytes(4), {}  # no voxels at all


def _mha_local(**changes: str | None) -> tuple[str, bytes, Files]:
    return f"{_SECRET}.mha", _mhd(ElementDataFile="LOCAL", **changes) + _RAW, {}


_GZ = gzip.compress(_nii()[1])
_SRCOW_X3 = 292  # srow_x[3]: the sform's x translation
_NDIMS_2 = {
    "NDims": "2",
    "DimSize": "4 3",
    "ElementSpacing": "1 1",
    "Offset": "0 0",
    "TransformMatrix": "1 0 0 1",
}
_NDIMS_4 = {
    "NDims": "4",
    "DimSize": "4 3 2 2",
    "ElementSpacing": "1 1 1 1",
    "Offset": "0 0 0 0",
    "TransformMatrix": " ".join(str(v) for v in np.eye(4).ravel()),
}

#: (reason, case id, (name, data, companion files)).
_CASES: list[tuple[str, str, tuple[str, bytes, Files]]] = [
    ("unknown_format", "raw file", (f"{_SECRET}.raw", _RAW, {})),
    ("unknown_format", "text called .mhd", (f"{_SECRET}.mhd", b"hello", {})),
    (
        "malformed_header",
        "no separator",
        (f"{_SECRET}.mhd", _mhd().replace(b"NDims = 3\n", b"NDims = 3\nno separator\n"), {}),
    ),
    ("malformed_header", "DimSize too short", _pair(DimSize="4 3")),
    ("malformed_header", "DimSize not numbers", _pair(DimSize="4 x 2")),
    ("malformed_header", "DimSize fractional", _pair(DimSize="4 3.5 2")),
    ("malformed_header", "no NDims", _pair(NDims=None)),
    ("malformed_header", "no DimSize", _pair(DimSize=None)),
    ("malformed_header", "no ElementType", _pair(ElementType=None)),
    ("malformed_header", "no ElementDataFile", _pair(ElementDataFile=None)),
    ("malformed_header", "empty ElementDataFile", _pair(ElementDataFile="")),
    (
        "malformed_header",
        "key twice",
        (f"{_SECRET}.mhd", _mhd().replace(b"NDims = 3\n", b"NDims = 3\nNDims = 3\n"), {}),
    ),
    ("malformed_header", "not an Image", _pair(ObjectType="Tube")),
    (
        "malformed_header",
        "not UTF-8",
        (f"{_SECRET}.mhd", _mhd().replace(b"Offset = ", b"Offset = \xff"), {}),
    ),
    ("malformed_header", "HeaderSize -2", _pair(HeaderSize="-2")),
    (
        "malformed_header",
        "HeaderSize -1 compressed",
        _pair(_COMPRESSED, HeaderSize="-1", CompressedData="True"),
    ),
    ("malformed_header", "HeaderSize inside the .mha header", _mha_local(HeaderSize="5")),
    ("unsupported_element_type", "MET_STRING", _pair(ElementType="MET_STRING")),
    ("unsupported_element_type", "unknown", _pair(ElementType="MET_FOO")),
    ("unsupported_element_type", "NIfTI complex", _nii(_volume().astype(np.complex64))),
    ("unsupported_dimensions", "NDims 2", _pair(**_NDIMS_2)),
    ("unsupported_dimensions", "NDims 4 with 2 time points", _pair(_RAW * 2, **_NDIMS_4)),
    ("unsupported_dimensions", "NIfTI 2-D", _nii(np.zeros((4, 3), dtype=np.int16))),
    ("unsupported_dimensions", "NIfTI 2 time points", _nii(np.zeros((4, 3, 2, 2), np.int16))),
    ("unsupported_channels", "3 channels", _pair(ElementNumberOfChannels="3")),
    ("unsupported_encoding", "ASCII", _pair(BinaryData="False")),
    ("unsupported_data_file", "LIST", _pair(ElementDataFile="LIST")),
    ("unsupported_data_file", "pattern", _pair(ElementDataFile=f"{_SECRET}%03d.raw 1 2 1")),
    ("hostile_data_path", "parent", _pair(ElementDataFile=f"../{_SECRET}.raw")),
    ("hostile_data_path", "nested parent", _pair(ElementDataFile=f"a/../../{_SECRET}.raw")),
    ("hostile_data_path", "absolute", _pair(ElementDataFile=f"/etc/{_SECRET}.raw")),
    ("hostile_data_path", "home", _pair(ElementDataFile=f"~/{_SECRET}.raw")),
    ("hostile_data_path", "URL", _pair(ElementDataFile=f"http://example.invalid/{_SECRET}")),
    ("hostile_data_path", "file URL", _pair(ElementDataFile=f"file:///{_SECRET}.raw")),
    ("hostile_data_path", "drive", _pair(ElementDataFile=f"C:\\{_SECRET}.raw")),
    ("hostile_data_path", "backslash", _pair(ElementDataFile=f"sub\\{_SECRET}.raw")),
    ("hostile_data_path", "control character", _pair(ElementDataFile=f"a\t{_SECRET}.raw")),
    ("missing_data_file", "absent", (f"{_SECRET}.mhd", _mhd(), {})),
    ("truncated_data", "raw short by a byte", _pair(_RAW[:-1])),
    ("truncated_data", ".mha short by a byte", (f"{_SECRET}.mha", _mha_local()[1][:-1], {})),
    (
        "truncated_data",
        "less than CompressedDataSize",
        _pair(_COMPRESSED, CompressedData="True", CompressedDataSize=str(len(_COMPRESSED) + 9)),
    ),
    ("truncated_data", "HeaderSize past the end", _pair(HeaderSize=str(len(_RAW) + 1))),
    ("truncated_data", "NIfTI short by a byte", (f"{_SECRET}.nii", _nii()[1][:-1], {})),
    ("excess_data", "raw longer by a byte", _pair(_RAW + b"\0")),
    (
        "excess_data",
        "after the compressed stream",
        _pair(_COMPRESSED + b"junk", CompressedData="True"),
    ),
    (
        "excess_data",
        "more than CompressedDataSize",
        _pair(_COMPRESSED, CompressedData="True", CompressedDataSize=str(len(_COMPRESSED) - 1)),
    ),
    ("excess_data", "NIfTI longer by a byte", (f"{_SECRET}.nii", _nii()[1] + b"\0", {})),
    ("corrupt_compressed_data", "not zlib", _pair(b"not zlib at all", CompressedData="True")),
    (
        "corrupt_compressed_data",
        "inflates short",
        _pair(zlib.compress(_RAW[:-2]), CompressedData="True"),
    ),
    (
        "corrupt_compressed_data",
        "inflates long",
        _pair(zlib.compress(_RAW + b"\0\0"), CompressedData="True"),
    ),
    ("corrupt_compressed_data", "stream cut", _pair(_COMPRESSED[:-6], CompressedData="True")),
    ("corrupt_compressed_data", "gzip cut", (f"{_SECRET}.nii.gz", _GZ[:-12], {})),
    ("corrupt_compressed_data", "gzip CRC", (f"{_SECRET}.nii.gz", _GZ[:-8] + bytes(8), {})),
    ("invalid_size", "zero", _pair(DimSize="4 0 2")),
    ("invalid_size", "negative", _pair(DimSize="-4 3 2")),
    # Refused before the (absent) data file is asked for, and before any allocation:
    (
        "too_many_voxels",
        "10^15 voxels",
        (f"{_SECRET}.mhd", _mhd(DimSize="100000 100000 100000"), {}),
    ),
    ("too_many_voxels", "NIfTI 2.7e13 voxels", _too_big_nii()),
    ("invalid_spacing", "zero", _pair(ElementSpacing="0 0.76 2.5")),
    ("invalid_spacing", "negative", _pair(ElementSpacing="-0.76 0.76 2.5")),
    ("invalid_spacing", "NaN", _pair(ElementSpacing="nan 1 1")),
    ("invalid_spacing", "inf", _pair(ElementSpacing="1 inf 1")),
    ("invalid_spacing", "NIfTI zero column", _nii(sform=np.diag([0.0, 1.0, 1.0, 1.0]))),
    ("invalid_origin", "NaN", _pair(Offset="nan 0 0")),
    ("invalid_origin", "NIfTI NaN", _nii_patched(_SRCOW_X3, "<f", float("nan"))),
    ("invalid_direction", "singular", _pair(TransformMatrix="1 0 0 1 0 0 0 0 1")),
    ("invalid_direction", "not unit", _pair(TransformMatrix="2 0 0 0 1 0 0 0 1")),
    ("invalid_direction", "NaN", _pair(TransformMatrix="nan 0 0 0 1 0 0 0 1")),
    (
        "invalid_direction",
        "NIfTI singular",
        _nii(sform=[[1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
    ),
    ("unreadable_nifti", "bad magic", _nii_patched(_MAGIC, "4s", b"xxxx")),
    ("unreadable_nifti", "pair header", _nii_patched(_MAGIC, "4s", b"ni1\0")),
    ("unreadable_nifti", "inf intercept", _nii_patched(_SCL_SLOPE, "<ff", 1.0, float("inf"))),
    ("unreadable_nifti", "vox_offset inside the header", _nii_patched(_VOX_OFFSET, "<f", 16.0)),
    ("unreadable_nifti", "vox_offset 0", _nii_patched(_VOX_OFFSET, "<f", 0.0)),
]


@pytest.mark.parametrize(
    ("reason", "case"), [pytest.param(r, c, id=f"{r}: {i}") for r, i, c in _CASES]
)
def test_refusals(reason: str, case: tuple[str, bytes, Files]) -> None:
    name, data, files = case
    with pytest.raises(VolumeFileError) as info:
        read_volume(name, data, files.get)
    assert info.value.reason == reason, info.value
    assert f"(reason: {reason})" in str(info.value)
    assert _SECRET not in str(info.value)


def test_every_reason_has_a_refusal_case() -> None:
    assert {reason for reason, _, _ in _CASES} == set(REASONS)


def test_max_voxels_is_a_parameter() -> None:
    name, data, files = _pair()
    assert read_volume(name, data, files.get, max_voxels=24).array_zyx.size == 24
    with pytest.raises(VolumeFileError, match="max_voxels=23"):
        read_volume(name, data, files.get, max_voxels=23)
    name, data, files = _nii()
    with pytest.raises(VolumeFileError, match="too_many_voxels"):
        read_volume(name, data, files.get, max_voxels=119)
