"""Spark glue around the pure series code: volumes, patches and DICOM export.

The array work lives in :mod:`sparkdl.assembly` and :mod:`sparkdl.patches`; this module only
groups records by series on the executors, writes Petastorm datasets and returns the small
per-instance outcomes to the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from pyspark import RDD, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StringType, StructField, StructType

from .assembly import VolumeOptions, assemble_series
from .catalog import VOLUME_OUTCOME_FIELDS
from .dataset_metadata import write_metadata
from .deid import remap_uid
from .patches import (PatchOptions, make_patch_rows, points_from_frame, read_points_csv,
                      sample_negatives, series_rng)
from .schemas import PARQUET_COMPRESSION, VolumeSchema, patch_schema
from .unischema import Schema
from .storage import join, to_url, write_bytes

logger = logging.getLogger(__name__)

_SLICE_COLUMNS = [
    "sop_uid", "series_uid", "study_uid", "patient_id", "frame_of_reference_uid",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns",
    "RescaleSlope", "RescaleIntercept", "ImageType", "SliceThickness", "AcquisitionNumber",
    "InstanceNumber", "GantryDetectorTilt", "NumberOfFrames", "pixels", "pixel_dtype",
]

#: What assembly says of each instance: joined onto the catalog by ``sop_uid``.
OUTCOME_SCHEMA = StructType([StructField("sop_uid", StringType(), False), *VOLUME_OUTCOME_FIELDS])

#: Petastorm row-group sizes: about one CT volume, or a few dozen 32³ patches, per group.
VOLUME_ROW_GROUP_MB = 32
PATCH_ROW_GROUP_MB = 2


def build_volumes(spark: SparkSession, accepted: DataFrame, options: VolumeOptions,
                  url: str, keep: DataFrame | None = None) -> DataFrame:
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
    frame = _to_frame(spark, results.filter(lambda r: r[0] == "volume").map(lambda r: r[1]), VolumeSchema)
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


def _to_frame(spark: SparkSession, rows: RDD[dict[str, Any]], schema: Schema) -> DataFrame:
    """An RDD of schema dicts as a DataFrame encoded the way Petastorm stores it."""
    return spark.createDataFrame(rows.map(schema.encode_row), schema.as_spark_schema())


def write_dataset(frame: DataFrame, schema: Schema, url: str, row_group_mb: int,
                  num_files: int | None = None) -> None:
    """Write ``frame`` as a Petastorm dataset at ``url``: the Parquet parts, then ``_common_metadata``."""
    url = to_url(url)
    if num_files is not None:
        frame = frame.repartition(num_files)
    # parquet-mr first measures a row group after 100 rows: with rows of tens of KB
    # (patches) or MB (volumes) that is far past the target, so patch files came out
    # as [100, rest] and volume groups held 100 series. Measuring from the first row
    # on gives row groups of about the target size. Both options apply to this write only.
    frame.write.mode("overwrite").option("compression", PARQUET_COMPRESSION) \
        .option("parquet.block.size", row_group_mb * 1024 * 1024) \
        .option("parquet.page.size.row.check.min", 1).parquet(url)
    write_metadata(url, schema)


def _points_by_series(path: str, kind: str, key: bytes) -> dict[str, list[dict[str, Any]]]:
    """The points of one LUNA16 CSV per pseudonymous series UID (same keyed map as the images)."""
    frame = read_points_csv(path, kind)  # type: ignore[arg-type]
    return {remap_uid(key, str(uid)): points_from_frame(rows, kind)  # type: ignore[arg-type]
            for uid, rows in frame.groupby("seriesuid", sort=True)}


def _load_points(annotations: str | None, candidates: str | None, key: bytes) -> dict[str, list[dict[str, Any]]]:
    """Annotated and candidate points per pseudonymous series UID.

    Positives come from annotations (with diameter and malignancy); candidates add their
    negatives, and their positives only where no annotation lies within its radius.
    """
    points = _points_by_series(annotations, "annotations", key) if annotations else {}
    for series, found in (_points_by_series(candidates, "candidates", key) if candidates else {}).items():
        nodules = [(np.array(p["center_xyz"]), max(p["diameter_mm"] / 2, 3.0)) for p in points.get(series, [])]
        points.setdefault(series, []).extend(
            p for p in found
            if p["label"] == 0
            or not any(np.linalg.norm(np.array(p["center_xyz"]) - c) <= r for c, r in nodules))
    return points


def build_patches(spark: SparkSession, volumes_url: str, annotations: str | None,
                  candidates: str | None, options: PatchOptions, key: bytes, url: str,
                  keep: DataFrame | None = None, only_series: set[str] | None = None,
                  other_volumes: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Cut patches around annotated/candidate points of every volume into ``url`` (Petastorm).

    With ``only_series``, only those volumes are cut; ``keep`` holds earlier patch rows (as
    stored) written along with the new ones; ``other_volumes`` names series with a volume
    elsewhere (published earlier), so their points are not counted as without a volume.
    Returns what this run did: patches written and points that gave none.
    """
    points = _load_points(annotations, candidates, key)
    sample_negatives = candidates is None
    schema = patch_schema(options.size)
    volumes_path = to_url(volumes_url)
    try:
        volumes = spark.read.parquet(volumes_path)
    except Exception:  # noqa: BLE001 - no volume was assembled
        return {"patches_written": 0, "points_outside_volume": 0,
                "points_without_volume": sum(len(p) for s, p in points.items() if s not in other_volumes)}
    known = {r["series_uid"] for r in volumes.select("series_uid").distinct().collect()} | other_volumes
    if only_series is not None:
        volumes = volumes.filter(volumes.series_uid.isin(sorted(only_series)))
    shared = spark.sparkContext.broadcast(points)
    results = volumes.rdd.flatMap(
        lambda row: _patches_of(row.asDict(), shared.value.get(row["series_uid"], []),
                                options, key, sample_negatives)
    ).persist(StorageLevel.DISK_ONLY)
    rows = results.filter(lambda r: r[0] == "row").map(lambda r: r[1])
    skipped = results.filter(lambda r: r[0] == "skipped").map(lambda r: r[1]).sum()
    frame = _to_frame(spark, rows, schema)
    if keep is not None:
        frame = keep.select(*frame.columns).unionByName(frame)
    total = frame.count()
    if total:
        # Several files (so several row groups) even for small sets: shards are row groups.
        num_files = max(min(8, total // 256), min(4, total))
        write_dataset(frame, schema, url, PATCH_ROW_GROUP_MB, num_files=num_files)
    results.unpersist()
    shared.unpersist()
    return {
        "patches_written": total,
        "points_outside_volume": int(skipped),
        "points_without_volume": sum(len(p) for s, p in points.items() if s not in known),
    }


def _patches_of(volume_row: dict[str, Any], points: list[dict[str, Any]], options: PatchOptions,
                key: bytes, sample_negatives: bool) -> Iterator[tuple[str, Any]]:
    decoded = VolumeSchema.decode_row(volume_row)
    if sample_negatives:
        points = list(points) + _sampled_negatives(decoded, points, options)
    rows, skipped = make_patch_rows(decoded, points, options, key)
    for row in rows:
        yield "row", row
    yield "skipped", skipped


def _sampled_negatives(volume: dict[str, Any], points: list[dict[str, Any]],
                       options: PatchOptions) -> list[dict[str, Any]]:
    """Without a candidates file: ``negative_ratio`` lung points per nodule, away from all."""
    positives = [p for p in points if p["label"] == 1]
    if not positives:
        return []
    avoid = [(p["center_xyz"], max(float(p.get("diameter_mm", -1)), 0.0) / 2) for p in positives]
    centers = sample_negatives(volume["volume"], volume["spacing"], volume["origin"],
                               volume["direction"], avoid, options.negative_ratio * len(positives),
                               series_rng(str(volume["series_uid"])),
                               margin_mm=options.min_negative_distance_mm)
    return [{"center_xyz": c, "label": 0, "malignancy": -1, "diameter_mm": -1.0, "source": "sampled"}
            for c in centers]


def write_dicom_files(accepted: DataFrame, url: str) -> None:
    """Write each de-identified instance as ``dicom/<patient>/<study>/<series>/<sop>.dcm``."""
    base = url

    def write(rows: Iterable[Any]) -> None:
        for row in rows:
            path = join(base, row["patient_id"], row["study_uid"], row["series_uid"], row["sop_uid"] + ".dcm")
            write_bytes(path, row["dicom_bytes"])

    accepted.select("patient_id", "study_uid", "series_uid", "sop_uid", "dicom_bytes") \
        .foreachPartition(write)
