"""The native fast path of pixel decoding gives exactly what pydicom's ``pixel_array`` gives.

Every combination of transfer syntax, bits allocated and stored, signedness and photometric
interpretation a CT (or anything ingest may meet) can carry, with random bits in the unused
high bits; odd sizes, padding, excess and missing bytes; and the real LIDC-IDRI series. Where
the fast path declines (``None``), ``pydicom`` decodes as before; where it answers, the
dtype and every value match.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from sparkdl.units.native_pixels import native_frame
from sparkdl.units.parse import _decode_pixels
from tests.lidc_data import LIDC

LITTLE = (ImplicitVRLittleEndian, ExplicitVRLittleEndian)
#: (bits allocated, bits stored, pixel representation)
BITS = [(16, 16, 0), (16, 16, 1), (16, 12, 0), (16, 12, 1), (16, 1, 1), (8, 8, 0), (8, 8, 1),
        (8, 6, 1), (8, 5, 0), (32, 32, 1), (32, 32, 0), (32, 24, 0), (32, 20, 1)]  # fmt: skip


def _file(
    syntax: str,
    bits: tuple[int, int, int],
    *,
    rows: int = 5,
    columns: int = 7,
    photometric: str = "MONOCHROME2",
    extra: bytes = b"",
    cut: int = 0,
    seed: int = 0,
) -> Dataset:
    """A CT-like instance of random pixel bytes (unused high bits random too), written with
    ``syntax`` and read back as ingest reads it."""
    allocated, stored, representation = bits
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uid
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, stored, stored - 1
    ds.PixelRepresentation = representation
    size = rows * columns * allocated // 8
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    data = (data + extra)[: len(data) + len(extra) - cut]
    ds.PixelData = data + b"\0" * (len(data) % 2)
    ds["PixelData"].VR = "OB" if allocated == 8 else "OW"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def _pydicom(ds: Dataset) -> Any:
    try:
        return ds.pixel_array
    except Exception as err:  # noqa: BLE001 - what pydicom does with it, error included
        return err


@pytest.mark.parametrize("syntax", LITTLE, ids=["implicit", "explicit"])
@pytest.mark.parametrize("bits", BITS, ids=lambda b: "-".join(map(str, b)))
def test_native_little_endian_matches_pydicom(syntax: str, bits: tuple[int, int, int]) -> None:
    for photometric in ("MONOCHROME2", "MONOCHROME1"):
        for rows, columns in ((5, 7), (4, 4), (1, 1)):
            ds = _file(syntax, bits, rows=rows, columns=columns, photometric=photometric)
            fast, expected = native_frame(ds), _pydicom(ds)
            assert fast is not None  # the fast path answers for every such image
            assert fast.dtype.str == expected.dtype.str and fast.shape == expected.shape
            assert np.array_equal(fast, expected), (bits, rows, columns)


OTHER_CASES = ["big_endian", "deflated", "rgb", "two_frames", "truncated", "no_bits_stored",
               "bits_1", "stored_over_allocated", "excess_bytes", "extra_frame"]  # fmt: skip


@pytest.mark.parametrize("case", OTHER_CASES)
def test_other_cases_are_pydicoms_or_identical(case: str) -> None:
    """The fast path declines what it does not read exactly: pydicom decodes it, or gives the
    reason, as before (bytes for a second frame: pydicom returns two frames, a reject)."""
    syntax = {"big_endian": ExplicitVRBigEndian, "deflated": DeflatedExplicitVRLittleEndian}
    ds = _file(
        syntax.get(case, ExplicitVRLittleEndian),
        (16, 12, 1),
        extra={"excess_bytes": b"\x01\x02\x03\x04", "extra_frame": bytes(70)}.get(case, b""),
        cut=3 if case == "truncated" else 0,
    )
    if case == "rgb":
        ds.PhotometricInterpretation, ds.SamplesPerPixel = "RGB", 3
    elif case == "two_frames":
        ds.NumberOfFrames = 2
    elif case == "no_bits_stored":
        del ds.BitsStored
    elif case == "bits_1":
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 1, 0
    elif case == "stored_over_allocated":
        ds.BitsStored = 17
    assert native_frame(ds) is None
    decoded = _decode_pixels(ds)
    expected = _pydicom(ds)
    if isinstance(expected, Exception) or getattr(expected, "ndim", 0) != 2:
        assert not isinstance(decoded, np.ndarray)  # a reject with pydicom's reason
    else:
        assert np.array_equal(decoded, expected) and decoded.dtype == expected.dtype


def test_the_real_series_decodes_as_pydicom_does() -> None:
    files = sorted(LIDC.glob("LIDC-IDRI-0002/**/*.dcm"))
    if not files:
        pytest.skip(f"the real LIDC-IDRI-0002 series is not under {LIDC}")
    for path in files:
        ds = pydicom.dcmread(path)
        fast, expected = native_frame(ds), ds.pixel_array
        assert fast is not None and fast.dtype.str == expected.dtype.str
        assert np.array_equal(fast, expected), path.name
