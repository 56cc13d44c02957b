"""The read stage of ingest: every unit of every input file staged as one record, on the executors.

:func:`stage_records` is the Spark job: the files are packed into size-balanced partitions,
the files of a folder together (:mod:`sparkdl.ingestion.discover`), each task turns its
files into records (:func:`sparkdl.units.records.file_records`) and writes them as its own
Parquet part (:mod:`sparkdl.store.writer`); Spark sees one small row per task: how many
records, and how many CT slices of each series the part holds (the plan of
:mod:`sparkdl.ingestion.local_assembly`). The job of an ingest run calls it once for the new
files, and once more in an append run for the earlier instances of the series it rebuilds.
"""

from __future__ import annotations

import logging
import posixpath
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from sparkdl.ingestion.discover import choose_num_partitions, pack_partitions
from sparkdl.store.storage import HadoopFS, join
from sparkdl.store.writer import clean, task_part_name, write_part
from sparkdl.units.records import InputFile, Selection, Task, file_records

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)


#: Records per Arrow batch, and a byte bound, so a partition never holds more than one batch.
BATCH_RECORDS = 256
_BATCH_BYTES = 64 * 1024**2

#: Record columns of image bytes (no dictionary, no statistics in the staged Parquet).
_IMAGE_COLUMNS = ("pixels",)

#: The rows ``arrow_records`` takes: one per input file, in its partition.
FILE_SCHEMA = "path STRING, size LONG, is_symlink BOOLEAN"

#: What each read task returns: its part file, its records, and per series its CT slices
#: and the CT slices of the row groups that hold them.
_PART_SCHEMA = "part STRING, rows LONG, series ARRAY<STRING>, slices ARRAY<LONG>, read ARRAY<LONG>"


class Placed(NamedTuple):
    """A series' CT slices (accepted records with pixels) in one staged part, and the CT
    slices of the part's row groups that hold them (what a reader of the series reads)."""

    slices: int
    read: int


@dataclass(frozen=True)
class Staged:
    """The staged records, and where the CT slices of each series are:
    ``series_uid → {part file: Placed}``."""

    records: DataFrame
    parts_of: dict[str, dict[str, Placed]]


def stage_records(
    spark: SparkSession,
    files: list[InputFile],
    task: Task,
    selection: Selection,
    target_bytes: int,
    path: str,
    files_done: Any = None,
) -> Staged:
    """Parse every unit on the executors and stage one record per unit as Parquet at ``path``.

    Files are packed into partitions of about ``target_bytes`` of input each, the files of a
    folder together (:func:`~sparkdl.ingestion.discover.pack_partitions`). ``files_done``,
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
    # Each task writes its records itself (sparkdl.store.writer); Spark sees one small row
    # each: the part, its records, and its CT slices per series (_PART_SCHEMA).
    parts = spark.createDataFrame(rows, FILE_SCHEMA).mapInArrow(
        lambda batches: _stage_partition(_counted(batches, files_done), task, shared.value, path),
        _PART_SCHEMA,
    )
    parts_of: dict[str, dict[str, Placed]] = {}
    written = 0
    for part in parts.collect():
        written += part["rows"]
        for series, slices, read in zip(part["series"], part["slices"], part["read"]):
            parts_of.setdefault(series, {})[part["part"]] = Placed(slices, read)
    shared.unpersist()
    clean(path)
    logger.debug("staged %d records", written)
    return Staged(spark.read.schema(RECORD_SCHEMA).parquet(path), parts_of)


def _stage_partition(
    batches: Iterable[Any], task: Task, selection: Selection, path: str
) -> Iterator[Any]:
    """``mapInArrow`` body: the partition's records written as its part file at ``path``;
    one row out (:data:`_PART_SCHEMA`)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from sparkdl.store.tables import RECORD_SCHEMA

    name = task_part_name("records")
    slices: Counter[str] = Counter()
    read: Counter[str] = Counter()
    records = _tallied(arrow_records(batches, task, selection), slices, read)
    schema = to_arrow_schema(RECORD_SCHEMA)
    rows = write_part(records, path, name, schema, _IMAGE_COLUMNS)
    yield pa.RecordBatch.from_pydict(
        {
            "part": [join(path, name)],
            "rows": [rows],
            "series": [list(slices)],
            "slices": [list(slices.values())],
            "read": [[read[series] for series in slices]],
        }
    )


def _tallied(batches: Iterable[Any], slices: Counter[str], read: Counter[str]) -> Iterator[Any]:
    """The record batches (each is written as a row group), their CT slices (accepted, with
    pixels) counted per series into ``slices``, and into ``read`` the CT slices of every
    batch that holds some of the series."""
    import pyarrow.compute as pc

    for batch in batches:
        is_slice = pc.and_(
            pc.equal(batch.column("status"), "accepted"), pc.is_valid(batch.column("pixels"))
        )
        here = Counter(batch.filter(is_slice).column("series_uid").to_pylist())
        slices.update(here)
        total = here.total()
        read.update(dict.fromkeys(here, total))
        yield batch


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
    folder = None
    for batch in batches:
        for row in batch.to_pylist():
            item = InputFile(row["path"], row["size"], row["is_symlink"])
            if pending and posixpath.dirname(item.path) != folder:
                # A row group per folder (one series, as a rule): the task that assembles a
                # series reads only the row groups that hold it.
                yield pa.RecordBatch.from_pylist(pending, schema=schema)
                pending, size = [], 0
            folder = posixpath.dirname(item.path)
            for record in file_records(item, task, selection):
                pending.append(record)
                size += sum(len(v) for v in record.values() if isinstance(v, bytes))
                if len(pending) >= BATCH_RECORDS or size >= _BATCH_BYTES:
                    yield pa.RecordBatch.from_pylist(pending, schema=schema)
                    pending, size = [], 0
    if pending:
        yield pa.RecordBatch.from_pylist(pending, schema=schema)
