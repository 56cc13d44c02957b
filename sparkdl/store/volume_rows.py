"""Stored volumes read by the Python task that uses them, not through the JVM.

A stored volume is one Parquet value of about 140 MB at 512² × 260. Read by Spark and handed
to a Python task as Arrow (``mapInArrow``), a volume took about 1 s to arrive on 2 cores
(Spark's Parquet reader, its Arrow writer, the worker socket), 0.25 s read by the task with
pyarrow (``scripts/bench_volume_read.py``). So the driver only lists the part files (one
listing, as Spark's own scan does) and each task reads its files itself
(:func:`map_volumes`), as the tasks that make Parquet parts write them themselves
(:mod:`sparkdl.store.writer`). Which series a file holds is read in the task too: the driver
opens no file, so planning stays one listing however many volumes there are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from sparkdl.store.metadata import RowGroup, part_files
from sparkdl.store.reader import read_group
from sparkdl.store.storage import arrow_filesystem

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

__all__ = ["groups_holding", "map_volumes", "read_volume_batches", "volume_files"]

#: What a task does with the stored volume rows it read: Arrow batches out.
VolumeBody = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


def volume_files(url: str) -> list[str]:
    """The part files of the volumes table at ``url`` (paths of its pyarrow file system),
    sorted; none when the folder does not exist."""
    fs, root = arrow_filesystem(url)
    return part_files(fs, root, missing_ok=True)


def map_volumes(
    spark: SparkSession,
    url: str,
    files: list[str],
    body: VolumeBody,
    schema: StructType | str,
    wanted: frozenset[str] | None = None,
) -> DataFrame:
    """``body`` over the stored rows of the volume part ``files`` (of ``wanted`` series only,
    when given), each task reading its own files: a few tasks per core, in file order."""
    slices = max(1, min(len(files), 4 * spark.sparkContext.defaultParallelism))
    planned = spark.sparkContext.parallelize([(path,) for path in files], slices)

    def read(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        mine = (path for batch in batches for path in batch.column("path").to_pylist())
        return body(read_volume_batches(url, mine, wanted))

    return spark.createDataFrame(planned, "path STRING").mapInArrow(read, schema)


def read_volume_batches(
    url: str, paths: Iterable[str], wanted: frozenset[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The stored rows of the part files ``paths``, a row group at a time (one volume in
    memory, as sparkdl writes them); with ``wanted``, only the row groups holding one of
    those series (found from the small ``series_uid`` column) and only their rows."""
    fs, _ = arrow_filesystem(url)
    where = None if wanted is None else {"series_uid": wanted}
    for path in paths:
        for group in groups_holding(fs, path, wanted):
            yield from read_group(fs, group, where=where).to_batches()


def groups_holding(fs: pafs.FileSystem, path: str, wanted: frozenset[str] | None) -> list[RowGroup]:
    """The row groups of the part file ``path`` that hold a ``wanted`` series (all when None)."""
    with fs.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        counts = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
        series = (
            [] if wanted is None else parquet.read(columns=["series_uid"]).column(0).to_pylist()
        )
    groups, start = [], 0
    for index, count in enumerate(counts):
        if wanted is None or wanted.intersection(series[start : start + count]):
            groups.append(RowGroup(path, index))
        start += count
    return groups
