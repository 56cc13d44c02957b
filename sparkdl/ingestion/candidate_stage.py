"""The candidate stage of ingest: nodule candidates found in every volume, on the executors.

For scans that come without a candidate list (a hospital's own), ingest generates one per
volume (:func:`sparkdl.candidates.generate_candidates`: lung mask, multi-scale blob filter)
in the task that cuts the volume's patches (:mod:`sparkdl.ingestion.patch_stage`), so the
volume is read and decoded once. The candidates become points like listed ones (``source``
``generated``), labelled by the nodules of the series with LUNA16's hit rule
(:func:`sparkdl.patches.points.label_candidates`): a candidate within a nodule's radius is a
positive of that nodule, any other a negative, and a negative on a finding LUNA16 leaves out
of its reference (``--excluded``, the LIDC readers' findings below the ``lidc:`` rule) is
dropped. A series no label source covers (no annotations file, no read message) gets label
-1, unknown: its candidates are for detection, never for training or metrics.

Every candidate is also a row of ``OUT/candidates/``
(:data:`sparkdl.store.tables.CANDIDATES_SCHEMA`), written by the task that found it
(:mod:`sparkdl.store.writer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparkdl.candidates import Candidate, CandidateOptions, generate_candidates
from sparkdl.patches.extract import assign_split
from sparkdl.patches.points import label_candidates, reach_mm
from sparkdl.store.tables import CANDIDATES_SCHEMA

#: Excluded findings per series: ``(x, y, z, diameter_mm or -1)``, world LPS mm.
Excluded = dict[str, list[tuple[float, float, float, float]]]


@dataclass(frozen=True)
class Generation:
    """What every patch task needs to generate candidates: plain values, pickled along.

    ``labelled_all``: an annotations file was given, so every series is labelled (one it
    names no nodule of has none); ``labelled``: the series a read message labels besides.
    ``fractions``: the split fractions (a candidate row says its patient's split).
    """

    options: CandidateOptions
    folder: str  # the staged candidates/ table
    prefix: str  # this run's part names
    labelled_all: bool
    labelled: frozenset[str] = frozenset()
    excluded: Excluded = field(default_factory=dict)
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)

    def is_labelled(self, series_uid: str) -> bool:
        return self.labelled_all or series_uid in self.labelled


def generated_points(
    volume: dict[str, Any], points: list[dict[str, Any]], generation: Generation, key: bytes
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The points of one volume with its generated candidates, labelled, and the candidates'
    table rows. ``points`` are the volume's nodules (and any other points); ``volume`` a
    decoded ``volumes/`` row."""
    series = str(volume["series_uid"])
    found = generate_candidates(
        np.asarray(volume["volume"]),
        tuple(float(s) for s in volume["spacing"]),
        volume["origin"],
        volume["direction"],
        generation.options,
    )
    labelled = generation.is_labelled(series)
    candidates = [
        {
            "center_xyz": (c.coord_x, c.coord_y, c.coord_z),
            "label": 0 if labelled else -1,
            "source": "generated",
            "malignancy": -1,
            "diameter_mm": -1.0,
            "sources": ("generated",),
        }
        for c in found
    ]
    merged = label_candidates(points, candidates) if candidates else list(points)
    hits = _hits(found, [p for p in points if int(p["label"]) == 1])
    dropped = _on_excluded(merged, generation.excluded.get(series, []))
    kept = [p for i, p in enumerate(merged) if i not in dropped]
    split = assign_split(key, str(volume["patient_id"]), generation.fractions)
    rows = [
        {
            "series_uid": series,
            "patient_id": str(volume["patient_id"]),
            "split": split,
            "coordX": c.coord_x,
            "coordY": c.coord_y,
            "coordZ": c.coord_z,
            "diameter_mm": c.diameter_mm,
            "score": c.score,
            "mean_hu": c.mean_hu,
            "kind": c.kind,
            "label": int(hit) if labelled else -1,
        }
        for c, hit in zip(found, hits)
    ]
    return kept, rows


def write_candidates(rows: list[dict[str, Any]], generation: Generation, part: str) -> None:
    """One task's candidate rows as its part of the staged ``candidates/`` table."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from sparkdl.store.writer import part_name, write_part

    schema = to_arrow_schema(CANDIDATES_SCHEMA)
    batch = pa.RecordBatch.from_pylist(rows, schema=schema)
    write_part([batch], generation.folder, part_name(generation.prefix, part), schema, ())


def _on_excluded(
    points: list[dict[str, Any]], excluded: list[tuple[float, float, float, float]]
) -> set[int]:
    """Indices of generated negatives within the reach of an excluded finding: LUNA16 counts
    them neither as hits nor as false positives, so they teach nothing as negatives."""
    if not excluded:
        return set()
    centres = np.array([e[:3] for e in excluded], dtype=np.float64)
    reach = np.array([reach_mm({"diameter_mm": e[3]}) for e in excluded])
    dropped = set()
    for i, point in enumerate(points):
        if point["source"] != "generated" or int(point["label"]) != 0:
            continue
        distance = np.linalg.norm(centres - np.asarray(point["center_xyz"]), axis=1)
        if np.any(distance <= reach):
            dropped.add(i)
    return dropped


def _hits(found: list[Candidate], nodules: list[dict[str, Any]]) -> list[bool]:
    """Whether each candidate lies within a nodule's reach (LUNA16's hit rule): what the
    table says, also of the candidates whose nodule has a nearer one as its positive."""
    if not nodules or not found:
        return [False] * len(found)
    centres = np.array([n["center_xyz"] for n in nodules], dtype=np.float64)
    reach = np.array([reach_mm(n) for n in nodules])
    points = np.array([(c.coord_x, c.coord_y, c.coord_z) for c in found], dtype=np.float64)
    distance = np.linalg.norm(points[:, None, :] - centres[None, :, :], axis=2)
    return [bool(row.any()) for row in distance <= reach[None, :]]
