"""Duplicates among the units of a run and across runs: one copy cataloged, the others rejected.

A SOPInstanceUID seen twice is cataloged once (``duplicate_instance`` for the other copies),
and an LIDC read message with the same bytes as another is read once
(``duplicate_read_message``).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

#: Duplicate copies held on the driver and broadcast up to this many (about 100 bytes each).
MAX_BROADCAST_DUPLICATES = 200_000


def resolve_duplicates(
    records: DataFrame, catalog: DataFrame | None = None
) -> tuple[DataFrame, dict[str, list[tuple[str, str]]] | None]:
    """A SOPInstanceUID seen twice is cataloged once; the other copies are rejected.

    Returns the records, copies marked, and the copies of CT instances by series:
    ``series_uid → [(source_path, member or "")]`` (None when there were too many to hold on
    the driver), for the tasks that read staged slices themselves
    (:mod:`sparkdl.ingestion.local_assembly`).

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
        identity.alias("sop_uid"),
        "source_path",
        member.alias("_member"),
        "status",
        F.col("series_uid").alias("_series"),
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
        .select("source_path", "_member", "_dup", F.col("status").alias("_copy_of"), "_series")
    )
    # Held on the driver and broadcast, unless a pathological input (the same archive twice
    # over) makes them too many: then a plain join.
    found = copies.limit(MAX_BROADCAST_DUPLICATES + 1).collect()
    if not found:
        return records, {}  # the usual case: no join, so no broadcast job in a later read
    by_series: dict[str, list[tuple[str, str]]] | None = None
    if len(found) <= MAX_BROADCAST_DUPLICATES:
        copies = F.broadcast(records.sparkSession.createDataFrame(found, copies.schema))
        by_series = {}
        for row in found:
            if row["_copy_of"] == "accepted":
                key = (row["source_path"], row["_member"])
                by_series.setdefault(row["_series"], []).append(key)
    marked = records.withColumn("_member", member).join(copies, ["source_path", "_member"], "left")
    duplicate = F.coalesce(F.col("_dup"), F.lit(False))
    of_message = F.col("_copy_of") == "read_message"
    resolved = (
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
        .drop("_dup", "_member", "_copy_of", "_series")
    )
    return resolved, by_series
