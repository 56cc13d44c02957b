"""A tiny ``patches/`` dataset written the way ingest writes it, for the reader tests.

Rows are written with Spark, ``dict_to_spark_row`` and Petastorm's ``materialize_dataset``
using :func:`sparkdl.store.tables.patch_schema`, into several Parquet files holding several row
groups each with uneven row counts, so that sharding by row group gives uneven shards.

Every row carries its id in voxel ``(0, 0, 0)``: ``HU = -1340 + 20 * id``, which the default
lung window maps to ``x = (10 + 20 * id) / 1500`` (see :func:`row_id_from_window`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

#: Rows per Spark partition (one Parquet file each): uneven on purpose.
DEFAULT_FILE_ROWS = (27, 19, 14)
#: Parquet row-group size in bytes for the test data: a few rows per group.
_TEST_BLOCK_BYTES = 18 * 1024


def split_of(row_id: int) -> str:
    """The split of a row: ids 0, 1, 2 mod 5 train, 3 val, 4 test."""
    return ("train", "train", "train", "val", "test")[row_id % 5]


def malignancy_of(row_id: int) -> int:
    """Malignancy of a row: -1 (unknown) for every third row, else alternating 0/1."""
    return -1 if row_id % 3 == 0 else row_id % 2


def label_of(row_id: int) -> int:
    return int(row_id % 4 == 0)


def patch_of(row_id: int, size: int) -> np.ndarray:
    """HU patch: lung-like noise, a brighter blob, and the row id in voxel (0, 0, 0)."""
    rng = np.random.default_rng(row_id)
    patch = rng.normal(-800.0, 60.0, (size, size, size))
    z, y, x = np.mgrid[:size, :size, :size] - (size - 1) / 2
    patch[z * z + y * y + x * x < (size / 4) ** 2] = 40.0
    patch[0, 0, 0] = -1340 + 20 * row_id
    patch[0, 0, 1] = -3024  # below any window: the clip at 0 is exercised
    patch[0, 0, 2] = 3071  # above any window: the clip at 1 is exercised
    return patch.astype(np.int16)


def row_id_from_window(x: np.ndarray) -> np.ndarray:
    """Row ids from windowed batches ``x [B, D, H, W, 1]`` (default lung window)."""
    return np.rint((np.asarray(x)[:, 0, 0, 0, 0] * 1500.0 - 10.0) / 20.0).astype(int)


def _rows(first_id: int, count: int, size: int) -> Iterator[dict[str, Any]]:
    for row_id in range(first_id, first_id + count):
        yield {
            "patch_id": f"p{row_id:04d}",
            "series_uid": f"2.25.{row_id // 7}",
            "patient_id": f"pat{row_id // 7:03d}",
            "patch": patch_of(row_id, size),
            "label": np.int32(label_of(row_id)),
            "malignancy": np.int32(malignancy_of(row_id)),
            "diameter_mm": np.float32(4.0 + row_id % 5),
            "center": np.array([row_id, -row_id, 2.5 * row_id], dtype=np.float64),
            "source": "annotation" if label_of(row_id) else "candidate",
            "sources": "annotations" if label_of(row_id) else "candidates",
            "split": split_of(row_id),
        }


def write_patches(
    spark: Any,
    url: str,
    *,
    size: int = 8,
    file_rows: Sequence[int] = DEFAULT_FILE_ROWS,
    block_bytes: int = _TEST_BLOCK_BYTES,
) -> int:
    """Write ``sum(file_rows)`` patches of ``size``³ to ``url``; return the row count.

    One Parquet file per entry of ``file_rows``; ``block_bytes`` (Parquet ``parquet.block.size``)
    cuts each file into row groups of a few rows.
    """
    from pyspark import cloudpickle

    # The Python workers cannot import this test module: ship its functions by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

    from sparkdl.store.metadata import write_metadata
    from sparkdl.store.tables import patch_schema

    schema = patch_schema(size)
    starts = np.concatenate([[0], np.cumsum(file_rows)[:-1]]).tolist()
    parts = list(zip(starts, file_rows))
    rdd = (
        spark.sparkContext.parallelize(parts, len(parts))
        .flatMap(lambda part: _rows(part[0], part[1], size))
        .map(schema.encode_row)
    )
    (
        spark.createDataFrame(rdd, schema.as_spark_schema())
        .write.mode("overwrite")
        .option("compression", "zstd")
        # Write options reach the job's Hadoop conf: the session's stays untouched.
        .option("parquet.block.size", block_bytes)
        # parquet-mr checks the row-group size every N rows (default N >= 100).
        .option("parquet.page.size.row.check.min", 2)
        .option("parquet.page.size.row.check.max", 4)
        .parquet(url)
    )
    write_metadata(url, schema)
    return int(sum(file_rows))
