"""Candidates generated in a patch task: labelled by the nodules they hit, one positive per
nodule, the table's label by LUNA16's rule, unknown where no label source covers the scan."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sparkdl.candidates import CandidateOptions
from sparkdl.ingestion.candidate_stage import Generation, generated_points
from tests.candidates.chests import Chest, render_chest
from tests.helpers import TEST_KEY


@pytest.fixture(scope="module")
def chest() -> Chest:
    return render_chest(3, num_nodules=4)


def _volume(chest: Chest) -> dict[str, Any]:
    g = chest.geometry
    return {
        "series_uid": "2.25.7",
        "patient_id": "p1",
        "volume": chest.hu,
        "spacing": np.asarray(g.spacing),
        "origin": np.asarray(g.origin),
        "direction": np.asarray(g.direction).ravel(),
    }


def _nodules(chest: Chest) -> list[dict[str, Any]]:
    return [
        {
            "center_xyz": tuple(float(v) for v in n.center),
            "label": 1,
            "source": "annotation",
            "malignancy": int(n.malignant),
            "diameter_mm": 2.0 * n.radius_mm,
            "sources": ("annotations",),
        }
        for n in chest.phantom.nodules
    ]


def _generation(**fields: Any) -> Generation:
    base = {"options": CandidateOptions(), "folder": "/unused", "prefix": "t"}
    return Generation(**{**base, "labelled_all": True, **fields})


def test_each_nodule_is_one_positive_and_the_table_says_every_hit(chest: Chest) -> None:
    nodules = _nodules(chest)
    points, rows = generated_points(_volume(chest), nodules, _generation(), TEST_KEY.encode())
    positives = [p for p in points if p["label"] == 1]
    assert len(positives) == len(nodules)  # the nearest candidate, or the nodule itself
    generated = [p for p in positives if p["source"] == "generated"]
    assert len(generated) >= len(nodules) - 1  # candidate generation found (nearly) all
    for p in generated:
        assert p["sources"] == ("generated", "annotations") and p["diameter_mm"] > 0
    assert {r["label"] for r in rows} <= {0, 1}
    assert sum(r["label"] for r in rows) >= len(generated)  # every hit, nearest or not
    assert len({r["split"] for r in rows}) == 1 and 0 < len(rows) <= 200
    assert sum(p["source"] == "generated" for p in points) <= len(rows)


def test_a_scan_no_label_source_covers_gets_unknown_labels(chest: Chest) -> None:
    generation = _generation(labelled_all=False)
    points, rows = generated_points(_volume(chest), [], generation, TEST_KEY.encode())
    assert points and {p["label"] for p in points} == {-1}
    assert {r["label"] for r in rows} == {-1}
    labelled = _generation(labelled_all=False, labelled=frozenset({"2.25.7"}))
    points, _ = generated_points(_volume(chest), [], labelled, TEST_KEY.encode())
    assert {p["label"] for p in points} == {0}  # labelled: no nodule, so every candidate is not


def test_negatives_on_excluded_findings_are_dropped(chest: Chest) -> None:
    nodules = _nodules(chest)
    # The readers' nodule below the lidc: rule is an excluded finding, not a nodule.
    excluded = {"2.25.7": [(*nodules[0]["center_xyz"], nodules[0]["diameter_mm"])]}
    points, _ = generated_points(
        _volume(chest), nodules[1:], _generation(excluded=excluded), TEST_KEY.encode()
    )
    centre = np.asarray(nodules[0]["center_xyz"])
    reach = max(nodules[0]["diameter_mm"] / 2, 3.0)
    near = [p for p in points if np.linalg.norm(np.asarray(p["center_xyz"]) - centre) <= reach]
    assert not [p for p in near if p["label"] == 0]
