"""The ingest job: DICOM archives in, a de-identified catalog, volumes and patches out.

Flow (DESIGN.md): list inputs on the driver → pack into size-balanced partitions → on the
executors, read every file and archive member, parse, check, de-identify (one record per
unit, accepted or rejected with a reason) → stage the records as Parquet → publish
``catalog``, ``_restricted/rejected``, ``_restricted/lineage``, ``volumes``, ``patches``,
``dicom`` → write ``manifest.json`` last.

Atomic output: everything is written under ``OUT/_staging/<run>/`` first; the old
``manifest.json`` is removed before anything is replaced and the new one is written only
when every table is in place, so a killed run never leaves a dataset that looks complete.
A later run removes stale staging folders by itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from . import __version__
from .archives import Limits, iter_units
from .assembly import VolumeOptions
from .catalog import CATALOG_COLUMNS, LINEAGE_COLUMNS, RECORD_COLUMNS, RECORD_SCHEMA, REJECTED_COLUMNS
from .config import from_mapping, read_yaml
from .deid import DeidOptions, load_key
from .discover import InputFile, choose_num_partitions, list_inputs, pack_partitions
from .parse import Accepted, process_instance
from .patches import PatchOptions
from .series import build_patches, build_volumes, export_dicom
from .storage import HadoopFS, join, open_input

logger = logging.getLogger(__name__)

PUBLISHED = ("catalog", "volumes", "patches", "dicom", "_restricted/rejected", "_restricted/lineage")


@dataclass(frozen=True)
class IngestConfig:
    """``conf/ingest.yaml``: one section per stage."""

    deid: DeidOptions = field(default_factory=DeidOptions)
    limits: Limits = field(default_factory=Limits)
    volumes: VolumeOptions = field(default_factory=VolumeOptions)
    patches: PatchOptions = field(default_factory=PatchOptions)
    #: Bytes of input per Spark task when the inputs are large.
    partition_target_mb: int = 128

    def __post_init__(self) -> None:
        if self.partition_target_mb <= 0:
            raise ValueError(f"partition_target_mb must be > 0. Received: {self.partition_target_mb}")

    @classmethod
    def load(cls, path: str | Path | None = None) -> IngestConfig:
        return from_mapping(cls, read_yaml(path), where=str(path or "ingest config"))


def ingest(
    inputs: Sequence[str],
    output: str,
    *,
    spark: SparkSession | None = None,
    annotations: str | None = None,
    candidates: str | None = None,
    config: IngestConfig | None = None,
    export_dicom: bool = False,
    key_file: str | None = None,
) -> dict[str, Any]:
    """Run the ingest job and return the manifest (also written to ``OUT/manifest.json``).

    The key comes from ``key_file`` or ``SPARKDL_DEID_KEY``; without one nothing starts.
    """
    key = load_key(key_file)
    config = config or IngestConfig()
    if spark is None:
        from .spark import get_spark

        spark = get_spark()
    timings: dict[str, float] = {}
    started = time.time()
    output = output.rstrip("/")
    fs = HadoopFS(spark, output)
    fs.delete(join(output, "_staging"))  # leftovers of a killed run
    staging = join(output, "_staging", uuid.uuid4().hex[:12])

    files = list_inputs(spark, list(inputs))
    timings["list_s"] = time.time() - started
    logger.info("ingest: %d input files", len(files))

    t0 = time.time()
    records = _stage_records(spark, files, key, config, export_dicom, staging)
    timings["parse_deid_s"] = time.time() - t0

    t0 = time.time()
    resolved = _resolve_duplicates(records)
    accepted = resolved.filter(F.col("status") == "accepted")
    volumes_df, outcomes = build_volumes(spark, accepted, config.volumes, join(staging, "volumes"))
    timings["volumes_s"] = time.time() - t0

    t0 = time.time()
    patch_counts: dict[str, Any] = {}
    if annotations or candidates:
        patch_counts = build_patches(spark, join(staging, "volumes"), annotations, candidates,
                                     config.patches, key, join(staging, "patches"))
    timings["patches_s"] = time.time() - t0

    t0 = time.time()
    catalog = accepted.select(*CATALOG_COLUMNS).join(outcomes, "sop_uid", "left")
    catalog.write.mode("overwrite").parquet(join(staging, "catalog"))
    rejected = resolved.filter(F.col("status") == "rejected").select(*REJECTED_COLUMNS)
    rejected.write.mode("overwrite").parquet(join(staging, "_restricted/rejected"))
    accepted.select(*LINEAGE_COLUMNS).write.mode("overwrite").parquet(join(staging, "_restricted/lineage"))
    if export_dicom:
        export_dicom_files(accepted, join(staging, "dicom"))
    timings["write_s"] = time.time() - t0

    manifest = _manifest(spark, staging, files, volumes_df, patch_counts, config, timings)
    _publish(fs, staging, output)
    manifest["timings"]["total_s"] = round(time.time() - started, 2)
    fs.write_text(join(output, "manifest.json"), json.dumps(manifest, indent=2, sort_keys=True))
    fs.delete(join(output, "_staging"))
    logger.info("ingest: %d cataloged, %d rejected, %d volumes, %d patches",
                manifest["counts"]["cataloged"], manifest["counts"]["rejected"],
                manifest["counts"]["volumes"], manifest["counts"].get("patches", 0))
    return manifest


export_dicom_files = export_dicom


def _stage_records(spark: SparkSession, files: list[InputFile], key: bytes, config: IngestConfig,
                   export: bool, staging: str) -> DataFrame:
    """Parse every unit on the executors and stage one record per unit as Parquet."""
    sc = spark.sparkContext
    num_partitions = choose_num_partitions(files, sc.defaultParallelism,
                                           config.partition_target_mb * 1024**2)
    bins = pack_partitions(files, num_partitions)
    # Plain locals only: the closure is pickled to the executors (the key travels in memory).
    deid, limits = config.deid, config.limits
    rdd = sc.parallelize(bins, max(len(bins), 1)).mapPartitions(
        lambda part: _records(part, key, deid, limits, export)
    )
    path = join(staging, "records")
    spark.createDataFrame(rdd, RECORD_SCHEMA).write.mode("overwrite").parquet(path)
    return spark.read.parquet(path)


def _records(bins: Iterable[list[InputFile]], key: bytes, deid: DeidOptions, limits: Limits,
             export: bool) -> Iterator[tuple[Any, ...]]:
    """Executor side: every unit of every file becomes exactly one record."""
    for files in bins:
        for item in files:
            yield from _file_records(item, key, deid, limits, export)


def _file_records(item: InputFile, key: bytes, deid: DeidOptions, limits: Limits,
                  export: bool) -> Iterator[tuple[Any, ...]]:
    if item.is_symlink:
        yield _rejected(item.path, None, None, "symlink", "symbolic link not followed")
        return
    seen = 0
    try:
        name = os.path.basename(item.path.rstrip("/"))
        for unit in iter_units(name, lambda: open_input(item.path), item.size, limits):
            seen += 1
            if unit.data is None:
                yield _rejected(item.path, unit.member, None, unit.reason or "read_error", unit.detail)
                continue
            digest = hashlib.sha256(unit.data).hexdigest()
            outcome = process_instance(unit.data, key, deid, limits, export)
            if isinstance(outcome, Accepted):
                yield _accepted(item.path, unit.member, digest, outcome)
            else:
                yield _rejected(item.path, unit.member, digest, outcome.reason, outcome.detail)
    except Exception as err:  # noqa: BLE001 - a broken input must not stop the job
        reason = "read_error" if seen == 0 else "corrupt_archive"
        yield _rejected(item.path, None, None, reason, f"{type(err).__name__} after {seen} units")


def _rejected(path: str, member: str | None, digest: str | None, reason: str,
              detail: str | None) -> tuple[Any, ...]:
    row: dict[str, Any] = {"source_path": path, "member": member, "content_sha256": digest,
                           "status": "rejected", "reason": reason, "detail": detail}
    return tuple(row.get(name) for name in RECORD_COLUMNS)


def _accepted(path: str, member: str | None, digest: str, outcome: Accepted) -> tuple[Any, ...]:
    row = dict(outcome.fields)
    row.update(source_path=path, member=member, content_sha256=digest, status="accepted",
               pixels=outcome.pixels, pixel_dtype=outcome.pixel_dtype, dicom_bytes=outcome.dicom_bytes)
    return tuple(row.get(name) for name in RECORD_COLUMNS)


def _resolve_duplicates(records: DataFrame) -> DataFrame:
    """A SOPInstanceUID seen twice is cataloged once; the other copies are rejected."""
    order = Window.partitionBy("sop_uid").orderBy("source_path", F.coalesce("member", F.lit("")))
    ranked = records.withColumn(
        "_rank", F.when(F.col("status") == "accepted", F.row_number().over(order)).otherwise(F.lit(1))
    )
    ranked = ranked.withColumn("_dup", (F.col("status") == "accepted") & (F.col("_rank") > 1))
    duplicate = F.col("_dup")
    return (
        ranked.withColumn("status", F.when(duplicate, F.lit("rejected")).otherwise(F.col("status")))
        .withColumn("reason", F.when(duplicate, F.lit("duplicate_instance")).otherwise(F.col("reason")))
        .withColumn("detail", F.when(duplicate, F.lit("same SOPInstanceUID as an earlier input"))
                    .otherwise(F.col("detail")))
        .drop("_rank", "_dup")
    )


def _manifest(spark: SparkSession, staging: str, files: list[InputFile], volumes: DataFrame | None,
              patch_counts: dict[str, Any], config: IngestConfig,
              timings: dict[str, float]) -> dict[str, Any]:
    """Counts are read back from the staged tables, so they agree with what is published."""
    catalog = spark.read.parquet(join(staging, "catalog"))
    rejected = spark.read.parquet(join(staging, "_restricted/rejected"))
    reasons = {r["reason"]: r["count"] for r in rejected.groupBy("reason").count().collect()}
    volume_status = {
        f"{r['volume_status']}:{r['volume_reason'] or ''}".rstrip(":"): r["count"]
        for r in catalog.groupBy("volume_status", "volume_reason").count().collect()
        if r["volume_status"]
    }
    num_volumes = volumes.count() if volumes is not None else 0
    cataloged = catalog.count()
    num_rejected = rejected.count()
    import numpy, pydicom, pyspark, petastorm, pyarrow  # noqa: E401 - versions for the record

    return {
        "sparkdl_version": __version__,
        "counts": {
            "files_seen": len(files),
            "units": cataloged + num_rejected,
            "cataloged": cataloged,
            "rejected": num_rejected,
            "series": catalog.select("series_uid").distinct().count(),
            "volumes": num_volumes,
            "patches": patch_counts.get("patches", 0),
        },
        "rejected_by_reason": dict(sorted(reasons.items())),
        "instances_by_volume_outcome": dict(sorted(volume_status.items())),
        "patches": patch_counts,
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "versions": {"pyspark": pyspark.__version__, "pydicom": pydicom.__version__,
                     "petastorm": petastorm.__version__, "pyarrow": pyarrow.__version__,
                     "numpy": numpy.__version__},
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }


def _publish(fs: HadoopFS, staging: str, output: str) -> None:
    """Move staged tables into place; the manifest goes last (by the caller)."""
    fs.delete(join(output, "manifest.json"))
    fs.mkdirs(join(output, "_restricted"))
    for name in PUBLISHED:
        fs.delete(join(output, name))
        if fs.exists(join(staging, name)):
            fs.rename(join(staging, name), join(output, name))
