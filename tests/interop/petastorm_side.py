"""The Petastorm 0.13.1 side of the interop check: runs in ``.venv-interop``, never imports sparkdl.

That venv holds the last stack Petastorm runs on (pyarrow 14, NumPy 1.26, pyspark 4.0) and no
TensorFlow. ``tests/test_interop.py`` calls this script in a subprocess:

``read URL``
    Reads the dataset at ``URL`` with ``petastorm.make_reader`` (every row, and every row of
    each shard for 2 and 3 shards) and ``make_batch_reader``; prints ``RESULT <json>``, a
    digest of every row as each reader decoded it.
``write URL``
    Writes a dataset with Petastorm's own ``materialize_dataset`` (a patches-like Unischema),
    then prints (``RESULT <json>``) the digests of the rows it wrote.

A digest is ``{field: value}`` for scalars and ``{field: [dtype, shape, sha256]}`` for arrays,
computed identically on both sides, so the two environments never exchange pickles.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import warnings
from typing import Any

import numpy as np

# Petastorm on pyarrow 14 warns on every legacy API it uses; the check is about values.
warnings.simplefilter("ignore", FutureWarning)
warnings.simplefilter("ignore", UserWarning)

ID_FIELDS = ("patch_id", "series_uid")


def digest(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype.kind not in "OUS":
        data = np.ascontiguousarray(value)
        return [data.dtype.str, list(data.shape), hashlib.sha256(data.tobytes()).hexdigest()]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.item() if value.shape == () else [digest(v) for v in value]
    return value


def row_id(row: dict[str, Any]) -> str:
    return next(str(digest(row[name])) for name in ID_FIELDS if name in row)


def read(url: str) -> dict[str, Any]:
    from petastorm import make_batch_reader, make_reader

    # The "dummy" pool reads in this thread: Petastorm 0.13.1's ThreadPool can end a read
    # before the last queued row groups are handed over (a race between "all workers done"
    # and "ventilator completed"), which would fail this check for Petastorm's own reasons.
    with make_reader(
        url, num_epochs=1, reader_pool_type="dummy", shuffle_row_groups=False
    ) as reader:
        rows = [row._asdict() for row in reader]
    id_field = next(name for name in ID_FIELDS if name in rows[0])
    shards: dict[str, list[list[str]]] = {}
    for count in (2, 3):
        shards[str(count)] = []
        for index in range(count):
            with make_reader(
                url,
                num_epochs=1,
                reader_pool_type="dummy",
                shuffle_row_groups=False,
                cur_shard=index,
                shard_count=count,
                schema_fields=[id_field],
            ) as reader:
                shards[str(count)].append([row_id(row._asdict()) for row in reader])
    batch_rows = []
    with make_batch_reader(
        url, num_epochs=1, reader_pool_type="dummy", shuffle_row_groups=False
    ) as reader:
        for batch in reader:
            columns = batch._asdict()
            for i in range(len(next(iter(columns.values())))):
                batch_rows.append({name: values[i] for name, values in columns.items()})
    return {
        "make_reader": {row_id(r): {k: digest(v) for k, v in r.items()} for r in rows},
        "make_reader_rows": len(rows),
        "shards": shards,
        # make_batch_reader hands over the stored cells (NdarrayCodec bytes) undecoded.
        "make_batch_reader": {
            row_id(r): {
                k: digest(np.load(io.BytesIO(v))) if isinstance(v, bytes) else digest(v)
                for k, v in r.items()
            }
            for r in batch_rows
        },
    }


def write(url: str) -> dict[str, Any]:
    from petastorm.codecs import NdarrayCodec, ScalarCodec
    from petastorm.etl.dataset_metadata import materialize_dataset
    from petastorm.unischema import Unischema, UnischemaField, dict_to_spark_row
    from pyspark.sql import SparkSession
    from pyspark.sql.types import FloatType, IntegerType, StringType

    schema = Unischema(
        "PatchSchema",
        [
            UnischemaField("patch_id", np.str_, (), ScalarCodec(StringType()), False),
            UnischemaField("patch", np.int16, (8, 8, 8), NdarrayCodec(), False),
            UnischemaField("label", np.int32, (), ScalarCodec(IntegerType()), False),
            UnischemaField("malignancy", np.int32, (), ScalarCodec(IntegerType()), False),
            UnischemaField("diameter_mm", np.float32, (), ScalarCodec(FloatType()), False),
            UnischemaField("center", np.float64, (3,), NdarrayCodec(), False),
            UnischemaField("split", np.str_, (), ScalarCodec(StringType()), False),
        ],
    )
    rng = np.random.default_rng(7)
    rows = [
        {
            "patch_id": f"p{i:03d}",
            "patch": rng.integers(-1000, 400, (8, 8, 8)).astype(np.int16),
            "label": np.int32(i % 2),
            "malignancy": np.int32(i % 3 - 1),
            "diameter_mm": np.float32(3.5 + i),
            "center": np.array([i, -i, 0.5 * i], dtype=np.float64),
            "split": ("train", "val", "test")[i % 3],
        }
        for i in range(60)
    ]
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("petastorm-interop")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        with materialize_dataset(spark, url, schema, row_group_size_mb=1):
            frame = spark.createDataFrame(
                [dict_to_spark_row(schema, r) for r in rows], schema.as_spark_schema()
            )
            frame.repartition(3).write.mode("overwrite").parquet(url)
    finally:
        spark.stop()
    return {r["patch_id"]: {k: digest(v) for k, v in r.items()} for r in rows}


if __name__ == "__main__":
    command, target = sys.argv[1], sys.argv[2]
    result = read(target) if command == "read" else write(target)
    print("RESULT " + json.dumps(result, sort_keys=True))
