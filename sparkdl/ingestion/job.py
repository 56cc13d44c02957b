"""The ingest job: DICOM archives in, a de-identified catalog, volumes and patches out.

Flow (DESIGN.md): list inputs on the driver → pack into size-balanced partitions → on the
executors, read every file and archive member, parse, check, de-identify (one record per
unit, accepted or rejected with a reason) → stage the records as Parquet → publish
``catalog``, ``_restricted/rejected``, ``_restricted/lineage``, ``volumes``, ``patches``,
``dicom`` → write ``manifest.json`` last.

Atomic output: everything is written under ``OUT/_staging/<run>/`` first, then published
through a commit journal (:mod:`sparkdl.ingestion.publish`): ``manifest.json`` is removed
before anything is replaced and written again only when every table is in place, so a killed
run never leaves a dataset that looks complete, and the next run finishes (or drops) what a
killed one left. Append runs change tables file by file (:mod:`sparkdl.store.table_files`),
rebuilding only the series new instances touch (:mod:`sparkdl.ingestion.incremental`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkdl import progress
from sparkdl._version import __version__
from sparkdl.errors import InputError
from sparkdl.ingestion.config import IngestConfig
from sparkdl.ingestion.discover import check_inputs_exist, list_inputs
from sparkdl.ingestion.duplicates import resolve_duplicates
from sparkdl.ingestion.incremental import Previous, Rebuild, plan_rebuild
from sparkdl.ingestion.label_stage import stage_patches
from sparkdl.ingestion.lidc_stage import LidcResult, build_nodules, read_messages
from sparkdl.ingestion.local_assembly import plan_local
from sparkdl.ingestion.patch_stage import Labels
from sparkdl.ingestion.publish import (
    publish_append,
    publish_overwrite,
    publish_unchanged,
)
from sparkdl.ingestion.read_stage import Placed, Staged, stage_records
from sparkdl.ingestion.run import Run, start_run
from sparkdl.ingestion.volume_stage import build_volumes
from sparkdl.store.dicom_files import move_dicom_files
from sparkdl.store.layout import Dataset
from sparkdl.store.storage import join
from sparkdl.store.table_files import count_rows, rows_in
from sparkdl.store.tables import (
    CATALOG,
    CATALOG_COLUMNS,
    DICOM,
    INPUTS,
    INPUTS_SCHEMA,
    LINEAGE,
    LINEAGE_COLUMNS,
    NODULE_SCHEMA,
    NODULES,
    READ_SCHEMA,
    READS,
    REJECTED,
    REJECTED_COLUMNS,
    VOLUMES,
)
from sparkdl.units.records import InputFile, Selection, Task

__all__ = ["IngestConfig", "ingest"]

logger = logging.getLogger(__name__)

#: Staging folder of the de-identified files the parse tasks wrote (by content hash).
EXPORTED = "exported"


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
    check_inputs_exist(list(inputs))  # a typo fails now, not after Spark started
    if labels is not None:
        labels.check_files()
    run = start_run(output, labels, config, mode, key_file, spark)
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
    staged = _read_new(run, files, unseen, timings)
    last_run["new_units"] = count_rows(run.staged("records"))  # footers: no Spark job
    if run.previous is not None and not last_run["new_units"]:
        logger.info("ingest: no new content since the last run; nothing changed")
        unchanged = {**run.previous.manifest, "changed": False, "last_run": last_run}
        return publish_unchanged(run.fs, run.staging, run.output, unchanged, run.started)
    plan, patch_run = _build(run, staged, timings)
    last_run.update(
        new_series=len(plan.touched - plan.rebuilt), rebuilt_series=len(plan.rebuilt), **patch_run
    )
    facts = {**_run_facts(files, run.config, timings), "changed": True, "last_run": last_run}
    with progress.stage("ingest: publishing", ""):
        if run.previous is None:
            manifest = publish_overwrite(run.fs, run.staging, run.output, facts, run.started)
        else:
            manifest = publish_append(
                run.fs, run.staging, run.output, plan.replaced, facts, run.started
            )
    _warn_if_empty(manifest)
    return manifest


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


def _read_new(
    run: Run, files: list[InputFile], unseen: list[InputFile], timings: dict[str, float]
) -> Staged:
    """Read, parse and de-identify the unseen files into staged records; stage ``inputs``."""
    files_done = run.spark.sparkContext.accumulator(0)
    with _timed(
        timings,
        "parse_deid_s",
        "reading and de-identifying",
        "files",
        progress.accumulated(files_done, len(unseen)),
    ):
        selection = run.previous.selection() if run.previous else Selection()
        staged = _read(run, unseen, run.task, selection, "records", files_done)
        _inputs_table(run.spark, files, run.previous).write.parquet(run.staged(INPUTS))
    return staged


def _read(
    run: Run,
    files: list[InputFile],
    task: Task,
    selection: Selection,
    name: str,
    files_done: Any = None,
) -> Staged:
    """The read stage (:func:`~sparkdl.ingestion.read_stage.stage_records`) over ``files``,
    staged as ``name``: every call of it in a run goes through here."""
    target_bytes = run.config.partition_target_mb * 1024**2
    return stage_records(
        run.spark, files, task, selection, target_bytes, run.staged(name), files_done
    )


def _build(run: Run, staged: Staged, timings: dict[str, float]) -> tuple[Rebuild, dict[str, Any]]:
    """Duplicates resolved, volumes assembled, LIDC nodules placed, patches cut, the tables
    staged: the plan of what was (re)built, and what the patch stage did."""
    series_done = run.spark.sparkContext.accumulator(0)
    earlier = run.previous.catalog if run.previous is not None else None
    with _timed(
        timings, "volumes_s", "series assembly", "series", progress.accumulated(series_done, None)
    ):
        resolved, copies = resolve_duplicates(staged.records, earlier)
        messages = read_messages(resolved)
        plan, reread = _plan(run, resolved, messages)
        local = None
        if run.config.local_assembly:
            local = plan_local([staged.parts_of, reread], copies)
        outcomes = build_volumes(
            run.spark,
            plan.volume_input,
            run.config.volumes,
            run.staged(VOLUMES),
            keep=plan.keep_volumes,
            series_done=series_done,
            local=local,
        )
    lidc = None
    if messages:  # no stage line (and no 0.0 s) without a read message
        with _timed(timings, "lidc_s", "LIDC read messages", "messages"):
            lidc = build_nodules(messages, resolved, run.config.lidc, earlier)
    tasks = progress.spark_tasks(run.spark.sparkContext)
    with _timed(timings, "patches_s", "patches", "tasks", tasks):
        patch_run = stage_patches(run, plan, lidc)
    with _timed(timings, "write_s", "writing the tables", "tasks", tasks):
        _write_tables(run, resolved, plan, outcomes, lidc)
    return plan, patch_run


def _plan(
    run: Run, resolved: DataFrame, messages: list[tuple[str, str]]
) -> tuple[Rebuild, dict[str, dict[str, Placed]]]:
    """What to (re)build from the ``resolved`` records (duplicates rejected), and where the
    slices read again are staged (:attr:`Staged.parts_of`). An append run also reads again
    the earlier instances of the series it rebuilds, and rebuilds the earlier series that
    new read ``messages`` label."""
    accepted = resolved.filter(F.col("status") == "accepted")
    previous = run.previous
    if previous is None:
        return Rebuild(volume_input=accepted), {}
    labelled = frozenset(series for series, _ in messages)  # their patches change
    plan = plan_rebuild(previous, accepted, also=labelled & previous.volume_series())
    files = _earlier_files(run, sorted(plan.reread))
    if not files:
        return plan, {}
    selection = Selection(wanted=plan.reread)
    reread = _read(run, files, replace(run.task, export_to=None), selection, "reread")
    plan.volume_input = accepted.unionByName(reread.records.filter(F.col("status") == "accepted"))
    return plan, reread.parts_of


def _earlier_files(run: Run, sources: list[str]) -> list[InputFile]:
    """The input files of earlier runs whose units are read again; a gone one is warned of."""
    files: list[InputFile] = []
    for source in sources:
        try:
            files += list_inputs(run.spark, [source])
        except InputError:
            logger.warning("ingest: an earlier input is gone; its series is rebuilt without it")
    return files


def _write_tables(
    run: Run, resolved: DataFrame, plan: Rebuild, outcomes: DataFrame, lidc: LidcResult | None
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


def _warn_if_empty(manifest: dict[str, Any]) -> None:
    """A run that cataloged nothing says so, with the reasons (codes and counts only)."""
    counts = manifest["counts"]
    if counts["cataloged"] == 0:
        reasons = ", ".join(f"{k}: {n}" for k, n in manifest["rejected_by_reason"].items())
        logger.warning(
            "ingest: nothing was cataloged: %d of %d units rejected (%s), %d read messages; "
            "the reasons per file are in OUT/_restricted/rejected",
            counts["rejected"],
            counts["units"],
            reasons or "none",
            counts["read_messages"],
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
