"""The LIDC stage of ingest: readers' marks placed on the de-identified slices, clustered into
nodules, and the nodules that become labelled points for the patches.

Executors parsed every read message found among the inputs and sent it pseudonymized
(:mod:`sparkdl.lidc.pseudonymous`). Here, on the driver, each message meets the geometry of
its series' slices (ImagePositionPatient, ImageOrientationPatient, PixelSpacing, from the
records of this run, and of the published catalog in an append run) by de-identified SOP UID;
the marks are clustered (:mod:`sparkdl.lidc.clustering`) and written as two tables:
``reads/`` (one row per message: the pseudonymized message and what could not be placed)
and ``nodules/`` (one row per clustered nodule). Positives follow ``lidc:`` of the ingest
config (:class:`sparkdl.lidc.NoduleRules`, LUNA16's rule by default); their malignancy label
is 1 above a median rating of 3, 0 below, -1 at 3.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkdl.lidc.clustering import cluster_marks
from sparkdl.lidc.labels import NoduleRules, malignancy_label
from sparkdl.lidc.marks import SliceGeometry, read_marks
from sparkdl.lidc.pseudonymous import from_json

logger = logging.getLogger(__name__)

__all__ = [
    "LidcResult",
    "build_nodules",
    "read_messages",
    "write_annotations",
]

_GEOMETRY_COLUMNS = [
    "sop_uid",
    "series_uid",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
]


@dataclass(frozen=True)
class LidcResult:
    """The two tables' rows, the positive nodules as patch points, and the findings LUNA16
    would leave out of its reference (nodules below the ``lidc:`` rule, non-nodules):
    ``(x, y, z, diameter_mm or -1)`` per series, excluded from FROC counting."""

    reads: list[tuple[Any, ...]]
    nodules: list[tuple[Any, ...]]
    points: dict[str, list[dict[str, Any]]]
    excluded: dict[str, list[tuple[float, float, float, float]]]


def read_messages(records: DataFrame) -> list[tuple[str, str]]:
    """``(series_uid, pseudonymized JSON)`` of every read message among the staged records,
    sorted (one Spark job: ingest asks once, for the rebuild plan and for the nodules)."""
    rows = records.filter(F.col("status") == "read_message").select("series_uid", "read_message")
    return sorted((row["series_uid"], row["read_message"]) for row in rows.collect())


def build_nodules(
    messages: list[tuple[str, str]],
    records: DataFrame,
    options: NoduleRules,
    catalog: DataFrame | None,
) -> LidcResult | None:
    """Nodules of the read ``messages`` (:func:`read_messages`; None when there is none),
    placed on the slices of ``records`` and of ``catalog`` (an append run's published one).
    """
    if not messages:
        return None
    series = sorted({series_uid for series_uid, _ in messages})
    slices = records.filter(F.col("status") == "accepted").select(*_GEOMETRY_COLUMNS)
    if catalog is not None:
        slices = slices.unionByName(catalog.select(*_GEOMETRY_COLUMNS))
    geometry, unplaceable = _geometry(slices.filter(F.col("series_uid").isin(series)).collect())
    result = LidcResult([], [], defaultdict(list), defaultdict(list))
    numbered: Counter[str] = Counter()
    for series_uid, text in messages:
        numbered[series_uid] += _add_message(
            result, series_uid, text, (geometry, unplaceable), options, first=numbered[series_uid]
        )
    return LidcResult(result.reads, result.nodules, dict(result.points), dict(result.excluded))


def _add_message(
    result: LidcResult,
    series_uid: str,
    text: str,
    geometry: tuple[dict[str, SliceGeometry], frozenset[str]],
    options: NoduleRules,
    first: int,
) -> int:
    """Add one message's read row, nodule rows (numbered from ``first`` within its series)
    and points; return how many nodules it had.

    Long: the rows are built in the column order of ``READ_SCHEMA`` and ``NODULE_SCHEMA``, so
    each table reads against its declaration.
    """
    message = from_json(text)
    marks, unplaced = read_marks(message, geometry[0], unplaceable=geometry[1])
    nodules = cluster_marks(marks)
    result.reads.append(
        (
            series_uid,
            len(message.sessions),
            len(marks),
            len(nodules),
            json.dumps([asdict(u) for u in unplaced]),
            text,
        )
    )
    for index, nodule in enumerate(nodules, start=first):
        median = nodule.medians.get("malignancy")
        label = malignancy_label(median)
        positive = options.is_positive(nodule)
        x, y, z = nodule.centre_lps
        result.nodules.append(
            (
                series_uid,
                index,
                x,
                y,
                z,
                nodule.diameter_mm,
                nodule.num_readers,
                nodule.num_nodule_readers,
                ",".join(sorted({mark.kind for mark in nodule.marks})),
                median,
                label,
                positive,
                json.dumps(dict(nodule.medians), sort_keys=True),
                json.dumps({k: list(v) for k, v in nodule.ratings.items()}, sort_keys=True),
            )
        )
        if options.is_hard_negative(nodule):
            result.points[series_uid].append(
                {
                    "center_xyz": (x, y, z),
                    "label": 0,
                    "source": "candidate",  # a marked finding that is not a nodule
                    "malignancy": -1,
                    "diameter_mm": -1.0,
                    "sources": ("lidc",),
                }
            )
        if not positive:
            result.excluded[series_uid].append((x, y, z, float(nodule.diameter_mm or -1.0)))
        else:
            result.points[series_uid].append(
                {
                    "center_xyz": (x, y, z),
                    "label": 1,
                    "source": "annotation",
                    "malignancy": label,
                    "diameter_mm": float(nodule.diameter_mm or 0.0),
                    "sources": ("lidc",),
                }
            )
    return len(nodules)


def _geometry(rows: Iterable[Any]) -> tuple[dict[str, SliceGeometry], frozenset[str]]:
    """Each slice's geometry by de-identified SOP UID, and the slices whose geometry is
    missing or unusable; a slice's thickness is the spacing to its neighbours along the slice
    normal (the median in its series), else SliceThickness."""
    by_series: dict[str, list[Any]] = defaultdict(list)
    unplaceable: set[str] = set()
    for row in rows:
        if row["ImagePositionPatient"] and row["ImageOrientationPatient"] and row["PixelSpacing"]:
            by_series[row["series_uid"]].append(row)
        else:
            unplaceable.add(row["sop_uid"])
    geometry: dict[str, SliceGeometry] = {}
    for slices in by_series.values():
        iop = np.asarray(slices[0]["ImageOrientationPatient"], dtype=np.float64)
        normal = np.cross(iop[:3], iop[3:])
        along = np.sort([float(np.dot(normal, s["ImagePositionPatient"])) for s in slices])
        steps = np.diff(along)
        steps = steps[steps > 1e-3]
        spacing = float(np.median(steps)) if steps.size else None
        for s in slices:
            thickness = spacing or float(s["SliceThickness"] or 0.0) or 1.0
            try:
                geometry[s["sop_uid"]] = SliceGeometry(
                    tuple(s["ImagePositionPatient"]),
                    tuple(s["ImageOrientationPatient"]),
                    tuple(s["PixelSpacing"]),
                    thickness,
                )
            except ValueError:
                unplaceable.add(s["sop_uid"])  # its marks get slice_geometry_unusable
    return geometry, frozenset(unplaceable)


def write_annotations(data: str, path: str, *, all_nodules: bool = False) -> int:
    """``OUT/nodules/`` as a LUNA16-form ``annotations.csv`` at ``path``; the rows written.

    The positives (or every outlined nodule with ``all_nodules``), pseudonymous series UIDs,
    with the extra columns ``malignancy`` (1/0/-1), ``readers`` and ``malignancy_median``
    (:data:`sparkdl.lidc.labels.ANNOTATION_COLUMNS`). The series UIDs are those of the
    dataset's own tables, for evaluation on it (``ingest --annotations`` expects originals).
    """
    from sparkdl.errors import InputError
    from sparkdl.lidc.labels import write_annotations_csv
    from sparkdl.store.layout import Dataset
    from sparkdl.store.table_files import columns
    from sparkdl.store.tables import NODULES

    names = [
        "series_uid", "coordX", "coordY", "coordZ", "diameter_mm", "malignancy",
        "num_nodule_readers", "malignancy_median", "positive",
    ]  # fmt: skip
    dataset = Dataset.of(data)
    dataset.manifest()  # a clear error when this is no complete ingest output
    table = columns(dataset.path(NODULES), names)
    if table is None:
        raise InputError(
            f"{dataset.root} has no {NODULES}/: none of its inputs was an LIDC read message "
            "(the readers' XML, LidcReadMessage), so it holds no reader nodules. Ingest the "
            "XML files with the series they read."
        )
    rows = table.to_pylist()
    if rows and not all_nodules and not any(r["positive"] for r in rows):
        logger.warning(
            "annotations: none of the %d nodules the readers marked meets the lidc: rule of "
            "the ingest config (a positive); --all writes every outlined nodule",
            len(rows),
        )
    chosen = [r for r in rows if r["diameter_mm"] is not None and (all_nodules or r["positive"])]
    write_annotations_csv(
        path,
        [
            (
                r["series_uid"],
                r["coordX"],
                r["coordY"],
                r["coordZ"],
                r["diameter_mm"],
                r["malignancy"],
                r["num_nodule_readers"],
                r["malignancy_median"],
            )
            for r in chosen
        ],
    )
    return len(chosen)
