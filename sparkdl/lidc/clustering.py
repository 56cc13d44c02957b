"""Which readers' marks are one nodule: clustering the marks of one series.

LIDC readers marked independently, so one physical nodule appears once per reader who saw
it, as an outline (≥ 3 mm), a point (< 3 mm) or a non-nodule point. Two marks are linked
when

* their footprints share a voxel (an outline overlaps another, or a point lies inside
  one), or
* their centroids are at most ``max(reach_a, reach_b)`` apart, where an outline's reach is
  its volume-equivalent radius and a point's reach is :data:`POINT_REACH_MM` (3 mm: two
  clicks inside one nodule < 3 mm across are less than 3 mm apart; a slice or two of
  disagreement on thin slices still links).

The maximum, not the sum, of the two radii: a centroid must fall inside the other mark's
sphere. The sum would chain neighbouring, touching nodules into one; overlapping outlines
are already caught by the shared voxel. pylidc's ``Scan.cluster_annotations`` links
outlines whose boundary points come within a tolerance (the slice thickness) and lowers
the tolerance until no group has more than 4 annotations; here that cap is exact instead:
a reader contributes at most one mark per nodule. Links are taken closest first (centroid
distance, then reader and mark id) and a link is skipped when the two groups share a
reader, so a reader's second, farther mark starts or joins another nodule. The result
depends only on the marks, not on their order.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sparkdl.lidc.marks import Mark
from sparkdl.lidc.read_message import CHARACTERISTICS

__all__ = ["POINT_REACH_MM", "Nodule", "cluster_marks"]

#: The reach of a point mark (small nodule < 3 mm, non-nodule), mm.
POINT_REACH_MM = 3.0


@dataclass(frozen=True)
class Nodule:
    """One physical nodule as the readers marked it.

    ``centre_lps`` is the mean of the outlined marks' centroids (of all marks when none is
    outlined); ``diameter_mm`` the mean of the outlined marks' diameters (None when none).
    ``num_readers`` counts the readers with any mark here, ``num_nodule_readers`` those who
    outlined it as a nodule ≥ 3 mm (the count LUNA16's "3 of 4 readers" rule uses).
    ``ratings[name]`` holds the readers' ratings of a characteristic in reader order, and
    ``medians[name]`` their median, for the characteristics at least one reader gave.
    """

    centre_lps: tuple[float, float, float]
    diameter_mm: float | None
    num_readers: int
    num_nodule_readers: int
    ratings: Mapping[str, tuple[int, ...]]
    medians: Mapping[str, float]
    marks: tuple[Mark, ...]


def _reach(mark: Mark) -> float:
    return POINT_REACH_MM if mark.diameter_mm is None else mark.diameter_mm / 2.0


def _distance(a: Mark, b: Mark) -> float:
    return math.dist(a.centre_lps, b.centre_lps)


def _linked(a: Mark, b: Mark) -> bool:
    if _distance(a, b) <= max(_reach(a), _reach(b)):
        return True
    return not a.footprint.isdisjoint(b.footprint)


def _summary(marks: list[Mark]) -> Nodule:
    marks = sorted(marks, key=lambda m: (m.reader, m.kind, m.mark_id))
    outlined = [m for m in marks if m.diameter_mm is not None]
    placed = outlined or marks
    centre = tuple(float(statistics.fmean(m.centre_lps[i] for m in placed)) for i in range(3))
    diameters = [m.diameter_mm for m in outlined if m.diameter_mm is not None]
    ratings = {
        name: tuple(m.characteristics[name] for m in marks if name in m.characteristics)
        for name in CHARACTERISTICS
    }
    ratings = {name: values for name, values in ratings.items() if values}
    return Nodule(
        centre_lps=(centre[0], centre[1], centre[2]),
        diameter_mm=statistics.fmean(diameters) if diameters else None,
        num_readers=len({m.reader for m in marks}),
        num_nodule_readers=len({m.reader for m in outlined}),
        ratings=ratings,
        medians={name: float(statistics.median(values)) for name, values in ratings.items()},
        marks=tuple(marks),
    )


def cluster_marks(marks: Sequence[Mark]) -> list[Nodule]:
    """Group the marks of one series into nodules (see the module docstring for the rule).

    Returns the nodules ordered by centre (LPS z, then y, then x).
    """
    ordered = sorted(marks, key=lambda m: (m.reader, m.kind, m.mark_id, m.centre_lps))
    links = sorted(
        (_distance(a, b), i, j)
        for i, a in enumerate(ordered)
        for j, b in enumerate(ordered[i + 1 :], start=i + 1)
        if a.reader != b.reader and _linked(a, b)
    )
    group = list(range(len(ordered)))  # union-find parents
    readers = [{m.reader} for m in ordered]

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for _, i, j in links:
        a, b = root(i), root(j)
        if a != b and readers[a].isdisjoint(readers[b]):
            group[b] = a
            readers[a] |= readers[b]
    members: dict[int, list[Mark]] = {}
    for i, mark in enumerate(ordered):
        members.setdefault(root(i), []).append(mark)
    nodules = [_summary(group_marks) for group_marks in members.values()]
    return sorted(
        nodules,
        key=lambda n: (n.centre_lps[2], n.centre_lps[1], n.centre_lps[0], n.marks[0].mark_id),
    )
