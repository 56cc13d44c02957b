"""The DICOM export: each de-identified instance written as a file of its own."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyspark.sql import DataFrame

from .storage import join, write_bytes


def write_dicom_files(accepted: DataFrame, url: str) -> None:
    """Write each de-identified instance as ``dicom/<patient>/<study>/<series>/<sop>.dcm``."""
    base = url

    def write(rows: Iterable[Any]) -> None:
        for row in rows:
            path = join(
                base,
                row["patient_id"],
                row["study_uid"],
                row["series_uid"],
                row["sop_uid"] + ".dcm",
            )
            write_bytes(path, row["dicom_bytes"])

    accepted.select(
        "patient_id", "study_uid", "series_uid", "sop_uid", "dicom_bytes"
    ).foreachPartition(write)
