"""What one input file becomes: one record per unit, accepted, rejected or a read message.

Runs on executors (:mod:`sparkdl.ingestion.read_stage` calls :func:`file_records` for every
file of its partition). A record is a dict of :data:`sparkdl.store.tables.RECORD_SCHEMA`
columns: accepted (catalog fields and pixels for CT slices), rejected (reason, detail) or an
LIDC read message. The de-identified DICOM of an accepted instance is written here, in the
task that made its bytes, when the run exports (:mod:`sparkdl.store.dicom_files`).

For incremental runs a :class:`Selection` narrows the work: units whose content hash was
cataloged or rejected before are skipped, and when series are rebuilt only the wanted
members of a file are parsed again.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sparkdl.deid import DeidOptions
from sparkdl.store.dicom_files import write_exported
from sparkdl.store.storage import open_input
from sparkdl.units.archives import Limits, iter_units
from sparkdl.units.parse import Accepted, ReadMessageUnit, process_instance
from sparkdl.units.volume_file import (
    is_data_name,
    orphan_reason,
    pair_members,
    volume_file_record,
    volume_kind,
)


@dataclass(frozen=True)
class InputFile:
    """One listed file: its URI or local path, size, whether it is a symlink, and when it
    was last modified (ms since the epoch; append runs skip files whose path, size and
    modification time they have seen before)."""

    path: str
    size: int
    is_symlink: bool = False
    modified_ms: int = 0


@dataclass(frozen=True)
class Selection:
    """Which units to process: all (the default), all but known ones, or only wanted ones."""

    #: Content hashes already accounted for (cataloged or rejected by an earlier run).
    known_hashes: frozenset[str] = frozenset()
    #: ``(source_path, member)`` of earlier rejects that had no content (links, bad archives).
    known_keys: frozenset[tuple[str, str | None]] = frozenset()
    #: When set, only these ``source_path → members`` are parsed (members None = the file).
    wanted: dict[str, frozenset[str | None]] | None = field(default=None)


@dataclass(frozen=True)
class Task:
    """What every partition needs besides its files: plain values, pickled into the closure.

    Keep it small: a closure over 1 MB is shipped as a Spark broadcast, whose blocks may
    spill to executors' local disk, and the key must never be written anywhere. Large
    per-run data (the files, an append run's known hashes) travels separately.
    """

    key: bytes = field(repr=False)  # never in a repr, log line or error message
    deid: DeidOptions
    limits: Limits
    #: Where each accepted instance's de-identified file goes, named by its source's content
    #: hash (:func:`sparkdl.store.dicom_files.exported_path`), or None for no export. Written
    #: here, in the task that made the bytes; the write stage moves the cataloged ones.
    export_to: str | None = None


def file_records(
    item: InputFile, task: Task, selection: Selection = Selection()
) -> Iterator[dict[str, Any]]:
    """The records of one input file (one per unit, minus those the selection skips)."""
    wanted = None if selection.wanted is None else selection.wanted.get(item.path, frozenset())
    if item.is_symlink:
        if wanted is None and (item.path, None) not in selection.known_keys:
            yield rejected(item.path, None, None, "symlink", "symbolic link not followed")
        return
    seen = 0
    try:
        name = os.path.basename(item.path.rstrip("/"))
        units = iter_units(name, lambda: open_input(item.path), item.size, task.limits)
        for unit, companions in pair_members(units, task.limits.max_member_bytes):
            seen += 1
            if wanted is not None and unit.member not in wanted:
                continue
            if unit.data is None:
                if (item.path, unit.member) not in selection.known_keys:
                    yield rejected(
                        item.path, unit.member, None, unit.reason or "read_error", unit.detail
                    )
                continue
            digest = hashlib.sha256(unit.data).hexdigest()
            if wanted is None and digest in selection.known_hashes:
                continue
            yield _unit_record(item.path, unit.member, unit.data, digest, companions, task)
    except Exception as err:  # noqa: BLE001 - a broken input must not stop the job
        reason = "read_error" if seen == 0 else "corrupt_archive"
        if (item.path, None) not in selection.known_keys:
            yield rejected(
                item.path, None, None, reason, f"{type(err).__name__} after {seen} units"
            )


def _unit_record(
    path: str,
    member: str | None,
    data: bytes,
    digest: str,
    companions: dict[str, bytes],
    task: Task,
) -> dict[str, Any]:
    """The record of one unit with data: a volume file, an orphan data file, or DICOM/XML."""
    name = member or os.path.basename(path.rstrip("/"))
    if volume_kind(name, data):
        fetch = companions.get if member else _sibling_reader(path, task.limits)
        return _volume_file(path, member, digest, name, data, fetch, task)
    if member is None and is_data_name(name) and data[128:132] != b"DICM":
        return rejected(path, None, digest, *orphan_reason())
    outcome = process_instance(data, task.key, task.deid, task.limits, bool(task.export_to))
    if isinstance(outcome, Accepted):
        if task.export_to and outcome.dicom_bytes is not None:
            write_exported(task.export_to, digest, outcome.dicom_bytes)
        return accepted(path, member, digest, outcome)
    if isinstance(outcome, ReadMessageUnit):
        return read_message(path, member, digest, outcome)
    return rejected(path, member, digest, outcome.reason, outcome.detail)


def _volume_file(
    path: str,
    member: str | None,
    digest: str,
    name: str,
    data: bytes,
    companion: Callable[[str], bytes | None],
    task: Task,
) -> dict[str, Any]:
    """The record of a MetaImage or NIfTI volume file (:mod:`sparkdl.units.volume_file`)."""
    first, second = volume_file_record(name, data, companion, task.key, task.limits)
    if isinstance(first, dict) and isinstance(second, bytes):  # fields and HU bytes
        return accepted(path, member, digest, Accepted(first, second, "<i2", None))
    return rejected(path, member, digest, str(first), str(second))  # reason and detail


def _sibling_reader(path: str, limits: Limits) -> Callable[[str], bytes | None]:
    """Reads the file a loose ``.mhd`` names beside it (its reader refused unsafe names)."""

    def read(relative: str) -> bytes | None:
        target = posixpath.join(posixpath.dirname(path), relative)
        try:
            with open_input(target) as handle:
                data: bytes = handle.read(limits.max_file_bytes + 1)
        except (FileNotFoundError, IsADirectoryError):
            return None
        return data

    return read


def rejected(
    path: str, member: str | None, digest: str | None, reason: str, detail: str | None
) -> dict[str, Any]:
    """A rejected record (columns of RECORD_SCHEMA; the others are null)."""
    return {
        "source_path": path,
        "member": member,
        "content_sha256": digest,
        "status": "rejected",
        "reason": reason,
        "detail": detail,
    }


def read_message(
    path: str, member: str | None, digest: str, outcome: ReadMessageUnit
) -> dict[str, Any]:
    """The record of an LIDC read message: its series and the pseudonymized message."""
    return {
        "source_path": path,
        "member": member,
        "content_sha256": digest,
        "status": "read_message",
        "series_uid": outcome.series_uid,
        "read_message": outcome.read_message,
    }


def accepted(path: str, member: str | None, digest: str, outcome: Accepted) -> dict[str, Any]:
    """An accepted record: catalog fields, payloads and where it came from."""
    return {
        **outcome.fields,
        "source_path": path,
        "member": member,
        "content_sha256": digest,
        "status": "accepted",
        "pixels": outcome.pixels,
        "pixel_dtype": outcome.pixel_dtype,
    }
