"""Stored volumes read by the Python task that uses them, not through the JVM.

A stored volume is one Parquet value of about 140 MB at 512² × 260. Read by Spark and handed
to a Python task as Arrow (``mapInArrow``), one such volume took 2.3–2.9 s to arrive, 4.8 s
the first time, on 2 cores (Spark's Parquet reader, its Arrow writer, the worker socket);
pyarrow reads it in 0.2 s. So the driver lists the volumes' row groups from the part files'
footers and their ``series_uid`` column (:func:`plan_volume_groups`, small reads), and each
task reads its own row groups (:func:`read_volume_batches`), as the tasks that make Parquet
parts write them themselves (:mod:`sparkdl.store.writer`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sparkdl.store.metadata import part_files
from sparkdl.store.storage import arrow_filesystem

__all__ = ["VolumeGroup", "plan_volume_groups", "read_volume_batches"]


@dataclass(frozen=True)
class VolumeGroup:
    """One row group of a volumes part file, and the series of its rows (one, as sparkdl
    writes them: a volume per row group)."""

    path: str  # as the table's pyarrow file system names it
    index: int
    series: tuple[str, ...]


def plan_volume_groups(url: str) -> list[VolumeGroup]:
    """Every row group of the volumes table at ``url``, in file order; none when the folder
    does not exist."""
    fs, root = arrow_filesystem(url)
    groups = []
    for path in part_files(fs, root, missing_ok=True):
        with fs.open_input_file(path) as source:
            parquet = pq.ParquetFile(source)
            series = parquet.read(columns=["series_uid"]).column(0).to_pylist()
            start = 0
            for index in range(parquet.num_row_groups):
                end = start + parquet.metadata.row_group(index).num_rows
                groups.append(VolumeGroup(path, index, tuple(series[start:end])))
                start = end
    return groups


def read_volume_batches(
    url: str, groups: Iterable[VolumeGroup], wanted: frozenset[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The stored rows of ``groups``, a row group at a time (one volume in memory); only the
    rows of ``wanted`` series when given."""
    fs, _ = arrow_filesystem(url)
    for group in groups:
        with fs.open_input_file(group.path) as source:
            table = pq.ParquetFile(source).read_row_group(group.index)
        if wanted is not None:
            chosen = pc.is_in(table.column("series_uid"), value_set=pa.array(sorted(wanted)))
            table = table.filter(chosen)
        yield from table.to_batches()
