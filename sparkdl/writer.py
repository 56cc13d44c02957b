"""Writing a Petastorm dataset with Spark: encoded rows, Parquet parts, then ``_common_metadata``.

What Petastorm's ``dict_to_spark_row`` + ``materialize_dataset`` did, with sparkdl's own
schema (:mod:`sparkdl.unischema`) and metadata (:mod:`sparkdl.dataset_metadata`).
"""

from __future__ import annotations

from typing import Any

from pyspark import RDD
from pyspark.sql import DataFrame, SparkSession

from .dataset_metadata import write_metadata
from .schemas import PARQUET_COMPRESSION
from .storage import to_url
from .unischema import Schema


def to_frame(spark: SparkSession, rows: RDD[dict[str, Any]], schema: Schema) -> DataFrame:
    """An RDD of schema dicts as a DataFrame encoded the way Petastorm stores it."""
    return spark.createDataFrame(rows.map(schema.encode_row), schema.as_spark_schema())


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
    frame.write.mode("overwrite").option("compression", PARQUET_COMPRESSION).option(
        "parquet.block.size", row_group_mb * 1024 * 1024
    ).option("parquet.page.size.row.check.min", 1).parquet(url)
    write_metadata(url, schema)
