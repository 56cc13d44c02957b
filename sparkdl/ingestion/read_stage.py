"""The read stage of ingest: every unit of every input file staged as one record, on the executors.

:func:`stage_records` is the Spark job: the files are packed into size-balanced partitions
(:mod:`sparkdl.ingestion.discover`), each task turns its files into records
(:func:`sparkdl.units.records.file_records`) and writes them as its own Parquet part
(:mod:`sparkdl.store.writer`); Spark sees one count per task. The job of an ingest run
calls it once for the new files, and once more in an append run for the earlier instances
of the series it rebuilds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from sparkdl.ingestion.discover import choose_num_partitions, pack_partitions
from sparkdl.store.storage import HadoopFS
from sparkdl.store.writer import clean, write_task_part
from sparkdl.units.records import InputFile, Selection, Task, file_records

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)


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
