"""Labelled points in world coordinates: LUNA16's CSVs read and checked, as point dicts.

A point is a dict ``{center_xyz, label, source, malignancy, diameter_mm}`` (world LPS mm),
what :func:`sparkdl.patches.extract.make_patch_rows` cuts a patch around. LUNA16's
``annotations.csv`` gives nodules (positives), ``candidates.csv`` candidate points with a
class; both are read here with every column checked, so a bad file fails with the line.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import IO, Any, Literal

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
                }
            )
    return points
