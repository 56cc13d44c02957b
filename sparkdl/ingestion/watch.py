"""``sparkdl ingest --watch LANDING``: ingest new files as they land, with Structured Streaming.

Spark's file source lists ``LANDING`` (recursively) on every trigger and hands each new file
to one micro-batch; the checkpoint records which files were handed out. Each micro-batch runs
an append ingest over exactly its files, so the catalog, volumes and patches are refreshed in
the same micro-batch (a series that gains slices is rebuilt there and then).

Exactly once: a micro-batch that dies before its commit is replayed after a restart with the
same files; the append ingest skips every unit whose content hash is already cataloged or
rejected, so a replay adds nothing twice. Files must appear atomically (copy elsewhere, then
move into ``LANDING``); like every Spark file source, names starting with ``_`` or ``.`` are
ignored there.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from sparkdl.ingestion.config import IngestConfig
from sparkdl.ingestion.job import ingest
from sparkdl.ingestion.patch_stage import Labels

logger = logging.getLogger(__name__)


def watch(
    landing: str,
    output: str,
    *,
    spark: SparkSession,
    checkpoint: str | None = None,
    labels: Labels | None = None,
    config: IngestConfig | None = None,
    key_file: str | None = None,
    trigger_seconds: int = 60,
    once: bool = False,
    max_files_per_batch: int = 10_000,
) -> None:
    """Run the streaming ingest until stopped (or, with ``once``, until ``landing`` is drained).

    Ten parameters: ``ingest``'s own, plus the stream's checkpoint, trigger and once.
    """
    from sparkdl.deid import load_key

    load_key(key_file)  # refuse to start without a key, before any stream
    checkpoint = checkpoint or output.rstrip("/") + "_checkpoint"
    schema = "path STRING, modificationTime TIMESTAMP, length LONG, content BINARY"
    stream = (
        spark.readStream.format("binaryFile")
        .schema(schema)
        .option("recursiveFileLookup", "true")
        .option("maxFilesPerTrigger", max_files_per_batch)
        .load(landing)
        .select("path")  # the file source does not read contents when they are not selected
    )

    def run_batch(batch: DataFrame, batch_id: int) -> None:
        paths = sorted(row["path"] for row in batch.collect())
        if not paths:
            return
        manifest: dict[str, Any] = ingest(
            paths,
            output,
            spark=batch.sparkSession,
            labels=labels,
            config=config,
            key_file=key_file,
            mode="append",
        )
        logger.info(
            "watch: micro-batch %d: %d files, %s new units",
            batch_id,
            len(paths),
            manifest.get("last_run", {}).get("new_units"),
        )

    writer = stream.writeStream.foreachBatch(run_batch).option("checkpointLocation", checkpoint)
    writer = (
        writer.trigger(availableNow=True)
        if once
        else writer.trigger(processingTime=f"{trigger_seconds} seconds")
    )
    query = writer.start()
    logger.info("watch: %s → %s (checkpoint %s)", landing, output, checkpoint)
    query.awaitTermination()
