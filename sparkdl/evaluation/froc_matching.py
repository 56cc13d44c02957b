"""LUNA16's matching of candidates to findings, scan by scan: the marks a FROC curve counts.

As ``evaluateCAD`` of ``noduleCADEvaluationLUNA16.py`` does it (:mod:`sparkdl.evaluation.froc`
says where each rule comes from): a candidate hits a finding strictly inside its radius (a
negative diameter means 10 mm); each scan keeps its most probable marks; a nodule hit by
several candidates is one mark at the highest probability; a candidate on an excluded
finding and on no nodule is ignored; any other candidate is a false positive.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from sparkdl.errors import DataError

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

#: Diameter the script gives a finding whose ``diameter_mm`` is negative (unknown).
DEFAULT_DIAMETER_MM = 10.0
CANDIDATE_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "probability")
FINDING_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")


@dataclass(frozen=True, eq=False)
class Marks:
    """The FROC list: one mark per detected nodule (at its best probability) and one per
    false positive, with the scan (index into ``series_ids``) of each; nodules per scan."""

    scan: IntArray
    is_nodule: BoolArray
    probability: FloatArray
    nodules_per_scan: IntArray
    num_candidates: int
    num_excluded_hits: int


def match_marks(
    candidates: pd.DataFrame,
    annotations: pd.DataFrame,
    excluded: pd.DataFrame | None,
    series_ids: Sequence[str],
    max_candidates_per_scan: int | None,
) -> Marks:
    """The marks of ``candidates`` against the findings of the scans ``series_ids``."""
    ids = _series_index(series_ids)
    cand_scan, cand_xyz, cand_p = _read_points(candidates, CANDIDATE_COLUMNS, "candidates", ids)
    nod_scan, nod_xyz, nod_d = _read_points(annotations, FINDING_COLUMNS, "annotations", ids)
    if excluded is None:
        exc_scan, exc_xyz, exc_d = np.empty(0, np.intp), np.empty((0, 3)), np.empty(0)
    else:
        exc_scan, exc_xyz, exc_d = _read_points(excluded, FINDING_COLUMNS, "excluded", ids)
    nod_r2, exc_r2 = _radius_squared(nod_d), _radius_squared(exc_d)
    num_scans = len(ids)
    groups = [_groups(s, num_scans) for s in (cand_scan, nod_scan, exc_scan)]
    scans: list[IntArray] = []
    is_nodule: list[BoolArray] = []
    probability: list[FloatArray] = []
    num_candidates = num_excluded_hits = num_capped = 0
    for s in range(num_scans):
        c, n, e = groups[0][s], groups[1][s], groups[2][s]
        if not len(c):
            continue
        p = cand_p[c]
        keep = _most_probable(p, max_candidates_per_scan)
        c, p = c[keep], p[keep]
        num_capped += int((~keep).sum())
        num_candidates += len(c)
        hits = _within(cand_xyz[c], nod_xyz[n], nod_r2[n])
        on_nodule = hits.any(axis=1)
        on_excluded = _within(cand_xyz[c], exc_xyz[e], exc_r2[e]).any(axis=1)
        best = np.where(hits, p[:, None], -np.inf).max(axis=0, initial=-np.inf)
        num_excluded_hits += int((~on_nodule & on_excluded).sum())
        for part, nodule in ((best[hits.any(axis=0)], True), (p[~on_nodule & ~on_excluded], False)):
            scans.append(np.full(len(part), s, np.intp))
            is_nodule.append(np.full(len(part), nodule))
            probability.append(part)
    if num_capped:
        logger.info(
            "froc: kept the %d most probable candidates per scan, dropped %d",
            max_candidates_per_scan,
            num_capped,
        )
    return Marks(
        scan=np.concatenate(scans) if scans else np.empty(0, np.intp),
        is_nodule=np.concatenate(is_nodule) if is_nodule else np.empty(0, np.bool_),
        probability=np.concatenate(probability) if probability else np.empty(0),
        nodules_per_scan=np.bincount(nod_scan, minlength=num_scans).astype(np.intp),
        num_candidates=num_candidates,
        num_excluded_hits=num_excluded_hits,
    )


def _series_index(series_ids: Sequence[str]) -> Any:
    if isinstance(series_ids, str):
        raise DataError(
            f"series_ids must be a list of series UIDs, not one string. Received: {series_ids!r}"
        )
    ids = pd.Index(list(series_ids))
    if ids.empty:
        raise DataError("series_ids is empty: pass the UIDs of the evaluated scans.")
    if ids.has_duplicates:
        raise DataError(
            f"series_ids lists {ids[ids.duplicated()][0]!r} more than once; each scan would "
            "count twice in FP/scan. Pass each evaluated scan once."
        )
    return ids


def _read_points(
    frame: pd.DataFrame, columns: tuple[str, ...], name: str, ids: Any
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Scan index, centres (n × 3, mm) and last column of ``frame``'s rows in ``ids``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{name} lacks column(s) {missing}. Received columns: {list(frame.columns)}. "
            f"Expected the LUNA16 names {', '.join(columns)}."
        )
    values = np.empty((len(frame), len(columns) - 1))
    for j, column in enumerate(columns[1:]):
        numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if len(bad):
            raise DataError(
                f"{name} has {len(bad)} row(s) with a missing, infinite or non-numeric "
                f"{column}, the first at position {bad[0]}: {frame[column].iloc[bad[0]]!r}. "
                "Expected finite numbers (world mm; diameter_mm -1 for unknown)."
            )
        values[:, j] = numbers
    scan = np.asarray(ids.get_indexer(frame["seriesuid"]), np.intp)
    outside = scan < 0
    if name == "candidates" and outside.any():
        examples = list(pd.unique(frame["seriesuid"][outside]))
        raise DataError(
            f"candidates has {int(outside.sum())} row(s) of {len(examples)} scan(s) not in "
            f"series_ids, e.g. {examples[:3]}. Evaluate those scans too (add them to "
            "series_ids) or drop their rows from the candidates."
        )
    inside = ~outside
    return scan[inside], values[inside, :3], values[inside, 3]


def _radius_squared(diameter_mm: FloatArray) -> FloatArray:
    diameter = np.where(diameter_mm < 0.0, DEFAULT_DIAMETER_MM, diameter_mm)
    return (diameter / 2.0) ** 2


def _groups(scan: IntArray, num_scans: int) -> list[IntArray]:
    """Row indices of each scan."""
    order = np.argsort(scan, kind="stable")
    bounds = np.searchsorted(scan[order], np.arange(num_scans + 1))
    return [order[bounds[s] : bounds[s + 1]] for s in range(num_scans)]


def _most_probable(probability: FloatArray, cap: int | None) -> BoolArray:
    """evaluateCAD's cap: marks strictly above the (cap + 1)-th highest probability."""
    if cap is None or len(probability) <= cap:
        return np.ones(len(probability), np.bool_)
    keep: BoolArray = probability > -np.sort(-probability)[cap]
    return keep


def _within(points: FloatArray, centres: FloatArray, radius_squared: FloatArray) -> BoolArray:
    """Points (rows) × findings (columns): strictly inside the finding's radius."""
    d = points[:, None, :] - centres[None, :, :]
    distance_squared = d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2]
    within: BoolArray = distance_squared < radius_squared[None, :]
    return within
