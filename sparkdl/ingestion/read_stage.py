"""Executor side of ingest: every unit of every input file becomes exactly one record.

:func:`stage_records` is the Spark job that runs it: files packed into partitions, records
staged as Parquet.

A record is a dict of :data:`sparkdl.store.tables.RECORD_SCHEMA` columns: accepted (catalog fields,
pixels for CT slices, optional de-identified DICOM bytes) or rejected (reason, detail).

For incremental runs a :class:`Selection` narrows the work: units whose content hash was
cataloged or rejected before are skipped, and when series are rebuilt only the wanted
members of a file are parsed again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sparkdl.deid import DeidOptions
from sparkdl.ingestion.discover import InputFile, choose_num_partitions, pack_partitions
from sparkdl.store.storage import HadoopFS, join, open_input, write_bytes
from sparkdl.store.writer import clean, write_task_part
from sparkdl.units.archives import Limits, iter_units
from sparkdl.units.parse import Accepted, ReadMessageUnit, process_instance
from sparkdl.units.volume_file import (
    is_data_name,
    orphan_reason,
    pair_members,
    volume_file_record,
    volume_kind,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)


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
    #: hash (:func:`exported_path`), or None for no export. Written here, in the task that
    #: made the bytes; the write stage moves the cataloged ones to their place.
    export_to: str | None = None


#: Records per Arrow batch, and a byte bound, so a partition never holds more than one batch.
_BATCH_RECORDS = 256
_BATCH_BYTES = 64 * 1024**2

#: Record columns of image bytes (no dictionary, no statistics in the staged Parquet).
_IMAGE_COLUMNS = ("pixels",)

#: The rows ``arrow_records`` takes: one per input file, in its partition.
FILE_SCHEMA = "path STRING, size LONG, is_symlink BOOLEAN"


def stage_records(
    spark: SparkSession,
    files: list[InputFile],
    task: Task,
    selection: Selection,
    target_bytes: int,
    path: str,
    files_done: Any = None,
) -> DataFrame:
    """Parse every unit on the executors and stage one record per unit as Parquet at ``path``.

    Files are packed into partitions of about ``target_bytes`` of input each. ``files_done``,
    a Spark accumulator, counts the files read (for progress).
    """
    from sparkdl.store.tables import RECORD_SCHEMA

    sc = spark.sparkContext
    num_partitions = choose_num_partitions(files, sc.defaultParallelism, target_bytes)
    bins = pack_partitions(files, num_partitions)
    # One bin per partition (parallelize slices a list of bins evenly), its files as rows.
    rows = sc.parallelize(bins, max(len(bins), 1)).flatMap(
        lambda files_in_bin: [(f.path, f.size, f.is_symlink) for f in files_in_bin]
    )
    shared = sc.broadcast(selection)  # possibly large (known hashes); holds no key
    HadoopFS(spark, path).delete(path)
    # Each task writes its records itself (sparkdl.store.writer); Spark sees one count each.
    counts = spark.createDataFrame(rows, FILE_SCHEMA).mapInArrow(
        lambda batches: _stage_partition(_counted(batches, files_done), task, shared.value, path),
        "rows LONG",
    )
    written = sum(row[0] for row in counts.collect())
    shared.unpersist()
    clean(path)
    logger.debug("staged %d records", written)
    return spark.read.schema(RECORD_SCHEMA).parquet(path)


def _stage_partition(
    batches: Iterable[Any], task: Task, selection: Selection, path: str
) -> Iterator[Any]:
    """``mapInArrow`` body: the partition's records written as its part file at ``path``;
    one batch out, the number of records."""
    from pyspark.sql.pandas.types import to_arrow_schema

    from sparkdl.store.tables import RECORD_SCHEMA

    records = arrow_records(batches, task, selection)
    schema = to_arrow_schema(RECORD_SCHEMA)
    return write_task_part(records, path, "records", schema, _IMAGE_COLUMNS)


def _counted(batches: Iterable[Any], files_done: Any) -> Iterator[Any]:
    """The input batches, each counted into ``files_done`` once it has been processed."""
    for batch in batches:
        yield batch
        if files_done is not None:
            files_done.add(batch.num_rows)


def arrow_records(batches: Iterable[Any], task: Task, selection: Selection) -> Iterator[Any]:
    """``mapInArrow`` body: input files in (:data:`FILE_SCHEMA`), record batches out.

    Arrow hands the pixel and DICOM bytes to the JVM in columnar buffers, which is several
    times cheaper than pickling one Python row per instance.
    """
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from sparkdl.store.tables import RECORD_SCHEMA

    schema = to_arrow_schema(RECORD_SCHEMA)
    pending: list[dict[str, Any]] = []
    size = 0
    for batch in batches:
        for row in batch.to_pylist():
            item = InputFile(row["path"], row["size"], row["is_symlink"])
            for record in file_records(item, task, selection):
                pending.append(record)
                size += sum(len(v) for v in record.values() if isinstance(v, bytes))
                if len(pending) >= _BATCH_RECORDS or size >= _BATCH_BYTES:
                    yield pa.RecordBatch.from_pylist(pending, schema=schema)
                    pending, size = [], 0
    if pending:
        yield pa.RecordBatch.from_pylist(pending, schema=schema)


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
            write_bytes(exported_path(task.export_to, digest), outcome.dicom_bytes)
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


def exported_path(folder: str, digest: str) -> str:
    """Where a task writes the de-identified file of the unit whose content hash is ``digest``.

    Named by content, not by SOP instance: two copies of one file write the same bytes to one
    name, and the write stage moves only the copy the catalog kept."""
    return join(folder, digest[:2], digest + ".dcm")
