"""The volumes stage: CT instances grouped by series on the executors, assembled into HU volumes.

The array work lives in :mod:`sparkdl.assembly`; this module groups the catalog's pixel
records by series, writes ``volumes/`` (:mod:`sparkdl.writer`) and returns one small outcome
row per instance to the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, StructField, StructType

from .assembly import VolumeOptions, assemble_series
from .catalog import VOLUME_OUTCOME_FIELDS
from .schemas import VolumeSchema
from .writer import to_frame, write_dataset

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


def build_volumes(
    spark: SparkSession,
    accepted: DataFrame,
    options: VolumeOptions,
    url: str,
    keep: DataFrame | None = None,
) -> DataFrame:
    """Assemble every CT series into HU volumes written to ``url`` (Petastorm).

    ``keep`` holds volume rows of an earlier run (as stored) to write along with the new ones;
    nothing is written when there is no volume at all. Returns one outcome row per CT
    instance (``volume_id``, ``volume_status``, ``volume_reason``).
    """
    slices = accepted.filter(accepted.pixels.isNotNull()).select(*_SLICE_COLUMNS)
    results = (
        slices.rdd.map(lambda row: (row["series_uid"], row.asDict()))
        .groupByKey()
        .flatMap(lambda kv: _assemble(kv[1], options))
        .persist(StorageLevel.DISK_ONLY)
    )
    # One small row per instance (collected, so the DataFrame does not depend on `results`),
    # and a None per volume, counted in the same pass.
    collected = results.map(lambda r: r[1] if r[0] == "outcome" else None).collect()
    outcomes = spark.createDataFrame([r for r in collected if r is not None], OUTCOME_SCHEMA)
    frame = to_frame(
        spark, results.filter(lambda r: r[0] == "volume").map(lambda r: r[1]), VolumeSchema
    )
    has_volumes = any(r is None for r in collected)
    if keep is not None and not keep.isEmpty():
        frame, has_volumes = keep.select(*frame.columns).unionByName(frame), True
    if has_volumes:
        write_dataset(frame, VolumeSchema, url, VOLUME_ROW_GROUP_MB)
    results.unpersist()
    return outcomes


def _assemble(rows: Iterable[dict[str, Any]], options: VolumeOptions) -> Iterator[tuple[str, Any]]:
    records = []
    for row in rows:
        record = dict(row)
        pixels = np.frombuffer(record.pop("pixels"), dtype=np.dtype(record.pop("pixel_dtype")))
        record["pixels"] = pixels.reshape(int(record["Rows"]), int(record["Columns"]))
        records.append(record)
    result = assemble_series(records, options)
    for volume in result.volumes:
        yield "volume", volume.to_row()
    for sop_uid, outcome in result.instances.items():
        yield "outcome", (sop_uid, outcome.volume_id, outcome.status, outcome.reason)
