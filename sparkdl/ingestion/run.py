"""One ingest run: what every phase works with, set up once at its start."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from sparkdl.deid import load_key
from sparkdl.errors import ConfigError
from sparkdl.ingestion.config import IngestConfig
from sparkdl.ingestion.incremental import Previous
from sparkdl.ingestion.patch_stage import Labels
from sparkdl.ingestion.publish import finish_interrupted_commit
from sparkdl.store.layout import Dataset
from sparkdl.store.storage import HadoopFS, join
from sparkdl.store.tables import STAGING
from sparkdl.units.records import Task

#: Staging folder of the de-identified files the parse tasks wrote (by content hash).
EXPORTED = "exported"


@dataclass(frozen=True)
class Run:
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
    task: Task = field(repr=False)  # what every read task needs (holds the key)

    def staged(self, name: str) -> str:
        return join(self.staging, name)


def start_run(
    output: Dataset | str,
    labels: Labels | None,
    config: IngestConfig | None,
    mode: str,
    key_file: str | None,
    spark: SparkSession | None,
) -> Run:
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
    export_to = join(staging, EXPORTED) if config.export_dicom else None
    task = Task(key, config.deid, config.limits, export_to)
    return Run(spark, fs, root, staging, config, labels, key, previous, started, task)
