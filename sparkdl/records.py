"""Executor side of ingest: every unit of every input file becomes exactly one record.

A record is a tuple in :data:`sparkdl.catalog.RECORD_SCHEMA` order: accepted (catalog fields,
pixels for CT slices, optional de-identified DICOM bytes) or rejected (reason, detail).

For incremental runs a :class:`Selection` narrows the work: units whose content hash was
cataloged or rejected before are skipped, and when series are rebuilt only the wanted
members of a file are parsed again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .archives import Limits, iter_units
from .catalog import RECORD_COLUMNS
from .deid import DeidOptions
from .discover import InputFile
from .parse import Accepted, process_instance
from .storage import open_input


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
    """What a partition needs besides its files: plain values, pickled to the executors."""

    key: bytes = field(repr=False)  # never in a repr, log line or error message
    deid: DeidOptions
    limits: Limits
    export_dicom: bool
    selection: Selection = field(default_factory=Selection)


def records(bins: Iterable[list[InputFile]], task: Task) -> Iterator[tuple[Any, ...]]:
    """All records of the files in a partition."""
    for files in bins:
        for item in files:
            yield from file_records(item, task)


#: Records per Arrow batch, and a byte bound, so a partition never holds more than one batch.
_BATCH_RECORDS = 256
_BATCH_BYTES = 64 * 1024**2


def arrow_records(batches: Iterable[Any], bins: list[list[InputFile]], task: Task) -> Iterator[Any]:
    """``mapInArrow`` body: bin indices in, record batches out (Arrow, no row pickling).

    Arrow hands the pixel and DICOM bytes to the JVM in columnar buffers, which is several
    times cheaper than pickling one Python row per instance.
    """
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from .catalog import RECORD_SCHEMA

    schema = to_arrow_schema(RECORD_SCHEMA)
    pending: list[tuple[Any, ...]] = []
    size = 0

    def flush() -> Any:
        columns = list(zip(*pending)) if pending else [[] for _ in RECORD_COLUMNS]
        return pa.RecordBatch.from_arrays(
            [pa.array(list(col), type=field.type) for col, field in zip(columns, schema)], schema=schema)

    for batch in batches:
        for index in batch.column(0).to_pylist():
            for item in bins[index]:
                for record in file_records(item, task):
                    pending.append(record)
                    size += sum(len(v) for v in record if isinstance(v, bytes))
                    if len(pending) >= _BATCH_RECORDS or size >= _BATCH_BYTES:
                        yield flush()
                        pending, size = [], 0
    if pending:
        yield flush()


def file_records(item: InputFile, task: Task) -> Iterator[tuple[Any, ...]]:
    """The records of one input file (one per unit, minus those the selection skips)."""
    selection = task.selection
    wanted = None if selection.wanted is None else selection.wanted.get(item.path, frozenset())
    if item.is_symlink:
        if wanted is None and (item.path, None) not in selection.known_keys:
            yield rejected(item.path, None, None, "symlink", "symbolic link not followed")
        return
    seen = 0
    try:
        name = os.path.basename(item.path.rstrip("/"))
        for unit in iter_units(name, lambda: open_input(item.path), item.size, task.limits):
            seen += 1
            if wanted is not None and unit.member not in wanted:
                continue
            if unit.data is None:
                if (item.path, unit.member) not in selection.known_keys:
                    yield rejected(item.path, unit.member, None, unit.reason or "read_error", unit.detail)
                continue
            digest = hashlib.sha256(unit.data).hexdigest()
            if wanted is None and digest in selection.known_hashes:
                continue
            outcome = process_instance(unit.data, task.key, task.deid, task.limits, task.export_dicom)
            if isinstance(outcome, Accepted):
                yield accepted(item.path, unit.member, digest, outcome)
            else:
                yield rejected(item.path, unit.member, digest, outcome.reason, outcome.detail)
    except Exception as err:  # noqa: BLE001 - a broken input must not stop the job
        reason = "read_error" if seen == 0 else "corrupt_archive"
        if (item.path, None) not in selection.known_keys:
            yield rejected(item.path, None, None, reason, f"{type(err).__name__} after {seen} units")


def rejected(path: str, member: str | None, digest: str | None, reason: str,
             detail: str | None) -> tuple[Any, ...]:
    row: dict[str, Any] = {"source_path": path, "member": member, "content_sha256": digest,
                           "status": "rejected", "reason": reason, "detail": detail}
    return tuple(row.get(name) for name in RECORD_COLUMNS)


def accepted(path: str, member: str | None, digest: str, outcome: Accepted) -> tuple[Any, ...]:
    row = dict(outcome.fields)
    row.update(source_path=path, member=member, content_sha256=digest, status="accepted",
               pixels=outcome.pixels, pixel_dtype=outcome.pixel_dtype, dicom_bytes=outcome.dicom_bytes)
    return tuple(row.get(name) for name in RECORD_COLUMNS)
