"""Changing a published table by whole files (copy-on-write), so an append run costs what changed.

A published table is a folder of Parquet part files. An append run does not rewrite it: it
stages new part files (its new rows, plus the surviving rows of each published file that
held a row it replaces), and the commit deletes the replaced files and moves the staged ones
in (:mod:`sparkdl.ingestion.publish`). Files without a replaced row are neither read nor written.

The small columns an append run needs on the driver (hashes, series, file names, counts)
are read with pyarrow directly: no Spark job, whose start-up would cost more than the read.

Petastorm tables (``volumes``, ``patches``) also carry ``_common_metadata``: the Unischema
and the number of row groups of every file, which Petastorm's reader trusts. The staged
copy is rewritten to describe the table as it will be after the commit.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from sparkdl.store.storage import HadoopFS, arrow_filesystem, to_url

#: Spark's hidden column of file sources: the part file a row was read from.
FILE_NAME = "_metadata.file_name"


def read(
    spark: SparkSession, fs: HadoopFS, path: str, schema: StructType | None = None
) -> DataFrame | None:
    """A published table, or None when there is none.

    With ``schema``, Spark reads no footer first.
    """
    if not fs.exists(path):
        return None
    reader = spark.read if schema is None else spark.read.schema(schema)
    return reader.parquet(to_url(path))


def columns(path: str, names: list[str], series: set[str] | None = None) -> pa.Table | None:
    """Columns of the published table at ``path``, read on the driver; None without a table.

    With ``series``, only the rows of those series (filtered by pyarrow while reading).
    """
    dataset = open_dataset(path)
    if dataset is None:
        return None
    where = None if series is None else pc.field("series_uid").isin(sorted(series))
    return dataset.to_table(columns=names, filter=where)


def count_rows(path: str) -> int:
    """Rows of the published table at ``path`` (from the Parquet footers)."""
    dataset = open_dataset(path)
    return 0 if dataset is None else dataset.count_rows()


def files_with(path: str, series: set[str]) -> list[str]:
    """Names of the part files of the published table at ``path`` holding a row of ``series``."""
    dataset = open_dataset(path)
    if dataset is None or not series:
        return []
    where = pc.field("series_uid").isin(sorted(series))
    return sorted(
        fragment.path.rsplit("/", 1)[-1]
        for fragment in dataset.get_fragments()
        if fragment.count_rows(filter=where)
    )


def open_dataset(path: str) -> ds.Dataset | None:
    """The part files under ``path`` (names starting with ``_`` or ``.`` are not data)."""
    fs, root = arrow_filesystem(path)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return None
    return ds.dataset(root, filesystem=fs, format="parquet")


def rows_in(table: DataFrame, files: list[str]) -> DataFrame:
    """The rows of those files of a published ``table``, to be written again (less the replaced)."""
    return table.filter(F.col(FILE_NAME).isin(files) if files else F.lit(False))
