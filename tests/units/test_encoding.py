"""The fast writers of de-identified instances give what pydicom gives.

``encoding.to_part10`` (the export) and ``header_json.header_json`` (the catalog's header)
copy raw elements as bytes instead of converting them. Each is compared with pydicom's own
writer on DICOM from several sources: the real LIDC-IDRI CT (GE), a synthetic cohort with
every transfer-syntax variant, and pydicom's own test files (other vendors and toolkits,
big endian, deflated, many character sets), before and after de-identification.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset

from sparkdl import synthesize_cohort
from sparkdl.deid import DeidOptions, deidentify
from sparkdl.units.encoding import to_part10
from sparkdl.units.header_json import header_json
from tests.helpers import TEST_KEY
from tests.lidc_data import LIDC

PYDICOM_FILES = Path(pydicom.data.__path__[0])
#: pydicom's test files: vendors, toolkits, syntaxes (big endian, deflated, JPEG family,
#: RLE) and character sets (ISO 2022 Japanese and Korean, Arabic, Greek, UTF-8 ...).
PYDICOM_SAMPLES = [
    "test_files/CT_small.dcm",
    "test_files/MR_small_implicit.dcm",
    "test_files/MR_small_bigendian.dcm",
    "test_files/image_dfl.dcm",
    "test_files/JPEG2000.dcm",
    "test_files/MR_small_RLE.dcm",
    "test_files/rtplan.dcm",
    "test_files/examples_overlay.dcm",
    "test_files/nested_priv_SQ.dcm",
    "charset_files/chrJapMulti.dcm",
    "charset_files/chrKoreanMulti.dcm",
    "charset_files/chrArab.dcm",
    "charset_files/chrGreek.dcm",
    "charset_files/chrX1.dcm",
    "charset_files/chrSQEncoding.dcm",
]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    cohort = tmp_path_factory.mktemp("cohort")
    synthesize_cohort(cohort, num_patients=8, image_size=32)  # every variant at least once
    synthetic = sorted((cohort / "dicom").rglob("*.dcm"))
    real = sorted(LIDC.rglob("*.dcm"))[:12]
    return [*synthetic[::7], *real, *(PYDICOM_FILES / name for name in PYDICOM_SAMPLES)]


def _read(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True)


def _datasets(sources: list[Path]) -> Iterator[tuple[str, Dataset]]:
    """Each source as read, and de-identified (both states reach the writers)."""
    with pydicom.config.disable_value_validation(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sources:
            yield path.name, _read(path)
            ds = _read(path)
            if "SOPClassUID" in ds:
                deidentify(ds, TEST_KEY.encode(), DeidOptions())
                yield path.name + " (de-identified)", ds


def _pydicom_part10(ds: Dataset) -> bytes:
    ds = copy.deepcopy(ds)
    ds.preamble = None
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _pydicom_json(ds: Dataset) -> dict[str, Any]:
    header = copy.deepcopy(ds).to_json_dict(
        bulk_data_threshold=4096, bulk_data_element_handler=lambda _: "omitted"
    )
    for tag in ("7FE00010", "7FE00008", "7FE00009"):
        header.pop(tag, None)
    return dict(json.loads(json.dumps(header)))


def test_sources_cover_the_encodings(sources: list[Path]) -> None:
    syntaxes = {str(_read(path).file_meta.get("TransferSyntaxUID", "")) for path in sources}
    assert {
        "1.2.840.10008.1.2",  # implicit VR little endian
        "1.2.840.10008.1.2.1",  # explicit VR little endian
        "1.2.840.10008.1.2.2",  # explicit VR big endian
        "1.2.840.10008.1.2.1.99",  # deflated
        "1.2.840.10008.1.2.5",  # RLE lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
    } <= syntaxes
    if LIDC.is_dir():
        assert any(path.is_relative_to(LIDC) for path in sources)


def test_part10_bytes_equal_pydicoms(sources: list[Path]) -> None:
    compared = 0
    for name, ds in _datasets(sources):
        if "SOPClassUID" not in ds or "TransferSyntaxUID" not in ds.get("file_meta", {}):
            continue
        expected = _pydicom_part10(ds)
        assert to_part10(ds) == expected, name
        compared += 1
    assert compared >= 2 * len(sources) - 4


def test_part10_preamble_is_zeros_whatever_the_source_held() -> None:
    ds = _read(PYDICOM_FILES / "test_files/CT_small.dcm")
    ds.preamble = b"II*\x00 TIFF header with MRN 12345".ljust(128, b"\x00")
    data = to_part10(ds)
    assert data[:132] == b"\x00" * 128 + b"DICM"
    assert b"MRN 12345" not in data
    big_endian = _read(PYDICOM_FILES / "test_files/MR_small_bigendian.dcm")
    big_endian.preamble = b"\xff" * 128
    assert to_part10(big_endian)[:128] == b"\x00" * 128  # pydicom's path, same rule


def test_header_json_equals_pydicoms(sources: list[Path]) -> None:
    compared = 0
    for name, ds in _datasets(sources):
        expected = _pydicom_json(ds)
        assert json.loads(header_json(ds)) == expected, name
        compared += 1
    assert compared >= 2 * len(sources) - 4
