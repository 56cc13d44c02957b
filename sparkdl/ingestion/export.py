"""The DICOM export: each de-identified instance written as a file of its own.

The parse tasks already wrote every accepted instance's de-identified file into the run's
staging folder, named by its source's content hash
(:func:`sparkdl.ingestion.read_stage.exported_path`);
here the cataloged copies (duplicates resolved) are moved to their place. The bytes do not
travel through the staged records or a second Spark job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyspark.sql import DataFrame

from sparkdl.ingestion.read_stage import exported_path
from sparkdl.store.storage import arrow_filesystem, join


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
