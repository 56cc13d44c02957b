"""One positive per nodule: label sources merged, candidates labelled by the nodules they hit."""

from __future__ import annotations

from typing import Any

from sparkdl.patches.points import label_candidates, merge_nodules


def _point(xyz: tuple[float, float, float], source: str, **fields: Any) -> dict[str, Any]:
    kinds = {"annotations": "annotation", "lidc": "annotation", "candidates": "candidate"}
    point = {
        "center_xyz": xyz,
        "label": 1,
        "source": kinds.get(source, source),
        "malignancy": -1,
        "diameter_mm": 8.0,
        "sources": (source,),
    }
    return {**point, **fields}


def test_two_sources_naming_one_nodule_give_one_positive() -> None:
    csv = [_point((10.0, 20.0, -30.0), "annotations", diameter_mm=9.1)]
    # The readers' centre of the same nodule, a few tenths of a mm away, with a malignancy.
    xml = [_point((10.3, 19.8, -30.2), "lidc", malignancy=1, diameter_mm=8.7)]
    merged = merge_nodules(csv, xml)
    assert len(merged) == 1
    nodule = merged[0]
    assert nodule["center_xyz"] == (10.0, 20.0, -30.0)  # the annotations CSV's centre wins
    assert nodule["diameter_mm"] == 9.1
    assert nodule["malignancy"] == 1  # the first known malignancy, here the readers'
    assert nodule["sources"] == ("annotations", "lidc")


def test_nodules_farther_apart_than_their_radius_stay_two() -> None:
    csv = [_point((0.0, 0.0, 0.0), "annotations", diameter_mm=6.0)]
    xml = [_point((7.0, 0.0, 0.0), "lidc", diameter_mm=6.0)]  # 7 mm > 3 mm radius
    assert len(merge_nodules(csv, xml)) == 2


def test_a_large_nodule_reaches_a_small_ones_centre() -> None:
    """The larger of the two radii decides (LUNA16's rule from either side)."""
    big = [_point((0.0, 0.0, 0.0), "annotations", diameter_mm=20.0)]
    small = [_point((8.0, 0.0, 0.0), "lidc", diameter_mm=4.0)]
    assert len(merge_nodules(big, small)) == 1
    assert len(merge_nodules(small, big)) == 1


def test_negatives_pass_through_unmerged() -> None:
    hard = [{**_point((0.0, 0.0, 0.0), "lidc"), "label": 0, "source": "candidate"}]
    nodule = [_point((0.5, 0.0, 0.0), "annotations")]
    merged = merge_nodules(nodule, hard)
    assert [p["label"] for p in merged] == [1, 0]


def test_generated_candidates_give_one_positive_per_nodule_the_nearest() -> None:
    nodule = _point((0.0, 0.0, 0.0), "annotations", diameter_mm=10.0, malignancy=0)
    near = _point((1.0, 0.0, 0.0), "generated", label=0, diameter_mm=-1.0)
    nearer = _point((0.5, 0.0, 0.0), "generated", label=0, diameter_mm=-1.0)
    away = _point((40.0, 0.0, 0.0), "generated", label=0, diameter_mm=-1.0)
    labelled = label_candidates([nodule], [near, nearer, away])
    positives = [p for p in labelled if p["label"] == 1]
    assert [p["center_xyz"] for p in positives] == [(0.5, 0.0, 0.0)]
    assert positives[0]["malignancy"] == 0 and positives[0]["diameter_mm"] == 10.0
    assert positives[0]["sources"] == ("generated", "annotations")
    assert [p["center_xyz"] for p in labelled if p["label"] == 0] == [(40.0, 0.0, 0.0)]


def test_listed_candidates_keep_their_class_and_uncovered_nodules_are_added() -> None:
    covered = _point((0.0, 0.0, 0.0), "annotations", malignancy=1)
    missed = _point((50.0, 0.0, 0.0), "annotations")
    on_nodule = _point((1.0, 0.0, 0.0), "candidates", label=1)
    also_on_nodule = _point((2.0, 0.0, 0.0), "candidates", label=1)
    negative_listed_near = _point((0.5, 0.0, 0.0), "candidates", label=0)
    labelled = label_candidates(
        [covered, missed], [on_nodule, also_on_nodule, negative_listed_near]
    )
    # LUNA16's file lists several candidates on one nodule: each stays, with its class.
    assert [p["label"] for p in labelled if p["source"] == "candidate"] == [1, 1, 0]
    assert all(p["malignancy"] == 1 for p in labelled if p["source"] == "candidate" and p["label"])
    # The nodule no candidate covers is a point of its own; the covered one is not.
    assert [p["center_xyz"] for p in labelled if p["source"] == "annotation"] == [(50.0, 0.0, 0.0)]
