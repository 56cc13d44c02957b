"""The DICOM export, ``OUT/dicom/``: each de-identified instance as a file of its own.

Two steps, both here. The parse task that made an accepted instance's de-identified bytes
writes them into the run's staging folder, named by the source's content hash
(:func:`write_exported`): two copies of one file write the same bytes to one name. Once
duplicates are resolved, :func:`move_dicom_files` moves the cataloged copy of each instance
to ``<patient>/<study>/<series>/<sop>.dcm``. The bytes travel through neither the staged
records nor a second Spark job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyspark.sql import DataFrame

from sparkdl.store.storage import arrow_filesystem, join, write_bytes


def exported_path(folder: str, digest: str) -> str:
    """Where a task writes the de-identified file of the unit whose content hash is ``digest``.

    Named by content, not by SOP instance: two copies of one file write the same bytes to one
    name, and the write stage moves only the copy the catalog kept."""
    return join(folder, digest[:2], digest + ".dcm")


def write_exported(folder: str, digest: str, data: bytes) -> None:
    """Executor side: stage one instance's de-identified file under ``folder``."""
    write_bytes(exported_path(folder, digest), data)


def move_dicom_files(accepted: DataFrame, exported: str, url: str) -> int:
    """Move each cataloged instance's file from ``exported`` to
    ``url/<patient>/<study>/<series>/<sop>.dcm``; the number of files moved."""

    def move(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        fs, root = arrow_filesystem(url)  # once per task: an S3 client is not free
        _, source = arrow_filesystem(exported)
        moved = 0
        for batch in batches:
            for row in batch.to_pylist():
                folder = join(root, row["patient_id"], row["study_uid"], row["series_uid"])
                fs.create_dir(folder, recursive=True)
                target = join(folder, row["sop_uid"] + ".dcm")
                fs.move(exported_path(source, row["content_sha256"]), target)
                moved += 1
        yield pa.RecordBatch.from_pydict({"files": [moved]})

    frame = accepted.select("content_sha256", "patient_id", "study_uid", "series_uid", "sop_uid")
    return sum(row[0] for row in frame.mapInArrow(move, "files LONG").collect())
