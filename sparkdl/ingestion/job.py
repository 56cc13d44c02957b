"""The ingest job: DICOM archives in, a de-identified catalog, volumes and patches out.

Flow (DESIGN.md): list inputs on the driver → pack into size-balanced partitions → on the
executors, read every file and archive member, parse, check, de-identify (one record per
unit, accepted or rejected with a reason) → stage the records as Parquet → publish
``catalog``, ``_restricted/rejected``, ``_restricted/lineage``, ``volumes``, ``patches``,
``dicom`` → write ``manifest.json`` last.

Atomic output: everything is written under ``OUT/_staging/<run>/`` first, then published
through a commit journal (:mod:`sparkdl.ingestion.commit`): ``manifest.json`` is removed before
anything is replaced and written again only when every table is in place, so a killed run
never leaves a dataset that looks complete, and the next run finishes (or drops) what a
killed one left (:mod:`sparkdl.ingestion.publish`). Append runs change tables file by file
(:mod:`sparkdl.store.table_files`), rebuilding only the series new instances touch
(:mod:`sparkdl.ingestion.incremental`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from sparkdl import progress
from sparkdl._version import __version__
from sparkdl.assembly.options import VolumeOptions
from sparkdl.config import from_mapping, read_yaml
from sparkdl.deid import DeidOptions, load_key
from sparkdl.errors import ConfigError
from sparkdl.ingestion.commit import Journal
from sparkdl.ingestion.discover import InputFile, list_inputs
from sparkdl.ingestion.export import move_dicom_files
from sparkdl.ingestion.incremental import Previous, Rebuild, plan_rebuild
from sparkdl.ingestion.lidc_stage import (
    LidcResult,
    build_nodules,
    read_messages,
)
from sparkdl.ingestion.patch_stage import (
    AppendScope,
    Labels,
    build_patches,
    findings_rows,
    load_points,
)
from sparkdl.ingestion.publish import commit_and_publish, finish_interrupted_commit, plan_overwrite
from sparkdl.ingestion.read_stage import Selection, Task, stage_records
from sparkdl.ingestion.volume_stage import build_volumes
from sparkdl.lidc.labels import NoduleRules
from sparkdl.patches.extract import PatchOptions
from sparkdl.store.layout import Dataset
from sparkdl.store.storage import HadoopFS, join
from sparkdl.store.table_files import count_rows, rows_in, stage_replacement
from sparkdl.store.tables import (
    CATALOG,
    CATALOG_COLUMNS,
    DICOM,
    FINDINGS,
    FINDINGS_SCHEMA,
    INPUTS,
    INPUTS_SCHEMA,
    LINEAGE,
    LINEAGE_COLUMNS,
    NODULE_SCHEMA,
    NODULES,
    PATCHES,
    READ_SCHEMA,
    READS,
    REJECTED,
    REJECTED_COLUMNS,
    STAGING,
    VOLUMES,
)
from sparkdl.units.archives import Limits

logger = logging.getLogger(__name__)

#: Staging folder of the de-identified files the parse tasks wrote (by content hash).
EXPORTED = "exported"

#: Duplicate copies held on the driver and broadcast up to this many (about 100 bytes each).
MAX_BROADCAST_DUPLICATES = 200_000

#: Changed file by file by an append run (``dicom`` gets its files directly, ``inputs`` is
#: replaced).
APPENDED = (CATALOG, VOLUMES, PATCHES, READS, NODULES, REJECTED, LINEAGE)


@dataclass(frozen=True)
class IngestConfig:
    """``conf/ingest.yaml``: one section per stage."""

    deid: DeidOptions = field(default_factory=DeidOptions)
    limits: Limits = field(default_factory=Limits)
    volumes: VolumeOptions = field(default_factory=VolumeOptions)
    patches: PatchOptions = field(default_factory=PatchOptions)
    #: Which nodules of LIDC-IDRI read messages (XML among the inputs) are positives.
    lidc: NoduleRules = field(default_factory=NoduleRules)
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
    (:mod:`sparkdl.store.table_files`); when nothing is new, nothing is written and the
    returned manifest says ``"changed": false``.

    Phases: start (finish what a killed run left, load the previous run), list, read and
    stage the records, assemble volumes, cut patches, write the tables, publish.
    """
    run = _start(output, labels, config, mode, key_file, spark)
    timings: dict[str, float] = {}
    files = list_inputs(run.spark, list(inputs))
    unseen = run.previous.unseen(files) if run.previous is not None else files
    timings["list_s"] = time.time() - run.started
    logger.debug("ingest (%s): %d input files, %d to read", mode, len(files), len(unseen))
    progress.say(
        f"ingest: listing: {len(files):,} input files, {len(unseen):,} to read "
        f"in {timings['list_s']:.1f} s"
    )
    last_run: dict[str, Any] = {
        "mode": mode,
        "files_read": len(unseen),
        "new_units": 0,
        "new_series": 0,
        "rebuilt_series": 0,
    }
    if run.previous is not None and not unseen:
        logger.info("ingest: no new or changed input files since the last run; nothing changed")
        return {**run.previous.manifest, "changed": False, "last_run": last_run}

    sc = run.spark.sparkContext
    files_done, series_done = sc.accumulator(0), sc.accumulator(0)
    with _timed(
        timings,
        "parse_deid_s",
        "reading and de-identifying",
        "files",
        progress.accumulated(files_done, len(unseen)),
    ):
        export_to = run.staged(EXPORTED) if run.config.export_dicom else None
        task = Task(run.key, run.config.deid, run.config.limits, export_to)
        records = _stage(run, files, unseen, task, files_done)
        last_run["new_units"] = count_rows(run.staged("records"))  # footers: no Spark job
    if run.previous is not None and not last_run["new_units"]:
        return _publish_unchanged(run, run.previous, last_run)

    with _timed(
        timings, "volumes_s", "series assembly", "series", progress.accumulated(series_done, None)
    ):
        resolved = _resolve_duplicates(records, run.previous.catalog if run.previous else None)
        messages = read_messages(resolved)
        plan, outcomes = _volumes(run, resolved, task, series_done, messages)
    with _timed(timings, "lidc_s", "LIDC read messages", ""):
        lidc = build_nodules(
            messages,
            resolved,
            run.config.lidc,
            run.previous.catalog if run.previous is not None else None,
        )
    with _timed(timings, "patches_s", "patches", "tasks", progress.spark_tasks(sc)):
        patch_run = _patches(run, plan, lidc)
    with _timed(timings, "write_s", "writing the tables", "tasks", progress.spark_tasks(sc)):
        _write_tables(run, resolved, plan, outcomes, lidc)
    last_run.update(
        new_series=len(plan.touched - plan.rebuilt), rebuilt_series=len(plan.rebuilt), **patch_run
    )
    with progress.stage("ingest: publishing", ""):
        return _publish_run(run, plan, _run_facts(files, run.config, timings), last_run)


@dataclass(frozen=True)
class _Run:
    """What every phase of one ingest run works with."""

    spark: SparkSession
    fs: HadoopFS
    output: str  # the dataset root
    staging: str  # OUT/_staging/<run>
    config: IngestConfig
    labels: Labels
    key: bytes = field(repr=False)
    previous: Previous | None  # the last complete run, in append mode
    started: float  # time.time() at the start

    def staged(self, name: str) -> str:
        return join(self.staging, name)


def _start(
    output: Dataset | str,
    labels: Labels | None,
    config: IngestConfig | None,
    mode: str,
    key_file: str | None,
    spark: SparkSession | None,
) -> _Run:
    """Check the arguments, finish or drop what a killed run left, load the previous run."""
    key = load_key(key_file)
    if mode not in ("overwrite", "append"):
        raise ConfigError(f"mode must be 'overwrite' or 'append'. Received: {mode!r}")
    config = config or IngestConfig()
    labels = labels or Labels()
    if spark is None:
        from sparkdl.spark import get_spark

        spark = get_spark()
    started = time.time()
    root = Dataset.of(output).root
    fs = HadoopFS(spark, root)
    finish_interrupted_commit(fs, root)
    fs.delete(join(root, STAGING))  # leftovers of a run killed before its commit point
    staging = join(root, STAGING, uuid.uuid4().hex[:12])
    previous = Previous.load(spark, fs, root) if mode == "append" else None
    return _Run(spark, fs, root, staging, config, labels, key, previous, started)


@contextmanager
def _timed(
    timings: dict[str, float],
    name: str,
    label: str,
    unit: str,
    counter: progress.Counter | None = None,
) -> Iterator[None]:
    """Wall seconds of the block as ``timings[name]`` (the manifest's ``timings``), and the
    stage's progress on the console as ``ingest: <label>``."""
    t0 = time.time()
    with progress.stage(f"ingest: {label}", unit, counter):
        yield
    timings[name] = time.time() - t0


def _stage(
    run: _Run, files: list[InputFile], unseen: list[InputFile], task: Task, files_done: Any
) -> DataFrame:
    """Read, parse and de-identify the unseen files into staged records; stage ``inputs``."""
    selection = run.previous.selection() if run.previous else Selection()
    target_bytes = run.config.partition_target_mb * 1024**2
    records = stage_records(
        run.spark, unseen, task, selection, target_bytes, run.staged("records"), files_done
    )
    _inputs_table(run.spark, files, run.previous).write.parquet(run.staged(INPUTS))
    return records


def _publish_unchanged(run: _Run, previous: Previous, last_run: dict[str, Any]) -> dict[str, Any]:
    """An append run whose files held nothing new publishes only the ``inputs`` table."""
    logger.info("ingest: no new content since the last run; nothing changed")
    journal = Journal()
    journal.move(run.staged(INPUTS), join(run.output, INPUTS))  # not read again next time
    journal.manifest.update({**previous.manifest, "changed": False, "last_run": last_run})
    return commit_and_publish(run.fs, run.output, run.staging, journal, run.started)


def _volumes(
    run: _Run,
    resolved: DataFrame,
    task: Task,
    series_done: Any,
    messages: list[tuple[str, str]],
) -> tuple[Rebuild, DataFrame]:
    """What to (re)build planned, volumes staged from the ``resolved`` records (duplicates
    rejected): ``(plan, one volume outcome per instance)``. An append run also rebuilds the
    earlier series that new read ``messages`` label."""
    previous = run.previous
    accepted = resolved.filter(F.col("status") == "accepted")
    if previous is None:
        plan = Rebuild(volume_input=accepted)
    else:
        reread_task = replace(task, export_to=None)
        target_bytes = run.config.partition_target_mb * 1024**2
        labelled = frozenset(series for series, _ in messages)  # their patches change
        plan = plan_rebuild(
            run.spark,
            previous,
            accepted,
            reread_task,
            target_bytes,
            run.staged("reread"),
            also=labelled & previous.volume_series(),
        )
    volumes = run.config.volumes
    outcomes = build_volumes(
        run.spark,
        plan.volume_input,
        volumes,
        run.staged(VOLUMES),
        keep=plan.keep_volumes,
        series_done=series_done,
    )
    return plan, outcomes


def _patches(run: _Run, plan: Rebuild, lidc: LidcResult | None) -> dict[str, Any]:
    """Stage the patches around the labelled points (none without labels); what was cut.

    The points are those of the annotations/candidates CSVs and the positive nodules of the
    LIDC read messages among the inputs.
    """
    if not run.labels and not (lidc and lidc.points):
        return {}
    scope = (
        None
        if run.previous is None
        else AppendScope(
            keep=plan.keep_patches,
            only_series=frozenset(plan.touched),
            other_volumes=run.previous.volume_series() - plan.touched,
        )
    )
    points = load_points(run.labels, run.key)
    findings = findings_rows(run.labels, run.key)
    if findings:
        run.spark.createDataFrame(findings, FINDINGS_SCHEMA).coalesce(1).write.parquet(
            run.staged(FINDINGS)
        )
    if lidc is not None:
        points = points.with_more(lidc.points)
    return build_patches(
        run.spark,
        run.staged(VOLUMES),
        points,
        run.config.patches,
        run.key,
        run.staged(PATCHES),
        scope,
    )


def _write_tables(
    run: _Run, resolved: DataFrame, plan: Rebuild, outcomes: DataFrame, lidc: LidcResult | None
) -> None:
    """Stage ``catalog``, ``_restricted/rejected`` and ``lineage``; export DICOM if asked."""
    accepted = resolved.filter(F.col("status") == "accepted")
    catalog = plan.volume_input.select(*CATALOG_COLUMNS).join(outcomes, "sop_uid", "left")
    if run.previous is not None:
        # Rows of the replaced files that this run did not catalog again stay as they were.
        catalog = (
            rows_in(run.previous.catalog, plan.replaced.get(CATALOG, []))
            .join(catalog.select("sop_uid"), "sop_uid", "left_anti")
            .unionByName(catalog)
        )
    catalog.write.parquet(run.staged(CATALOG))
    rejected = resolved.filter(F.col("status") == "rejected").select(*REJECTED_COLUMNS)
    rejected.write.parquet(run.staged(REJECTED))
    accepted.select(*LINEAGE_COLUMNS).write.parquet(run.staged(LINEAGE))
    if lidc is not None:
        run.spark.createDataFrame(lidc.reads, READ_SCHEMA).write.parquet(run.staged(READS))
        run.spark.createDataFrame(lidc.nodules, NODULE_SCHEMA).write.parquet(run.staged(NODULES))
    if run.config.export_dicom:
        # Append runs add files to the published folder: each file is complete on its own.
        folder = join(run.staging if run.previous is None else run.output, DICOM)
        move_dicom_files(accepted, run.staged(EXPORTED), folder)


def _publish_run(
    run: _Run, plan: Rebuild, facts: dict[str, Any], last_run: dict[str, Any]
) -> dict[str, Any]:
    """Journal the staged tables (whole, or file by file in append mode), commit, publish."""
    journal = Journal()
    if run.previous is None:
        plan_overwrite(run.fs, journal, run.staging, run.output)
    else:
        for name in APPENDED:
            if name in (READS, NODULES) and not run.fs.exists(run.staged(name)):
                continue  # no read message in this run
            replaced = plan.replaced.get(name, [])
            stage_replacement(run.fs, journal, run.staged(name), join(run.output, name), replaced)
        journal.move(run.staged(INPUTS), join(run.output, INPUTS))
        if run.fs.exists(run.staged(FINDINGS)):  # this run's CSVs replace the earlier ones
            journal.move(run.staged(FINDINGS), join(run.output, FINDINGS))
    journal.manifest.update(facts, changed=True, last_run=last_run)
    manifest = commit_and_publish(run.fs, run.output, run.staging, journal, run.started)
    counts = manifest["counts"]
    logger.info(
        "ingest: %d cataloged, %d rejected, %d volumes, %d patches",
        counts["cataloged"],
        counts["rejected"],
        counts["volumes"],
        counts["patches"],
    )
    return manifest


def _resolve_duplicates(records: DataFrame, catalog: DataFrame | None = None) -> DataFrame:
    """A SOPInstanceUID seen twice is cataloged once; the other copies are rejected.

    Within a run the first by (source_path, member) wins; across runs the earlier run wins.
    Likewise for LIDC read messages with the same bytes (``duplicate_read_message``; an
    earlier run's copy is skipped when read, as every known content is).
    Only the key columns are ranked: a window over the whole records shuffled every pixel,
    and again for each table written from them (484 MB of shuffle for 193 MB of 512² CT,
    ``scripts/bench_ingest.py``). The later copies (usually none or a few) are collected and
    marked on the records through a broadcast join, so the wide rows are not shuffled here.
    """
    member = F.coalesce(F.col("member"), F.lit(""))
    # An LIDC read message has no SOP UID: one is a copy of another when its bytes are
    # (counted twice, every reader's marks would be clustered with themselves).
    identity = F.when(F.col("status") == "accepted", F.col("sop_uid")).otherwise(
        F.concat(F.lit("read message "), F.col("content_sha256"))
    )
    keys = records.filter(F.col("status").isin("accepted", "read_message")).select(
        identity.alias("sop_uid"), "source_path", member.alias("_member"), "status"
    )
    rank = F.row_number().over(Window.partitionBy("sop_uid").orderBy("source_path", "_member"))
    later_copy = rank > 1
    if catalog is not None:
        known = catalog.select("sop_uid").distinct().withColumn("_known", F.lit(True))
        keys = keys.join(known, "sop_uid", "left")
        later_copy = later_copy | F.coalesce(F.col("_known"), F.lit(False))
    copies = (
        keys.withColumn("_dup", later_copy)
        .filter(F.col("_dup"))
        .select("source_path", "_member", "_dup", F.col("status").alias("_copy_of"))
    )
    # Held on the driver and broadcast, unless a pathological input (the same archive twice
    # over) makes them too many: then a plain join.
    found = copies.limit(MAX_BROADCAST_DUPLICATES + 1).collect()
    if not found:
        return records  # the usual case: no join, so no broadcast job in every later read
    if len(found) <= MAX_BROADCAST_DUPLICATES:
        copies = F.broadcast(records.sparkSession.createDataFrame(found, copies.schema))
    marked = records.withColumn("_member", member).join(copies, ["source_path", "_member"], "left")
    duplicate = F.coalesce(F.col("_dup"), F.lit(False))
    of_message = F.col("_copy_of") == "read_message"
    return (
        marked.withColumn("status", F.when(duplicate, F.lit("rejected")).otherwise(F.col("status")))
        .withColumn(
            "reason",
            F.when(duplicate & of_message, F.lit("duplicate_read_message"))
            .when(duplicate, F.lit("duplicate_instance"))
            .otherwise(F.col("reason")),
        )
        .withColumn(
            "detail",
            F.when(duplicate & of_message, F.lit("same bytes as an earlier input"))
            .when(duplicate, F.lit("same SOPInstanceUID as an earlier input"))
            .otherwise(F.col("detail")),
        )
        .drop("_dup", "_member", "_copy_of")
    )


def _inputs_table(
    spark: SparkSession, files: list[InputFile], previous: Previous | None
) -> DataFrame:
    """Every file listed now, plus those listed before and not now (other input folders)."""
    seen = dict(previous.seen_inputs) if previous is not None else {}
    seen.update((f.path, (f.size, f.modified_ms)) for f in files)
    rows = [(path, size, modified) for path, (size, modified) in sorted(seen.items())]
    return spark.createDataFrame(rows, INPUTS_SCHEMA).coalesce(1)


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
