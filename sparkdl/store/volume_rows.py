"""Stored volumes read by the Python task that uses them, not through the JVM.

A stored volume is one Parquet value of about 140 MB at 512² × 260. Read by Spark and handed
to a Python task as Arrow (``mapInArrow``), a volume took about 1 s to arrive on 2 cores
(Spark's Parquet reader, its Arrow writer, the worker socket), 0.25 s read by the task with
pyarrow (``scripts/bench_volume_read.py``). So the driver only lists the part files (one
listing, as Spark's own scan does) and each task reads its files itself
(:func:`read_volume_batches`), as the tasks that make Parquet parts write them themselves
(:mod:`sparkdl.store.writer`). Which series a file holds is read in the task too: the driver
opens no file, so planning stays one listing however many volumes there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sparkdl.store.metadata import part_files
from sparkdl.store.storage import arrow_filesystem

__all__ = ["read_volume_batches", "volume_files"]


def volume_files(url: str) -> list[str]:
    """The part files of the volumes table at ``url`` (paths of its pyarrow file system),
    sorted; none when the folder does not exist."""
    fs, root = arrow_filesystem(url)
    return part_files(fs, root, missing_ok=True)


def read_volume_batches(
    url: str, paths: Iterable[str], wanted: frozenset[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The stored rows of the part files ``paths``, a row group at a time (one volume in
    memory, as sparkdl writes them); only the rows of ``wanted`` series when given, and only
    the row groups that hold one (found from the small ``series_uid`` column first)."""
    fs, _ = arrow_filesystem(url)
    for path in paths:
        with fs.open_input_file(path) as source:
            parquet = pq.ParquetFile(source)
            for index in _row_groups(parquet, wanted):
                table = parquet.read_row_group(index)
                if wanted is not None:
                    chosen = pc.is_in(
                        table.column("series_uid"), value_set=pa.array(sorted(wanted))
                    )
                    table = table.filter(chosen)
                yield from table.to_batches()


def _row_groups(parquet: pq.ParquetFile, wanted: frozenset[str] | None) -> list[int]:
    """The row groups of ``parquet`` holding a ``wanted`` series (all when None)."""
    if wanted is None:
        return list(range(parquet.num_row_groups))
    chosen = []
    for index in range(parquet.num_row_groups):
        series = parquet.read_row_group(index, columns=["series_uid"]).column(0).to_pylist()
        if wanted.intersection(series):
            chosen.append(index)
    return chosen
