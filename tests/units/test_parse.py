"""One unit through ``process_instance``: DICOM as other software writes it.

- Raw data sets: PS3.10 files start with a 128-byte preamble, ``DICM`` and a file meta group;
  older systems and some exports write the bare data set instead, in one of the three
  uncompressed transfer syntaxes. Such a unit must be read, decoded and exported like any other.
- Values that break their VR's rules must not be quoted into warnings or logs (PHI).
- Compressed CT in the syntaxes PACS exports use, written by another toolkit (GDCM).
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from sparkdl.deid import DeidOptions
from sparkdl.units.archives import Limits
from sparkdl.units.parse import Accepted, Rejected, process_instance
from tests.helpers import TEST_KEY

ENCODINGS = {  # name: (little endian, implicit VR, the transfer syntax it is)
    "implicit-little": (True, True, pydicom.uid.ImplicitVRLittleEndian),
    "explicit-little": (True, False, pydicom.uid.ExplicitVRLittleEndian),
    "explicit-big": (False, False, pydicom.uid.ExplicitVRBigEndian),
}


def _raw_dataset(little: bool, implicit: bool) -> bytes:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pixels = ds.pixel_array
    del ds.file_meta
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<" if little else ">")).tobytes()
    stream = DicomBytesIO()
    stream.is_little_endian, stream.is_implicit_VR = little, implicit
    write_dataset(stream, ds)
    return stream.getvalue()


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_raw_dataset_is_read_decoded_and_exported(encoding: str) -> None:
    little, implicit, syntax = ENCODINGS[encoding]
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    data = _raw_dataset(little, implicit)
    assert data[:4] != b"\0\0\0\0" and b"DICM" not in data[:132]

    outcome = process_instance(data, TEST_KEY.encode(), DeidOptions(), Limits(), True)

    assert isinstance(outcome, Accepted), outcome
    pixels = np.frombuffer(outcome.pixels, dtype=outcome.pixel_dtype)
    np.testing.assert_array_equal(pixels.reshape(original.pixel_array.shape), original.pixel_array)
    exported = pydicom.dcmread(io.BytesIO(outcome.dicom_bytes))
    assert exported.file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(exported.pixel_array, original.pixel_array)
    assert str(exported.PatientName) != str(original.PatientName)
    assert exported.SOPInstanceUID != original.SOPInstanceUID


@pytest.mark.parametrize("start", [b"\x08\x00", b"\x00\x08", b"\x02\x00"])
def test_junk_with_a_tag_like_start_is_not_dicom(start: bytes) -> None:
    outcome = process_instance(
        start + bytes(range(256)) * 8, TEST_KEY.encode(), DeidOptions(), Limits(), False
    )
    assert isinstance(outcome, Rejected) and outcome.reason == "not_dicom", outcome


def test_non_conformant_values_are_not_quoted_in_warnings_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Real exports break VR rules (letters in a UID, dates as dd.mm.yyyy); pydicom's reading
    # checks would warn quoting the value: an identifying UID in the executor's log.
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    with pydicom.config.disable_value_validation():
        ds.StudyInstanceUID = "1.2.840.99.SMITH.19570314"
        ds.PatientBirthDate, ds.PatientAge = "14.03.1957", "67 years"
        buffer = io.BytesIO()
        ds.save_as(buffer)
    caplog.set_level(logging.DEBUG)
    modes = (
        pydicom.config.settings.reading_validation_mode,
        pydicom.config.settings.writing_validation_mode,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = process_instance(
            buffer.getvalue(), TEST_KEY.encode(), DeidOptions(), Limits(), True
        )
    assert isinstance(outcome, Accepted), outcome
    assert (
        pydicom.config.settings.reading_validation_mode,  # the caller's settings are back
        pydicom.config.settings.writing_validation_mode,
    ) == modes
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [text for text in said if "SMITH" in text or "1957" in text], said
    exported = pydicom.dcmread(io.BytesIO(outcome.dicom_bytes))
    assert "SMITH" not in exported.StudyInstanceUID
    assert "1957" not in str(exported.get("PatientBirthDate", ""))


#: Compressed syntaxes a PACS export of CT commonly uses, and the pydicom keyword of each.
COMPRESSED = [
    "JPEGLosslessSV1",
    "JPEGLossless",
    "JPEGLSLossless",
    "JPEG2000Lossless",
    "RLELossless",
]


def _compress(source: str, keyword: str, target: Path) -> bytes:
    """``source`` re-encoded in the transfer syntax ``keyword``, by GDCM (another toolkit than
    the one that decodes it here, as with files from other vendors)."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(source)
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(
        gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(str(getattr(pydicom.uid, keyword))))
    )
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(target))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()
    return target.read_bytes()


@pytest.mark.parametrize("keyword", COMPRESSED)
def test_compressed_ct_is_decoded(keyword: str, tmp_path: Path) -> None:
    source = get_testdata_file("CT_small.dcm")
    data = _compress(source, keyword, tmp_path / "compressed.dcm")
    assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == getattr(
        pydicom.uid, keyword
    )

    outcome = process_instance(data, TEST_KEY.encode(), DeidOptions(), Limits(), False)

    assert isinstance(outcome, Accepted), outcome
    original = pydicom.dcmread(source).pixel_array
    pixels = np.frombuffer(outcome.pixels, dtype=outcome.pixel_dtype).reshape(original.shape)
    np.testing.assert_array_equal(pixels, original)


def test_exported_file_meta_names_its_writer_not_the_source() -> None:
    """PS3.10: (0002,0012)/(0002,0013) identify the writing implementation; a site's UID root,
    version string, AE titles and private file-meta information must not travel along."""
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    site = {
        "ImplementationClassUID": "1.2.826.0.1.3680043.9.7777.4.2",
        "ImplementationVersionName": "STMARYPACS_42",
        "SourceApplicationEntityTitle": "STMARY_CT7",
        "SendingApplicationEntityTitle": "STMARY_GW",
        "ReceivingApplicationEntityTitle": "RESEARCH_IN",
        "PrivateInformationCreatorUID": "1.2.826.0.1.3680043.9.7777.9",
        "PrivateInformation": b"ward 7 export",
    }
    for keyword, value in site.items():
        setattr(ds.file_meta, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    outcome = process_instance(buffer.getvalue(), TEST_KEY.encode(), DeidOptions(), Limits(), True)
    assert isinstance(outcome, Accepted)
    assert outcome.dicom_bytes is not None
    for value in site.values():
        raw = value if isinstance(value, bytes) else value.encode()
        assert raw not in outcome.dicom_bytes, value
    meta = pydicom.dcmread(io.BytesIO(outcome.dicom_bytes)).file_meta
    assert meta.ImplementationClassUID == PYDICOM_IMPLEMENTATION_UID
    assert meta.ImplementationVersionName.startswith("SPARKDL_")
    assert {e.keyword for e in meta} == {
        "FileMetaInformationGroupLength",
        "FileMetaInformationVersion",
        "MediaStorageSOPClassUID",
        "MediaStorageSOPInstanceUID",
        "TransferSyntaxUID",
        "ImplementationClassUID",
        "ImplementationVersionName",
    }
    assert meta.MediaStorageSOPInstanceUID.startswith("2.25.")


def test_what_the_checks_only_read_is_exported_as_its_source_bytes() -> None:
    """The checks, pixel decoding and catalog fields read ImageType, PixelSpacing, KVP and
    more. pydicom converts what it reads, and re-encoding a converted value normalises it
    (a NUL pad, a leading space). Elements de-identification keeps go out as the bytes they
    came in, and the catalog still reads their values."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    odd = {  # found in the wild; each is rewritten when pydicom re-encodes it
        0x00080008: b"ORIGINAL\\PRIMARY\\AXIAL\x00",  # ImageType, NUL-padded
        0x00280030: b" 0.661468\\0.661468 ",  # PixelSpacing, a leading space
        0x00180060: b" 120",  # KVP, a leading space
    }
    for tag, value in odd.items():
        ds[tag] = ds.get_item(tag)._replace(value=value, length=len(value))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)

    outcome = process_instance(buffer.getvalue(), TEST_KEY.encode(), DeidOptions(), Limits(), True)

    assert isinstance(outcome, Accepted) and outcome.dicom_bytes is not None
    exported = pydicom.dcmread(io.BytesIO(outcome.dicom_bytes))
    for tag, value in odd.items():
        assert exported.get_item(tag).value == value, hex(tag)
    assert outcome.fields["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert outcome.fields["PixelSpacing"] == [0.661468, 0.661468]
    assert outcome.fields["KVP"] == 120.0
    assert exported.SOPInstanceUID != ds.SOPInstanceUID  # and de-identified all the same
