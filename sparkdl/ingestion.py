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

import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from . import __version__
from .archives import Limits
from .assembly import VolumeOptions
from .catalog import CATALOG_COLUMNS, LINEAGE_COLUMNS, RECORD_SCHEMA, REJECTED_COLUMNS
from .config import from_mapping, read_yaml
from .deid import DeidOptions, load_key
from .discover import InputFile, choose_num_partitions, list_inputs, pack_partitions
from .errors import ConfigError, InputError
from .incremental import Previous
from .patches import PatchOptions
from .records import FILE_SCHEMA, Selection, Task, arrow_records
from .series import build_patches, build_volumes, write_dicom_files
from .storage import HadoopFS, join

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
            raise ConfigError(f"partition_target_mb must be > 0. Received: {self.partition_target_mb}")

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
    mode: str = "overwrite",
) -> dict[str, Any]:
    """Run the ingest job and return the manifest (also written to ``OUT/manifest.json``).

    The key comes from ``key_file`` or ``SPARKDL_DEID_KEY``; without one nothing starts.
    ``mode="append"`` catalogs only inputs whose content was not seen by earlier runs into
    ``output`` and rebuilds the volumes and patches of the series they touch; when nothing
    is new, nothing is written and the returned manifest says ``"changed": false``.
    """
    key = load_key(key_file)
    if mode not in ("overwrite", "append"):
        raise ConfigError(f"mode must be 'overwrite' or 'append'. Received: {mode!r}")
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
    previous = Previous.load(spark, fs, output) if mode == "append" else None

    files = list_inputs(spark, list(inputs))
    timings["list_s"] = time.time() - started
    logger.info("ingest (%s): %d input files", mode, len(files))

    t0 = time.time()
    task = Task(key, config.deid, config.limits, export_dicom)
    records = _stage_records(spark, files, task, previous.selection() if previous else Selection(),
                             config, join(staging, "records"))
    timings["parse_deid_s"] = time.time() - t0
    if previous is not None and records.isEmpty():
        fs.delete(join(output, "_staging"))
        logger.info("ingest: no new inputs since the last run; nothing changed")
        return {**previous.manifest, "changed": False,
                "last_run": {"mode": mode, "new_units": 0, "rebuilt_series": 0}}

    t0 = time.time()
    resolved = _resolve_duplicates(records, previous.catalog if previous else None)
    accepted = resolved.filter(F.col("status") == "accepted")
    touched: set[str] = set()
    volume_input, keep_volumes, keep_patches = accepted, None, None
    if previous is not None:
        touched = {r["series_uid"] for r in accepted.filter(F.col("pixels").isNotNull())
                   .select("series_uid").distinct().collect()}
        reread = _reread_series(spark, previous, touched, replace(task, export_dicom=False),
                                config, join(staging, "reread"))
        volume_input = accepted.unionByName(reread)
        keep_volumes = previous.without_series("volumes", touched)
        keep_patches = previous.without_series("patches", touched)
    volumes_df, outcomes = build_volumes(spark, volume_input, config.volumes, join(staging, "volumes"),
                                         keep=keep_volumes)
    timings["volumes_s"] = time.time() - t0

    t0 = time.time()
    patch_counts: dict[str, Any] = {}
    if annotations or candidates or keep_patches is not None:
        patch_counts = build_patches(spark, join(staging, "volumes"), annotations, candidates,
                                     config.patches, key, join(staging, "patches"), keep=keep_patches,
                                     only_series=touched if previous is not None else None)
    timings["patches_s"] = time.time() - t0

    t0 = time.time()
    catalog = volume_input.select(*CATALOG_COLUMNS).join(outcomes, "sop_uid", "left")
    rejected = resolved.filter(F.col("status") == "rejected").select(*REJECTED_COLUMNS)
    lineage = accepted.select(*LINEAGE_COLUMNS)
    if previous is not None:
        catalog = previous.catalog.join(catalog.select("sop_uid"), "sop_uid", "left_anti") \
            .unionByName(catalog)
        rejected = previous.rejected.unionByName(rejected)
        lineage = previous.lineage.unionByName(lineage)
    catalog.write.mode("overwrite").parquet(join(staging, "catalog"))
    rejected.write.mode("overwrite").parquet(join(staging, "_restricted/rejected"))
    lineage.write.mode("overwrite").parquet(join(staging, "_restricted/lineage"))
    if export_dicom:
        # Append runs add files to the published folder: each file is complete on its own.
        write_dicom_files(accepted, join(staging if previous is None else output, "dicom"))
    timings["write_s"] = time.time() - t0

    manifest = _manifest(spark, staging, files, volumes_df, patch_counts, config, timings)
    manifest["changed"] = True
    manifest["last_run"] = {"mode": mode, "new_units": records.count(), "rebuilt_series": len(touched)}
    _publish(fs, staging, output, keep_dicom=previous is not None)
    manifest["timings"]["total_s"] = round(time.time() - started, 2)
    fs.write_text(join(output, "manifest.json"), json.dumps(manifest, indent=2, sort_keys=True))
    fs.delete(join(output, "_staging"))
    logger.info("ingest: %d cataloged, %d rejected, %d volumes, %d patches",
                manifest["counts"]["cataloged"], manifest["counts"]["rejected"],
                manifest["counts"]["volumes"], manifest["counts"].get("patches", 0))
    return manifest



def _stage_records(spark: SparkSession, files: list[InputFile], task: Task, selection: Selection,
                   config: IngestConfig, path: str) -> DataFrame:
    """Parse every unit on the executors and stage one record per unit as Parquet."""
    sc = spark.sparkContext
    num_partitions = choose_num_partitions(files, sc.defaultParallelism,
                                           config.partition_target_mb * 1024**2)
    bins = pack_partitions(files, num_partitions)
    # One bin per partition (parallelize slices a list of bins evenly), its files as rows.
    rows = sc.parallelize(bins, max(len(bins), 1)).flatMap(
        lambda files_in_bin: [(f.path, f.size, f.is_symlink) for f in files_in_bin])
    shared = sc.broadcast(selection)  # possibly large (known hashes); holds no key
    staged = spark.createDataFrame(rows, FILE_SCHEMA).mapInArrow(
        lambda batches: arrow_records(batches, task, shared.value), RECORD_SCHEMA)
    staged.write.mode("overwrite").parquet(path)
    shared.unpersist()
    return spark.read.parquet(path)


def _reread_series(spark: SparkSession, previous: Previous, series: set[str], task: Task,
                   config: IngestConfig, path: str) -> DataFrame:
    """Parse again the earlier instances of ``series`` (from lineage) to rebuild their volumes."""
    wanted: dict[str, set[str | None]] = {}
    if series:
        rows = previous.lineage.filter(F.col("series_uid").isin(sorted(series))) \
            .select("source_path", "member").collect()
        for row in rows:
            wanted.setdefault(row["source_path"], set()).add(row["member"])
    files = []
    for source in sorted(wanted):
        try:
            files += list_inputs(spark, [source])
        except InputError:
            logger.warning("ingest: an earlier input is gone; its series is rebuilt without it")
    selection = Selection(wanted={k: frozenset(v) for k, v in wanted.items()})
    staged = _stage_records(spark, files, task, selection, config, path)
    return staged.filter(F.col("status") == "accepted")


def _resolve_duplicates(records: DataFrame, catalog: DataFrame | None = None) -> DataFrame:
    """A SOPInstanceUID seen twice is cataloged once; the other copies are rejected.

    Within a run the first by (source_path, member) wins; across runs the earlier run wins.
    """
    order = Window.partitionBy("sop_uid", "status").orderBy("source_path", F.coalesce("member", F.lit("")))
    later_copy = F.row_number().over(order) > 1
    if catalog is not None:
        known = catalog.select("sop_uid").distinct().withColumn("_known", F.lit(True))
        records = records.join(known, "sop_uid", "left")
        later_copy = later_copy | F.coalesce(F.col("_known"), F.lit(False))
    ranked = records.withColumn("_dup", (F.col("status") == "accepted") & later_copy)
    duplicate = F.col("_dup")
    return (
        ranked.withColumn("status", F.when(duplicate, F.lit("rejected")).otherwise(F.col("status")))
        .withColumn("reason", F.when(duplicate, F.lit("duplicate_instance")).otherwise(F.col("reason")))
        .withColumn("detail", F.when(duplicate, F.lit("same SOPInstanceUID as an earlier input"))
                    .otherwise(F.col("detail")))
        .drop("_dup", "_known")
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


def _publish(fs: HadoopFS, staging: str, output: str, keep_dicom: bool = False) -> None:
    """Move staged tables into place; the manifest goes last (by the caller)."""
    fs.delete(join(output, "manifest.json"))
    fs.mkdirs(join(output, "_restricted"))
    for name in PUBLISHED:
        if name == "dicom" and keep_dicom:
            continue
        fs.delete(join(output, name))
        if fs.exists(join(staging, name)):
            fs.rename(join(staging, name), join(output, name))
