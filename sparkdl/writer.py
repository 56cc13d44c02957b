"""Writing a Petastorm dataset with Spark: encoded rows, Parquet parts, then ``_common_metadata``.

What Petastorm's ``dict_to_spark_row`` + ``materialize_dataset`` did, with sparkdl's own
schema (:mod:`sparkdl.unischema`) and metadata (:mod:`sparkdl.dataset_metadata`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyspark import RDD
from pyspark.sql import DataFrame, DataFrameWriter, SparkSession

from .dataset_metadata import write_metadata
from .schemas import PARQUET_COMPRESSION
from .storage import to_url
from .unischema import Schema


def to_frame(spark: SparkSession, rows: RDD[dict[str, Any]], schema: Schema) -> DataFrame:
    """An RDD of schema dicts as a DataFrame encoded the way Petastorm stores it."""
    return spark.createDataFrame(rows.map(schema.encode_row), schema.as_spark_schema())


def _without_statistics(writer: DataFrameWriter, columns: Iterable[str]) -> DataFrameWriter:
    """``writer`` with no min/max statistics for the binary ``columns`` (pixels, volumes).

    parquet-mr copies every value that becomes a row group's new minimum or maximum: for a
    column of whole CT volumes that is two more copies of ~150 MB per value, which ran a 4 GB
    driver out of heap on LUNA16-sized scans. Statistics of image bytes filter nothing.
    """
    for column in columns:
        writer = writer.option(f"parquet.column.statistics.enabled#{column}", "false")
    return writer


def write_dataset(
    frame: DataFrame, schema: Schema, url: str, row_group_mb: int, num_files: int | None = None
) -> None:
    """Write ``frame`` as a Petastorm dataset at ``url``: the parts, then ``_common_metadata``."""
    url = to_url(url)
    if num_files is not None:
        frame = frame.repartition(num_files)
    # parquet-mr first measures a row group after 100 rows: with rows of tens of KB
    # (patches) or MB (volumes) that is far past the target, so patch files came out
    # as [100, rest] and volume groups held 100 series. Measuring from the first row
    # on gives row groups of about the target size. Both options apply to this write only.
    binary = [f.name for f in frame.schema.fields if f.dataType.typeName() == "binary"]
    writer = frame.write.mode("overwrite").option("compression", PARQUET_COMPRESSION)
    writer = writer.option("parquet.block.size", row_group_mb * 1024 * 1024)
    _without_statistics(writer.option("parquet.page.size.row.check.min", 1), binary).parquet(url)
    write_metadata(url, schema)
