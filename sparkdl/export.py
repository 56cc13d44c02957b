"""The DICOM export: each de-identified instance written as a file of its own.

The parse tasks already wrote every accepted instance's de-identified file, named by its
source's content hash (:func:`sparkdl.records.exported_path`), beside the bytes they came
from; here the cataloged copies (duplicates resolved) are moved to their place. The bytes do
not travel through the staged records or a second Spark job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyspark.sql import DataFrame

from .records import exported_path
from .storage import join, move_file

_PATH_COLUMNS = ("patient_id", "study_uid", "series_uid", "sop_uid")


def move_dicom_files(accepted: DataFrame, exported: str, url: str) -> int:
    """Move each cataloged instance's file from ``exported`` to
    ``url/<patient>/<study>/<series>/<sop>.dcm``; the number of files moved."""
    base = url

    def move(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        moved = 0
        for batch in batches:
            for row in batch.to_pylist():
                target = join(base, *(row[name] for name in _PATH_COLUMNS[:3]), row["sop_uid"])
                move_file(exported_path(exported, row["content_sha256"]), target + ".dcm")
                moved += 1
        yield pa.RecordBatch.from_pydict({"files": [moved]})

    frame = accepted.select("content_sha256", *_PATH_COLUMNS)
    return sum(row[0] for row in frame.mapInArrow(move, "files LONG").collect())
