"""Changing a published table by whole files (copy-on-write), so an append run costs what changed.

A published table is a folder of Parquet part files. An append run does not rewrite it: it
stages new part files (its new rows, plus the surviving rows of each published file that
held a row it replaces), and the commit deletes the replaced files and moves the staged ones
in (:mod:`sparkdl.commit`). Files without a replaced row are neither read nor written.

Petastorm tables (``volumes``, ``patches``) also carry ``_common_metadata``: the Unischema
and the number of row groups of every file, which Petastorm's reader trusts. The staged
copy is rewritten to describe the table as it will be after the commit.
"""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from .commit import Journal, part_files
from .storage import HadoopFS, join, open_input, to_url, write_bytes

#: Petastorm's ``_common_metadata`` key for row groups per file (petastorm.etl.dataset_metadata).
ROW_GROUPS_PER_FILE_KEY = b"dataset-toolkit.num_row_groups_per_file.v1"

#: Spark's hidden column of file sources: the part file a row was read from.
FILE_NAME = "_metadata.file_name"


def read(spark: SparkSession, fs: HadoopFS, path: str, schema: StructType | None = None
         ) -> DataFrame | None:
    """A published table, or None when there is none; with ``schema``, Spark reads no footer first."""
    if not fs.exists(path):
        return None
    reader = spark.read if schema is None else spark.read.schema(schema)
    return reader.parquet(to_url(path))


def files_with(table: DataFrame, replaced: Column) -> list[str]:
    """Names of the part files of a published ``table`` (as read) holding a ``replaced`` row."""
    return sorted(r[0] for r in table.filter(replaced).select(FILE_NAME).distinct().collect())


def rows_in(table: DataFrame, files: list[str]) -> DataFrame:
    """The rows of those files of a published ``table``, to be written again (minus the replaced)."""
    return table.filter(F.col(FILE_NAME).isin(files) if files else F.lit(False))


def stage_replacement(fs: HadoopFS, journal: Journal, staged: str, published: str,
                      replaced_files: list[str]) -> None:
    """Journal steps that delete ``replaced_files`` of ``published`` and move in ``staged``'s parts."""
    for name in replaced_files:
        journal.delete(join(published, name))
    for path in part_files(fs, staged):
        journal.move(path, join(published, path.rsplit("/", 1)[-1]))
    if fs.exists(join(staged, "_common_metadata")):
        _merge_row_group_counts(fs, staged, published, replaced_files)
        journal.move(join(staged, "_common_metadata"), join(published, "_common_metadata"))


def _merge_row_group_counts(fs: HadoopFS, staged: str, published: str, replaced: list[str]) -> None:
    """Make the staged ``_common_metadata`` count the row groups of the whole table after commit."""
    staged_meta = _read_metadata(join(staged, "_common_metadata"))
    counts = {}
    if fs.exists(join(published, "_common_metadata")):
        published_meta = _read_metadata(join(published, "_common_metadata")).metadata or {}
        counts = json.loads(published_meta.get(ROW_GROUPS_PER_FILE_KEY, b"{}").decode())
    for name in replaced:
        counts.pop(name, None)
    schema = staged_meta.schema.to_arrow_schema()
    metadata = dict(schema.metadata or {})
    counts.update(json.loads(metadata.get(ROW_GROUPS_PER_FILE_KEY, b"{}").decode()))
    metadata[ROW_GROUPS_PER_FILE_KEY] = json.dumps(counts, sort_keys=True).encode()
    sink = io.BytesIO()
    pq.write_metadata(schema.with_metadata(metadata), sink)
    fs.delete(join(staged, "._common_metadata.crc"))  # Hadoop's local checksum of the old bytes
    write_bytes(join(staged, "_common_metadata"), sink.getvalue())


def _read_metadata(uri: str) -> pq.FileMetaData:
    with open_input(uri) as handle:
        return pq.read_metadata(handle)
