"""Volume files among the ingest inputs: MetaImage and NIfTI CT volumes as catalog records.

A volume file (``.mhd`` with its data file, ``.mha``, ``.nii``, ``.nii.gz``) is one unit: one
accepted record that carries the whole volume in HU (int16, indexed ``(z, y, x)``) as its
``pixels``, or one rejected record with the reader's reason (:data:`REASONS`). An ``.mhd``'s
data file is consumed by it and accounted with it, never as a unit of its own.

The file's stem is its series id (LUNA16 names each scan ``<SeriesInstanceUID>.mhd``): it goes
through the same keyed UID map as DICOM UIDs, so LUNA16's CSVs line up with no preprocessing.
File names are identifiers: they reach only ``_restricted/`` (lineage, rejected), never a
log line or an error message. A volume file states no patient or study: each file is its own
patient (a keyed pseudonym of its stem), which is what decides its split.

Its geometry (spacing, origin and the full direction matrix, whose z column a DICOM
ImageOrientationPatient cannot say) travels in ``header_json`` under ``"volume_file"``;
assembly (:func:`sparkdl.assembly.series.assemble_series`) turns the record into a volume as it is.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from sparkdl.deid import pseudonym, remap_uid
from sparkdl.geometry import hu_to_int16
from sparkdl.units.archives import Limits, Unit
from sparkdl.volume_files import REASONS as READER_REASONS
from sparkdl.volume_files import VolumeFileError, read_volume, sniff
from sparkdl.volume_files.metaimage import parse_header

__all__ = [
    "REASONS",
    "VOLUME_CLASS_NAMES",
    "is_data_name",
    "pair_members",
    "volume_file_record",
    "volume_kind",
]

#: Reject codes of volume files: the reader's, and a data file no header claims.
REASONS: dict[str, str] = {
    **READER_REASONS,
    "orphan_volume_data": "a MetaImage data file (.raw, .zraw) that no .mhd beside it names",
}
#: ``sop_class_name`` of the catalog row of a volume file, by kind.
VOLUME_CLASS_NAMES = {"metaimage": "MetaImage volume", "nifti": "NIfTI volume"}
_DATA_SUFFIXES = (".raw", ".zraw")


def volume_kind(name: str, data: bytes) -> str | None:
    """``"metaimage"`` / ``"nifti"`` when ``data`` (a file called ``name``) is a volume file."""
    return sniff(name, data[:1024])


def is_data_name(name: str) -> bool:
    """Whether ``name`` looks like a MetaImage data file (``.raw``, ``.zraw``)."""
    return name.lower().endswith(_DATA_SUFFIXES)


def data_file_of(header: bytes) -> str | None:
    """The data file an ``.mhd`` header names (relative to it), or None: LOCAL data, an
    unreadable header, or a name the reader refuses (absolute, a URL, ``..``, a backslash)."""
    try:
        name = parse_header(header).data_file
    except VolumeFileError:
        return None
    return None if name == "LOCAL" else name


def volume_file_record(
    name: str,
    data: bytes,
    companion: Callable[[str], bytes | None],
    key: bytes,
    limits: Limits,
) -> tuple[dict[str, Any], bytes] | tuple[str, str]:
    """``(catalog fields, HU int16 bytes)`` of one volume file, or ``(reason, detail)``.

    ``name`` is the file's name (its stem is the series id); ``companion(relative)`` returns
    the bytes of the data file an ``.mhd`` names, or None.
    """
    try:
        volume = read_volume(name, data, companion, max_voxels=limits.max_pixels)
    except VolumeFileError as err:
        return err.reason, err.detail
    stem = _stem(name)
    hu, clipped = hu_to_int16(np.asarray(volume.array_zyx))
    grid = volume.geometry
    direction = np.asarray(grid.direction, dtype=np.float64).reshape(3, 3)
    nz, ny, nx = (int(n) for n in hu.shape)
    described = {
        "volume_file": {
            "format": volume.kind,
            "shape": [nz, ny, nx],
            "spacing": list(grid.spacing),
            "origin": list(grid.origin),
            "direction": list(grid.direction),
            "hu_clipped": int(clipped),
        }
    }
    fields: dict[str, Any] = {
        "sop_uid": remap_uid(key, f"sparkdl-volume-file:{stem}"),
        "series_uid": remap_uid(key, stem),
        "study_uid": remap_uid(key, f"sparkdl-volume-study:{stem}"),
        "patient_id": pseudonym(key, f"sparkdl-volume-patient:{stem}"),
        "frame_of_reference_uid": None,
        "sop_class_name": VOLUME_CLASS_NAMES[volume.kind],
        "Modality": "CT",
        "Rows": ny,
        "Columns": nx,
        "NumberOfFrames": nz,
        "ImagePositionPatient": list(grid.origin),
        "ImageOrientationPatient": [*direction[:, 0], *direction[:, 1]],
        "PixelSpacing": [grid.spacing[1], grid.spacing[2]],
        "SliceThickness": grid.spacing[0],
        "RescaleSlope": 1.0,
        "RescaleIntercept": 0.0,
        "date_offset_applied": False,
        "header_json": json.dumps(described),
    }
    return fields, np.ascontiguousarray(hu, dtype="<i2").tobytes()


def _stem(name: str) -> str:
    base = posixpath.basename(name.replace("\\", "/"))
    lower = base.lower()
    for suffix in (".nii.gz", ".mhd", ".mha", ".nii"):
        if lower.endswith(suffix):
            return base[: -len(suffix)]
    return base


def pair_members(units: Iterator[Unit], held_cap: int) -> Iterator[tuple[Unit, dict[str, bytes]]]:
    """An archive's units, each with the data files its ``.mhd`` header claims.

    Members stream by in archive order, so a header and its data file may come either way
    round: headers wait (small) for their data file; data files wait for their header while
    the bytes held stay within ``held_cap``. At the end a header still waiting gets no data
    (its reader reports ``missing_data_file``) and a data file nobody claimed is rejected
    as ``orphan_volume_data``, so each member stays one accounted unit.
    """
    headers: dict[str, tuple[Unit, str]] = {}  # data member path → (header unit, relative)
    data: dict[str, Unit] = {}
    held = 0
    for unit in units:
        member = unit.member or ""
        if unit.data is not None and member.lower().endswith(".mhd"):
            relative = data_file_of(unit.data)
            if relative is None:
                yield unit, {}
                continue
            path = posixpath.normpath(posixpath.join(posixpath.dirname(member), relative))
            if path in data:
                found = data.pop(path)
                held -= len(found.data or b"")
                yield unit, {relative: found.data or b""}
            else:
                headers[path] = (unit, relative)
            continue
        if unit.data is not None and is_data_name(member) and not _is_dicom(unit.data):
            if member in headers:
                header, relative = headers.pop(member)
                yield header, {relative: unit.data}
                continue
            if held + len(unit.data) <= held_cap:
                data[member] = unit
                held += len(unit.data)
                continue
            yield _orphan(member, "its header had not come before the held-bytes cap"), {}
            continue
        yield unit, {}
    for header, _ in headers.values():
        yield header, {}
    for member in data:
        yield _orphan(member, "no .mhd in the archive names it"), {}


def orphan_reason() -> tuple[str, str]:
    """The reject of a loose data file no ``.mhd`` beside it names."""
    return "orphan_volume_data", "no .mhd beside it names it"


def _orphan(member: str, detail: str) -> Unit:
    return Unit(member, None, "orphan_volume_data", detail)


def _is_dicom(data: bytes) -> bool:
    return data[128:132] == b"DICM"
