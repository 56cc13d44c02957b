"""Labels from clustered reads: which nodules are positives, and their malignancy.

The LUNA16 reference standard keeps the nodules ≥ 3 mm that at least 3 of the 4 LIDC
readers outlined; the rest (nodules < 3 mm, non-nodules, nodules fewer readers accepted)
are findings to ignore, not negatives. Malignancy comes from the median of the readers'
ratings (1 highly unlikely … 5 highly suspicious): above 3 is malignant (1), below 3
benign (0), exactly 3 indeterminate (-1, left out of malignancy training and evaluation).

:func:`annotation_rows` writes the positives in the form
:func:`sparkdl.patches.points.read_points_csv` reads:
``seriesuid,coordX,coordY,coordZ,diameter_mm,malignancy`` (the label -1/0/1), plus
``readers`` and ``malignancy_median`` for inspection.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sparkdl.errors import ConfigError
from sparkdl.lidc.clustering import Nodule

__all__ = [
    "ANNOTATION_COLUMNS",
    "NoduleRules",
    "annotation_rows",
    "malignancy_label",
    "write_annotations_csv",
]

ANNOTATION_COLUMNS = (
    "seriesuid",
    "coordX",
    "coordY",
    "coordZ",
    "diameter_mm",
    "malignancy",
    "readers",
    "malignancy_median",
)

AnnotationRow = tuple[str, float, float, float, float, int, int, float | None]


@dataclass(frozen=True)
class NoduleRules:
    """Which clustered nodules are positives: at least ``min_readers`` readers outlined it
    and its mean diameter is at least ``min_diameter_mm`` (LUNA16: 3 readers, 3 mm).

    ``hard_negatives``: clusters no reader outlined (only ``nonNodule`` marks and nodules
    < 3 mm, which LUNA16 leaves out of false-positive counting) also become negative points
    for the nodule task. Off by default.
    """

    min_readers: int = 3
    min_diameter_mm: float = 3.0
    hard_negatives: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.min_readers, int) or self.min_readers < 1:
            raise ConfigError(f"min_readers must be an integer ≥ 1. Received: {self.min_readers!r}")
        if not (math.isfinite(self.min_diameter_mm) and self.min_diameter_mm >= 0):
            raise ConfigError(
                f"min_diameter_mm must be a finite number ≥ 0. Received: {self.min_diameter_mm!r}"
            )

    def is_positive(self, nodule: Nodule) -> bool:
        """Whether ``nodule`` belongs to the reference standard."""
        return (
            nodule.num_nodule_readers >= self.min_readers
            and nodule.diameter_mm is not None
            and nodule.diameter_mm >= self.min_diameter_mm
        )

    def is_hard_negative(self, nodule: Nodule) -> bool:
        """Whether ``nodule`` is a point-only cluster used as a negative (``hard_negatives``)."""
        return self.hard_negatives and nodule.num_nodule_readers == 0

    def select(self, nodules: Sequence[Nodule]) -> list[Nodule]:
        """The positives among ``nodules``, in their order."""
        return [nodule for nodule in nodules if self.is_positive(nodule)]


def malignancy_label(median: float | None) -> int:
    """1 when the median rating is above 3, 0 below 3, -1 at 3 or without ratings."""
    if median is None or math.isnan(median) or median == 3:
        return -1
    return 1 if median > 3 else 0


def annotation_rows(
    series_uid: str, nodules: Sequence[Nodule], rules: NoduleRules | None = None
) -> list[AnnotationRow]:
    """One :data:`ANNOTATION_COLUMNS` row per positive nodule of one series.

    ``series_uid`` is written as given: pass the de-identified SeriesInstanceUID.
    """
    rules = NoduleRules() if rules is None else rules
    rows: list[AnnotationRow] = []
    for nodule in rules.select(nodules):
        median = nodule.medians.get("malignancy")
        x, y, z = nodule.centre_lps
        diameter = nodule.diameter_mm if nodule.diameter_mm is not None else math.nan
        rows.append(
            (
                series_uid,
                x,
                y,
                z,
                diameter,
                malignancy_label(median),
                nodule.num_nodule_readers,
                median,
            )
        )
    return rows


def write_annotations_csv(path: str | Path, rows: Sequence[AnnotationRow]) -> Path:
    """Write ``rows`` under the :data:`ANNOTATION_COLUMNS` header (mm to 3 decimals)."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(ANNOTATION_COLUMNS)
        for uid, x, y, z, diameter, label, readers, median in rows:
            writer.writerow(
                [
                    uid,
                    f"{x:.3f}",
                    f"{y:.3f}",
                    f"{z:.3f}",
                    f"{diameter:.3f}",
                    label,
                    readers,
                    "" if median is None else f"{median:g}",
                ]
            )
    return path
