"""The volumes stage: CT instances grouped by series on the executors, assembled into HU volumes.

The array work lives in :mod:`sparkdl.assembly`; this module groups the catalog's pixel
records by series, writes ``volumes/`` (:mod:`sparkdl.writer`) and returns one small outcome
row per instance to the driver.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from .assembly import VolumeOptions, assemble_series
from .catalog import VOLUME_OUTCOME_FIELDS
from .schemas import VolumeSchema
from .volume_units import VOLUME_CLASS_NAMES
from .writer import write_dataset

_SLICE_COLUMNS = [
    "sop_uid",
    "series_uid",
    "study_uid",
    "patient_id",
    "frame_of_reference_uid",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
    "RescaleSlope",
    "RescaleIntercept",
    "ImageType",
    "SliceThickness",
    "AcquisitionNumber",
    "InstanceNumber",
    "GantryDetectorTilt",
    "NumberOfFrames",
    "pixels",
    "pixel_dtype",
]

#: What assembly says of each instance: joined onto the catalog by ``sop_uid``.
OUTCOME_SCHEMA = StructType([StructField("sop_uid", StringType(), False), *VOLUME_OUTCOME_FIELDS])

#: Row-group size of ``volumes/``: about one CT volume per group.
VOLUME_ROW_GROUP_MB = 32

#: What the grouped assembly returns: one row per instance (``kind`` "outcome": its outcome
#: columns set, the volume columns empty) and one per volume (``kind`` "volume": the encoded
#: VolumeSchema columns). One output keeps it to one pass over the slices; the volume columns
#: stay non-nullable, as ``volumes/`` stores them.
_VOLUME_FIELDS = VolumeSchema.as_spark_schema().fields
_RESULT_SCHEMA = StructType(
    [
        StructField("kind", StringType(), False),
        StructField("sop_uid", StringType()),
        StructField("outcome_volume_id", StringType()),
        StructField("volume_status", StringType()),
        StructField("volume_reason", StringType()),
        *_VOLUME_FIELDS,
    ]
)


def build_volumes(
    spark: SparkSession,
    accepted: DataFrame,
    options: VolumeOptions,
    url: str,
    keep: DataFrame | None = None,
    series_done: Any = None,
) -> DataFrame:
    """Assemble every CT series into HU volumes written to ``url`` (Petastorm).

    ``keep`` holds volume rows of an earlier run (as stored) to write along with the new ones;
    nothing is written when there is no volume at all. Returns one outcome row per CT
    instance (``volume_id``, ``volume_status``, ``volume_reason``). ``series_done``, a Spark
    accumulator, counts the series assembled (for progress).

    The slices of a series reach the assembly as one Arrow table (``applyInArrow``): no row
    is pickled on the way in or out, which the ``groupByKey`` this replaces did three times.
    """
    # A volume file's geometry (sparkdl.volume_units) rides along; DICOM headers stay behind.
    volume_file = F.when(
        F.col("sop_class_name").isin(*VOLUME_CLASS_NAMES.values()), F.col("header_json")
    )
    slices = accepted.filter(accepted.pixels.isNotNull()).select(
        *_SLICE_COLUMNS, volume_file.alias("volume_file")
    )
    # Hash-partitioned by series into a few partitions per core, which the grouping keeps:
    # spark.sql.shuffle.partitions (200) tasks, mostly empty, cost more than the assembly of
    # a small cohort, and adaptive execution does not coalesce them under a persisted plan.
    partitions = 2 * spark.sparkContext.defaultParallelism
    results = (
        slices.repartition(partitions, "series_uid")
        .groupBy("series_uid")
        .applyInArrow(lambda table: _assemble(table, options, series_done), _RESULT_SCHEMA)
        .persist(StorageLevel.DISK_ONLY)
    )
    # Outcomes are collected (small), so the returned DataFrame does not depend on `results`.
    collected = results.select(
        "kind", "sop_uid", "outcome_volume_id", "volume_status", "volume_reason"
    ).collect()
    outcomes = spark.createDataFrame(
        [row[1:] for row in collected if row["kind"] == "outcome"], OUTCOME_SCHEMA
    )
    frame = results.filter(results.kind == "volume").select(
        *(field.name for field in _VOLUME_FIELDS)
    )
    has_volumes = any(row["kind"] == "volume" for row in collected)
    if keep is not None and not keep.isEmpty():
        frame, has_volumes = keep.select(*frame.columns).unionByName(frame), True
    if has_volumes:
        write_dataset(frame, VolumeSchema, url, VOLUME_ROW_GROUP_MB)
    results.unpersist()
    return outcomes


def _assemble(table: pa.Table, options: VolumeOptions, series_done: Any) -> pa.Table:
    """One series' slices (an Arrow table) to its outcome and volume rows (another)."""
    records = []
    for row in table.to_pylist():
        pixels = np.frombuffer(row.pop("pixels"), dtype=np.dtype(row.pop("pixel_dtype")))
        if row["volume_file"]:
            planes = (int(row["NumberOfFrames"]), int(row["Rows"]), int(row["Columns"]))
            row["pixels"] = pixels.reshape(planes)
        else:
            row["pixels"] = pixels.reshape(int(row["Rows"]), int(row["Columns"]))
        records.append(row)
    result = assemble_series(records, options)
    empty_volume = {field.name: _EMPTY[field.dataType.typeName()] for field in _VOLUME_FIELDS}
    rows: list[dict[str, Any]] = []
    for volume in result.volumes:
        encoded = VolumeSchema.encode_row(volume.to_row())
        values = dict(zip(VolumeSchema.fields, encoded))
        rows.append({"kind": "volume", "sop_uid": None, **_NO_OUTCOME, **values})
    for sop_uid, outcome in result.instances.items():
        rows.append(
            {
                "kind": "outcome",
                "sop_uid": sop_uid,
                "volume_status": outcome.status,
                "volume_reason": outcome.reason,
                "outcome_volume_id": outcome.volume_id,
                **empty_volume,
            }
        )
    if series_done is not None:
        series_done.add(1)
    return pa.Table.from_pylist(rows, schema=_ARROW_RESULT_SCHEMA)


_NO_OUTCOME = {"outcome_volume_id": None, "volume_status": None, "volume_reason": None}
_EMPTY: dict[str, Any] = {"string": "", "binary": b"", "integer": 0}
_ARROW_RESULT_SCHEMA = pa.schema(
    [
        pa.field(
            field.name,
            {"string": pa.string(), "binary": pa.binary(), "integer": pa.int32()}[
                field.dataType.typeName()
            ],
            nullable=field.nullable,
        )
        for field in _RESULT_SCHEMA.fields
    ]
)
