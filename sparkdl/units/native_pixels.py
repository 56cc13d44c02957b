"""One frame of native little-endian pixel data as NumPy, without pydicom's general decoder.

Ingest decodes every CT slice. For the common case (uncompressed little-endian data, one frame,
one sample per pixel, 8/16/32-bit integers, monochrome) ``Dataset.pixel_array`` spends most
of its time on option handling, validation and a copy: about 1 ms a 512² slice, where reading
the buffer takes about 0.25 ms. :func:`native_frame` gives exactly the array ``pixel_array``
gives in that case: same dtype, same values, and unused high bits corrected the way pydicom
corrects them (shifted out and back, so a signed value is sign-extended from Bits Stored;
DICOM PS3.5 8.1.1 says those bits may hold anything). Anything else returns ``None`` and
goes to pydicom (which also gives the reasons for data it cannot decode, and the warnings
about Pixel Data longer than the header says).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

#: Transfer syntaxes whose Pixel Data is the frame's bytes, little endian, as stored.
_NATIVE_LITTLE_ENDIAN = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian})
_MONOCHROME = frozenset({"MONOCHROME1", "MONOCHROME2"})


def native_frame(ds: Dataset) -> npt.NDArray[Any] | None:
    """``ds.pixel_array`` of a single-frame native little-endian monochrome integer image,
    read straight from the Pixel Data bytes; ``None`` where pydicom must decide."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax not in _NATIVE_LITTLE_ENDIAN or "PixelData" not in ds:
        return None
    try:
        shape = _frame_shape(ds)
    except (AttributeError, KeyError, TypeError, ValueError):  # pydicom says what is wrong
        return None
    if shape is None:
        return None
    rows, columns, bits_allocated, bits_stored, signed = shape
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits_allocated // 8}")
    element = ds["PixelData"]
    data = element.value
    if element.is_undefined_length:
        return None  # encapsulated items in a native syntax: pydicom's to judge
    count = rows * columns
    expected = count * dtype.itemsize
    if not isinstance(data, bytes) or not expected <= len(data) <= expected + expected % 2:
        # Truncated: pydicom's error is the reason. Longer: pydicom warns, and returns the
        # extra frames the bytes hold (a reject) or drops the excess: its call, not ours.
        return None
    frame = np.frombuffer(data, dtype=dtype, count=count).reshape(rows, columns)
    if bits_stored == bits_allocated:
        return frame
    corrected = frame.copy()
    shift = bits_allocated - bits_stored
    np.left_shift(corrected, shift, out=corrected)
    np.right_shift(corrected, shift, out=corrected)
    return corrected


def _frame_shape(ds: Dataset) -> tuple[int, int, int, int, bool] | None:
    """``(rows, columns, bits allocated, bits stored, signed)`` when the fast path applies."""
    if int(ds.get("SamplesPerPixel", 1)) != 1 or int(ds.get("NumberOfFrames", 1) or 1) != 1:
        return None
    if str(ds.get("PhotometricInterpretation", "")).strip() not in _MONOCHROME:
        return None
    bits_allocated = int(ds.BitsAllocated)
    bits_stored = int(ds.BitsStored)
    representation = int(ds.PixelRepresentation)
    rows, columns = int(ds.Rows), int(ds.Columns)
    if bits_allocated not in (8, 16, 32) or not 1 <= bits_stored <= bits_allocated:
        return None
    if representation not in (0, 1) or rows < 1 or columns < 1:
        return None
    return rows, columns, bits_allocated, bits_stored, representation == 1
