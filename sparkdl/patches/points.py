"""Labelled points in world coordinates: LUNA16's CSVs read and checked, as point dicts.

A point is a dict ``{center_xyz, label, source, malignancy, diameter_mm, sources}`` (world
LPS mm), what :func:`sparkdl.patches.extract.make_patch_rows` cuts a patch around; ``source``
says what kind of point it is (a nodule ``annotation``, a ``candidate``, a ``sampled`` or
``generated`` one), ``sources`` which label sources name it. LUNA16's ``annotations.csv``
gives nodules (positives), ``candidates.csv`` candidate points with a class; both are read
here with every column checked, so a bad file fails with the line. Several sources naming
one nodule become one positive (:func:`merge_nodules`); candidates are labelled by the
nodules they hit (:func:`label_candidates`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd

from sparkdl.errors import ConfigError, InputError
from sparkdl.store import storage

_COLUMNS = {
    "annotations": ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"],
    "candidates": ["seriesuid", "coordX", "coordY", "coordZ", "class"],
}


def read_points_csv(
    path_or_file: str | Path | IO[str], kind: Literal["annotations", "candidates"]
) -> pd.DataFrame:
    """Read a LUNA16 ``annotations.csv`` or ``candidates.csv`` (world LPS mm coordinates).

    annotations: ``seriesuid,coordX,coordY,coordZ,diameter_mm[,malignancy]`` (malignancy
    1/0/-1, filled with -1 when absent); candidates: ``seriesuid,coordX,coordY,coordZ,class``.
    ``path_or_file`` is a path, any URI :func:`sparkdl.store.storage.open_input` reads
    (``hdfs://``, ``s3a://``), or an open text file.
    """
    if kind not in _COLUMNS:
        raise ConfigError(f"kind must be 'annotations' or 'candidates'. Received: {kind!r}")
    name = str(getattr(path_or_file, "name", path_or_file))
    try:
        with (
            storage.open_input(str(path_or_file))
            if isinstance(path_or_file, (str, Path))
            else contextlib.nullcontext(path_or_file)
        ) as handle:
            frame = pd.read_csv(handle, dtype={"seriesuid": str}, skipinitialspace=True)
    except FileNotFoundError as exc:
        raise InputError(f"{kind} file not found: {name}. Pass an existing CSV.") from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError(
            f"{kind} file {name} is empty; expected a header {','.join(_COLUMNS[kind])}."
        ) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in _COLUMNS[kind] if c not in frame.columns]
    if missing:
        raise InputError(
            f"{kind} file {name} lacks column(s) {missing}. Found: "
            f"{list(frame.columns)}. Expected the LUNA16 header "
            f"{','.join(_COLUMNS[kind])}."
        )
    numeric = _COLUMNS[kind][1:] + (["malignancy"] if "malignancy" in frame.columns else [])
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() if column != "malignancy" else values.isna() & frame[column].notna()
        if bad.any():
            raise InputError(
                f"{kind} file {name}: column {column} holds {int(bad.sum())} "
                f"non-numeric value(s), first on data line {int(bad.idxmax()) + 1}."
            )
        frame[column] = values
    if kind == "annotations":
        if "malignancy" not in frame.columns:
            frame["malignancy"] = -1
        frame["malignancy"] = frame["malignancy"].fillna(-1).astype(int)
        allowed, column = {-1, 0, 1}, "malignancy"
    else:
        frame["class"] = frame["class"].astype(int)
        allowed, column = {0, 1}, "class"
    if not set(frame[column].unique()) <= allowed:
        raise InputError(
            f"{kind} file {name}: column {column} must hold {sorted(allowed)}. "
            f"Received: {sorted(set(frame[column].unique()) - allowed)}."
        )
    return frame


def points_from_frame(
    frame: pd.DataFrame, kind: Literal["annotations", "candidates"]
) -> list[dict[str, Any]]:
    """Point dicts for :func:`make_patch_rows` from rows of :func:`read_points_csv`."""
    points = []
    for row in frame.to_dict("records"):
        center = (float(row["coordX"]), float(row["coordY"]), float(row["coordZ"]))
        if kind == "annotations":
            points.append(
                {
                    "center_xyz": center,
                    "label": 1,
                    "source": "annotation",
                    "malignancy": int(row["malignancy"]),
                    "diameter_mm": float(row["diameter_mm"]),
                    "sources": ("annotations",),
                }
            )
        else:
            points.append(
                {
                    "center_xyz": center,
                    "label": int(row["class"]),
                    "source": "candidate",
                    "malignancy": -1,
                    "diameter_mm": -1.0,
                    "sources": ("candidates",),
                }
            )
    return points


#: Where a labelled point can come from, in the order their centres win when several name
#: one nodule: LUNA16's annotations.csv (the reference standard its evaluation matches
#: against), the LIDC readers' XML (the same reads, centred by sparkdl's clustering), a
#: candidates file, candidates generated by sparkdl.
LABEL_SOURCES = ("annotations", "lidc", "candidates", "generated")
#: A nodule's reach for merging and for LUNA16's hit rule: its radius, at least this (mm).
MIN_REACH_MM = 3.0


def reach_mm(point: Mapping[str, Any]) -> float:
    """How far from its centre a point still names the same nodule: its radius (LUNA16's
    hit rule), at least :data:`MIN_REACH_MM` when the diameter is small or unknown."""
    return max(float(point.get("diameter_mm", -1.0)) / 2.0, MIN_REACH_MM)


def merge_nodules(*groups: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One positive per nodule, whatever the number of label sources that name it.

    ``groups`` are the positive points of one series from each label source, in the order
    of :data:`LABEL_SOURCES` (the first source's centre wins). A later source's nodule within
    the reach of an earlier one (the larger of the two radii, LUNA16's rule) is the same
    nodule: the merged point keeps the first centre and its diameter when known, the first
    known malignancy (an annotations.csv without one says -1; the readers' median does), and
    every source in ``sources``. Negatives (label 0) pass through unmerged.
    """
    merged: list[dict[str, Any]] = []
    negatives: list[dict[str, Any]] = []
    for group in groups:
        for point in group:
            if int(point["label"]) != 1:
                negatives.append(point)
                continue
            same = _nearest_within(merged, point)
            if same is None:
                merged.append({**point, "sources": tuple(point.get("sources", ()))})
                continue
            nodule = merged[same]
            if int(nodule.get("malignancy", -1)) < 0:
                nodule["malignancy"] = int(point.get("malignancy", -1))
            if float(nodule.get("diameter_mm", -1.0)) <= 0:
                nodule["diameter_mm"] = float(point.get("diameter_mm", -1.0))
            extra = [s for s in point.get("sources", ()) if s not in nodule["sources"]]
            nodule["sources"] = (*nodule["sources"], *extra)
    return merged + negatives


def label_candidates(
    nodules: Sequence[dict[str, Any]], candidates: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One series' candidates labelled from its nodules, plus the nodules no candidate covers.

    A candidate within a nodule's reach (LUNA16's hit rule) is a positive of that nodule: it
    takes the nodule's label, malignancy, diameter and sources. A listed candidate keeps the
    class its file gave (LUNA16's ``candidates.csv`` was labelled with the same rule, and
    lists several candidates on one nodule: each stays a point, as evaluation scores the
    list as given and counts one hit per nodule). Of the generated candidates on one nodule
    only the nearest becomes its positive and the others are dropped: one nodule is one
    positive. Nodules no positive candidate covers are added as points of their own, so
    training still sees every nodule once.
    """
    if not nodules:
        return list(candidates)
    centres = np.array([n["center_xyz"] for n in nodules], dtype=np.float64).reshape(-1, 3)
    reach = np.array([reach_mm(n) for n in nodules])
    positive = np.array([int(n["label"]) == 1 for n in nodules])
    covered = np.zeros(len(nodules), dtype=bool)
    nearest_generated: dict[int, tuple[float, int]] = {}
    labelled: list[dict[str, Any]] = []
    for candidate in candidates:
        point = dict(candidate)
        distance = np.linalg.norm(centres - np.asarray(candidate["center_xyz"]), axis=1)
        inside = np.flatnonzero((distance <= reach) & positive)
        listed = "candidates" in candidate.get("sources", ())
        if len(inside) and (not listed or int(candidate["label"]) == 1):
            nearest = int(inside[np.argmin(distance[inside])])
            covered[nearest] = True
            nodule = nodules[nearest]
            point.update(
                label=1,
                malignancy=int(nodule.get("malignancy", -1)),
                diameter_mm=float(nodule.get("diameter_mm", -1.0)),
                sources=tuple(
                    dict.fromkeys((*candidate.get("sources", ()), *nodule.get("sources", ())))
                ),
            )
            if not listed:
                best = nearest_generated.get(nearest)
                if best is not None and best[0] <= distance[nearest]:
                    continue  # a nearer generated candidate is this nodule's positive
                if best is not None:
                    labelled[best[1]] = {}  # replaced by this nearer one
                nearest_generated[nearest] = (float(distance[nearest]), len(labelled))
        labelled.append(point)
    kept = [point for point in labelled if point]
    return [n for n, hit in zip(nodules, covered) if not hit] + kept


def _nearest_within(nodules: Sequence[dict[str, Any]], point: Mapping[str, Any]) -> int | None:
    """Index of the nodule of ``nodules`` nearest to ``point`` within either's reach."""
    if not nodules:
        return None
    centres = np.array([n["center_xyz"] for n in nodules], dtype=np.float64)
    distance = np.linalg.norm(centres - np.asarray(point["center_xyz"], dtype=np.float64), axis=1)
    reach = np.maximum([reach_mm(n) for n in nodules], reach_mm(point))
    inside = np.flatnonzero(distance <= reach)
    return int(inside[np.argmin(distance[inside])]) if len(inside) else None
