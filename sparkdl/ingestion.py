"""The ingest job: DICOM archives in, a de-identified catalog, volumes and patches out.

Flow (DESIGN.md): list inputs on the driver → pack into size-balanced partitions → on the
executors, read every file and archive member, parse, check, de-identify (one record per
unit, accepted or rejected with a reason) → stage the records as Parquet → publish
``catalog``, ``_restricted/rejected``, ``_restricted/lineage``, ``volumes``, ``patches``,
``dicom`` → write ``manifest.json`` last.

Atomic output: everything is written under ``OUT/_staging/<run>/`` first, then published
through a commit journal (:mod:`sparkdl.commit`): ``manifest.json`` is removed before
anything is replaced and written again only when every table is in place, so a killed run
never leaves a dataset that looks complete, and the next run finishes (or drops) what a
killed one left. Append runs change tables file by file (:mod:`sparkdl.tables`).
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

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from . import __version__, commit
from .archives import Limits
from .assembly import VolumeOptions
from .catalog import (
    CATALOG_COLUMNS,
    LINEAGE_COLUMNS,
    RECORD_SCHEMA,
    REJECTED_COLUMNS,
)
from .commit import Journal
from .config import from_mapping, read_yaml
from .deid import DeidOptions, load_key
from .discover import InputFile, choose_num_partitions, list_inputs, pack_partitions
from .errors import ConfigError, InputError
from .export import write_dicom_files
from .incremental import INPUTS_SCHEMA, Previous
from .layout import (
    CATALOG,
    DICOM,
    INPUTS,
    LINEAGE,
    MANIFEST,
    PATCHES,
    REJECTED,
    STAGING,
    TABLES,
    VOLUMES,
    Dataset,
)
from .patch_stage import AppendScope, Labels, build_patches, load_points
from .patches import PatchOptions
from .records import FILE_SCHEMA, Selection, Task, arrow_records
from .storage import HadoopFS, join
from .tables import columns, count_rows, files_with, rows_in, stage_replacement
from .volume_stage import build_volumes

logger = logging.getLogger(__name__)

#: Changed file by file by an append run (``dicom`` gets its files directly, ``inputs`` is
#: replaced).
APPENDED = (CATALOG, VOLUMES, PATCHES, REJECTED, LINEAGE)


@dataclass(frozen=True)
class IngestConfig:
    """``conf/ingest.yaml``: one section per stage."""

    deid: DeidOptions = field(default_factory=DeidOptions)
    limits: Limits = field(default_factory=Limits)
    volumes: VolumeOptions = field(default_factory=VolumeOptions)
    patches: PatchOptions = field(default_factory=PatchOptions)
    #: Bytes of input per Spark task when the inputs are large.
    partition_target_mb: int = 128
    #: Also write every accepted instance as a de-identified DICOM file under ``OUT/dicom/``.
    export_dicom: bool = False

    def __post_init__(self) -> None:
        if self.partition_target_mb <= 0:
            raise ConfigError(
                f"partition_target_mb must be > 0. Received: {self.partition_target_mb}"
            )

    @classmethod
    def load(cls, path: str | Path | None = None) -> IngestConfig:
        return from_mapping(cls, read_yaml(path), where=str(path or "ingest config"))


def ingest(
    inputs: Sequence[str],
    output: Dataset | str,
    *,
    labels: Labels | None = None,
    config: IngestConfig | None = None,
    mode: str = "overwrite",
    key_file: str | None = None,
    spark: SparkSession | None = None,
) -> dict[str, Any]:
    """Run the ingest job and return the manifest (also written to ``OUT/manifest.json``).

    ``labels`` (annotations/candidates CSVs) give the points patches are cut around; without
    them no ``patches/`` is written. The key comes from ``key_file`` or ``SPARKDL_DEID_KEY``;
    without one nothing starts.
    ``mode="append"`` reads only input files it has not seen unchanged, catalogs only units
    whose content no earlier run accounted for, and rebuilds the volumes and patches of the
    series they touch, replacing only the published files that held those series
    (:mod:`sparkdl.tables`); when nothing is new, nothing is written and the returned manifest
    says ``"changed": false``.
    """
    key = load_key(key_file)
    if mode not in ("overwrite", "append"):
        raise ConfigError(f"mode must be 'overwrite' or 'append'. Received: {mode!r}")
    config = config or IngestConfig()
    labels = labels or Labels()
    export_dicom = config.export_dicom
    if spark is None:
        from .spark import get_spark

        spark = get_spark()
    timings: dict[str, float] = {}
    started = time.time()
    output = Dataset.of(output).root
    fs = HadoopFS(spark, output)
    _finish_interrupted_commit(fs, output)
    fs.delete(join(output, STAGING))  # leftovers of a run killed before its commit point
    staging = join(output, STAGING, uuid.uuid4().hex[:12])
    previous = Previous.load(spark, fs, output) if mode == "append" else None

    files = list_inputs(spark, list(inputs))
    unseen = previous.unseen(files) if previous is not None else files
    timings["list_s"] = time.time() - started
    logger.info("ingest (%s): %d input files, %d to read", mode, len(files), len(unseen))
    last_run: dict[str, Any] = {
        "mode": mode,
        "files_read": len(unseen),
        "new_units": 0,
        "new_series": 0,
        "rebuilt_series": 0,
    }
    if previous is not None and not unseen:
        logger.info("ingest: no new or changed input files since the last run; nothing changed")
        return {**previous.manifest, "changed": False, "last_run": last_run}

    t0 = time.time()
    task = Task(key, config.deid, config.limits, export_dicom)
    records = _stage_records(
        spark,
        unseen,
        task,
        previous.selection() if previous else Selection(),
        config,
        join(staging, "records"),
    )
    _inputs_table(spark, files, previous).write.parquet(join(staging, INPUTS))
    last_run["new_units"] = count_rows(join(staging, "records"))  # footers: no Spark job
    timings["parse_deid_s"] = time.time() - t0
    journal = Journal()
    if previous is not None and not last_run["new_units"]:
        logger.info("ingest: no new content since the last run; nothing changed")
        journal.move(join(staging, INPUTS), join(output, INPUTS))  # not read again next time
        journal.manifest.update({**previous.manifest, "changed": False, "last_run": last_run})
        return _commit(fs, output, staging, journal, started)

    t0 = time.time()
    resolved = _resolve_duplicates(records, previous.catalog if previous else None)
    accepted = resolved.filter(F.col("status") == "accepted")
    plan = (
        _Rebuild(volume_input=accepted)
        if previous is None
        else _plan_rebuild(
            spark,
            previous,
            accepted,
            replace(task, export_dicom=False),
            config,
            join(staging, "reread"),
        )
    )
    outcomes = build_volumes(
        spark, plan.volume_input, config.volumes, join(staging, VOLUMES), keep=plan.keep_volumes
    )
    timings["volumes_s"] = time.time() - t0

    t0 = time.time()
    patch_run: dict[str, Any] = {}
    if labels:
        scope = (
            None
            if previous is None
            else AppendScope(
                keep=plan.keep_patches,
                only_series=frozenset(plan.touched),
                other_volumes=previous.volume_series() - plan.touched,
            )
        )
        patch_run = build_patches(
            spark,
            join(staging, VOLUMES),
            load_points(labels, key),
            config.patches,
            key,
            join(staging, PATCHES),
            scope,
        )
    timings["patches_s"] = time.time() - t0

    t0 = time.time()
    catalog = plan.volume_input.select(*CATALOG_COLUMNS).join(outcomes, "sop_uid", "left")
    if previous is not None:
        # Rows of the replaced files that this run did not catalog again stay as they were.
        catalog = (
            rows_in(previous.catalog, plan.replaced.get(CATALOG, []))
            .join(catalog.select("sop_uid"), "sop_uid", "left_anti")
            .unionByName(catalog)
        )
    catalog.write.parquet(join(staging, CATALOG))
    resolved.filter(F.col("status") == "rejected").select(*REJECTED_COLUMNS).write.parquet(
        join(staging, REJECTED)
    )
    accepted.select(*LINEAGE_COLUMNS).write.parquet(join(staging, LINEAGE))
    if export_dicom:
        # Append runs add files to the published folder: each file is complete on its own.
        write_dicom_files(accepted, join(staging if previous is None else output, DICOM))
    timings["write_s"] = time.time() - t0

    if previous is None:
        _plan_overwrite(fs, journal, staging, output)
    else:
        for name in APPENDED:
            stage_replacement(
                fs, journal, join(staging, name), join(output, name), plan.replaced.get(name, [])
            )
        journal.move(join(staging, INPUTS), join(output, INPUTS))
    last_run.update(
        new_series=len(plan.touched - plan.rebuilt), rebuilt_series=len(plan.rebuilt), **patch_run
    )
    journal.manifest.update(_run_facts(files, config, timings), changed=True, last_run=last_run)
    manifest = _commit(fs, output, staging, journal, started)
    logger.info(
        "ingest: %d cataloged, %d rejected, %d volumes, %d patches",
        manifest["counts"]["cataloged"],
        manifest["counts"]["rejected"],
        manifest["counts"]["volumes"],
        manifest["counts"]["patches"],
    )
    return manifest


@dataclass
class _Rebuild:
    """What an append run builds: the instances of the series it touches, and what it replaces."""

    volume_input: DataFrame
    touched: set[str] = field(default_factory=set)  # series with new instances
    rebuilt: set[str] = field(default_factory=set)  # ... of which earlier runs saw instances
    replaced: dict[str, list[str]] = field(default_factory=dict)  # table → its files rewritten
    keep_volumes: DataFrame | None = None  # rows of those files that stay
    keep_patches: DataFrame | None = None


def _plan_rebuild(
    spark: SparkSession,
    previous: Previous,
    accepted: DataFrame,
    task: Task,
    config: IngestConfig,
    reread_path: str,
) -> _Rebuild:
    """Series the new instances touch; the earlier instances of those series, read again; the
    published files that hold them (copy-on-write: only those are written again)."""
    touched = {
        r["series_uid"]
        for r in accepted.filter(F.col("pixels").isNotNull())
        .select("series_uid")
        .distinct()
        .collect()
    }
    earlier = previous.earlier_units(touched)
    plan = _Rebuild(accepted, touched, {series for _, _, series in earlier})
    reread = _reread_units(spark, earlier, task, config, reread_path)
    if reread is not None:
        plan.volume_input = accepted.unionByName(reread)
    if not plan.rebuilt:
        return plan
    in_rebuilt = F.col("series_uid").isin(sorted(plan.rebuilt))
    for name in (CATALOG, VOLUMES, PATCHES):
        plan.replaced[name] = files_with(join(previous.output, name), plan.rebuilt)
    # A table with files to replace exists, so Previous.load read it (not None).
    if plan.replaced[VOLUMES] and previous.volumes is not None:
        plan.keep_volumes = rows_in(previous.volumes, plan.replaced[VOLUMES]).filter(~in_rebuilt)
    if plan.replaced[PATCHES] and previous.patches is not None:
        plan.keep_patches = rows_in(previous.patches, plan.replaced[PATCHES]).filter(~in_rebuilt)
    return plan


def _stage_records(
    spark: SparkSession,
    files: list[InputFile],
    task: Task,
    selection: Selection,
    config: IngestConfig,
    path: str,
) -> DataFrame:
    """Parse every unit on the executors and stage one record per unit as Parquet."""
    sc = spark.sparkContext
    num_partitions = choose_num_partitions(
        files, sc.defaultParallelism, config.partition_target_mb * 1024**2
    )
    bins = pack_partitions(files, num_partitions)
    # One bin per partition (parallelize slices a list of bins evenly), its files as rows.
    rows = sc.parallelize(bins, max(len(bins), 1)).flatMap(
        lambda files_in_bin: [(f.path, f.size, f.is_symlink) for f in files_in_bin]
    )
    shared = sc.broadcast(selection)  # possibly large (known hashes); holds no key
    staged = spark.createDataFrame(rows, FILE_SCHEMA).mapInArrow(
        lambda batches: arrow_records(batches, task, shared.value), RECORD_SCHEMA
    )
    staged.write.mode("overwrite").parquet(path)
    shared.unpersist()
    return spark.read.schema(RECORD_SCHEMA).parquet(path)


def _reread_units(
    spark: SparkSession,
    units: list[tuple[str, str | None, str]],
    task: Task,
    config: IngestConfig,
    path: str,
) -> DataFrame | None:
    """Parse again earlier units ``(source_path, member, series_uid)`` to rebuild their series.

    None when there are none (new studies, the common case).
    """
    wanted: dict[str, set[str | None]] = {}
    for source, member, _ in units:
        wanted.setdefault(source, set()).add(member)
    files = []
    for source in sorted(wanted):
        try:
            files += list_inputs(spark, [source])
        except InputError:
            logger.warning("ingest: an earlier input is gone; its series is rebuilt without it")
    if not files:
        return None
    selection = Selection(wanted={k: frozenset(v) for k, v in wanted.items()})
    staged = _stage_records(spark, files, task, selection, config, path)
    return staged.filter(F.col("status") == "accepted")


def _resolve_duplicates(records: DataFrame, catalog: DataFrame | None = None) -> DataFrame:
    """A SOPInstanceUID seen twice is cataloged once; the other copies are rejected.

    Within a run the first by (source_path, member) wins; across runs the earlier run wins.
    """
    order = Window.partitionBy("sop_uid", "status").orderBy(
        "source_path", F.coalesce("member", F.lit(""))
    )
    later_copy = F.row_number().over(order) > 1
    if catalog is not None:
        known = catalog.select("sop_uid").distinct().withColumn("_known", F.lit(True))
        records = records.join(known, "sop_uid", "left")
        later_copy = later_copy | F.coalesce(F.col("_known"), F.lit(False))
    ranked = records.withColumn("_dup", (F.col("status") == "accepted") & later_copy)
    duplicate = F.col("_dup")
    return (
        ranked.withColumn("status", F.when(duplicate, F.lit("rejected")).otherwise(F.col("status")))
        .withColumn(
            "reason", F.when(duplicate, F.lit("duplicate_instance")).otherwise(F.col("reason"))
        )
        .withColumn(
            "detail",
            F.when(duplicate, F.lit("same SOPInstanceUID as an earlier input")).otherwise(
                F.col("detail")
            ),
        )
        .drop("_dup", "_known")
    )


def _inputs_table(
    spark: SparkSession, files: list[InputFile], previous: Previous | None
) -> DataFrame:
    """Every file listed now, plus those listed before and not now (other input folders)."""
    seen = dict(previous.seen_inputs) if previous is not None else {}
    seen.update((f.path, (f.size, f.modified_ms)) for f in files)
    rows = [(path, size, modified) for path, (size, modified) in sorted(seen.items())]
    return spark.createDataFrame(rows, INPUTS_SCHEMA).coalesce(1)


def _plan_overwrite(fs: HadoopFS, journal: Journal, staging: str, output: str) -> None:
    """Every published table is replaced by its staged version, or removed when none was staged."""
    for name in TABLES:
        if fs.exists(join(staging, name)):
            journal.move(join(staging, name), join(output, name))
        else:
            journal.delete(join(output, name))


def _commit(
    fs: HadoopFS, output: str, staging: str, journal: Journal, started: float
) -> dict[str, Any]:
    """Write the journal (the commit point), then publish."""
    commit.write(fs, staging, journal)
    return _publish(fs, output, journal, started)


def _finish_interrupted_commit(fs: HadoopFS, output: str) -> None:
    """A run killed after its commit point left a journal: publish what it had staged."""
    journal = commit.pending(fs, output)
    if journal is not None:
        logger.warning(
            "ingest: an earlier run was stopped while publishing; finishing its commit first"
        )
        _publish(fs, output, journal)


def _publish(
    fs: HadoopFS, output: str, journal: Journal, started: float | None = None
) -> dict[str, Any]:
    """Apply the journal, then write the manifest, last: only now does the dataset look complete."""
    commit.apply(fs, output, journal)
    counted = _counts(output)
    manifest = {
        **journal.manifest,
        **counted,
        "counts": {**journal.manifest.get("counts", {}), **counted["counts"]},
    }
    if started is not None:
        manifest["timings"]["total_s"] = round(time.time() - started, 2)
    fs.write_text(join(output, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True))
    fs.delete(join(output, STAGING))
    return manifest


def _run_facts(
    files: list[InputFile], config: IngestConfig, timings: dict[str, float]
) -> dict[str, Any]:
    """The manifest fields known before publishing: what ran, with what, how long."""
    import numpy
    import pydicom
    import pyspark

    return {
        "sparkdl_version": __version__,
        "counts": {"files_seen": len(files)},
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "versions": {
            "pyspark": pyspark.__version__,
            "pydicom": pydicom.__version__,
            "pyarrow": pa.__version__,
            "numpy": numpy.__version__,
        },
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }


def _counts(output: str) -> dict[str, Any]:
    """Counts read back from the published tables, so they agree with what is there."""
    catalog = columns(join(output, CATALOG), ["series_uid", "volume_status", "volume_reason"])
    rejected = columns(join(output, REJECTED), ["reason"])
    patches = columns(join(output, PATCHES), ["split", "label"])

    def grouped(table: pa.Table | None) -> dict[tuple[Any, ...], int]:
        if table is None or table.num_rows == 0:
            return {}
        sizes = table.to_pandas().groupby(table.column_names, dropna=False).size()
        return {k if isinstance(k, tuple) else (k,): int(v) for k, v in sizes.items()}

    def text(value: Any) -> str:
        return "" if pd.isna(value) else str(value)  # pandas groups missing values as NaN

    outcomes = grouped(catalog.drop(["series_uid"]) if catalog is not None else None)
    reasons = {text(k[0]): n for k, n in grouped(rejected).items()}
    by_split_label = {f"{split}/{label}": n for (split, label), n in grouped(patches).items()}
    cataloged = catalog.num_rows if catalog is not None else 0
    return {
        "counts": {
            "units": cataloged + sum(reasons.values()),
            "cataloged": cataloged,
            "rejected": sum(reasons.values()),
            "series": len(pc.unique(catalog["series_uid"])) if catalog is not None else 0,
            "volumes": count_rows(join(output, VOLUMES)),
            "patches": sum(by_split_label.values()),
        },
        "rejected_by_reason": dict(sorted(reasons.items())),
        "instances_by_volume_outcome": dict(
            sorted(
                (f"{text(status)}:{text(reason)}".rstrip(":"), n)
                for (status, reason), n in outcomes.items()
                if text(status)
            )
        ),
        "patches": {"by_split_label": dict(sorted(by_split_label.items()))},
    }
