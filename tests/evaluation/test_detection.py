"""Detection's list: one detection per finding, limits, the CSV, and the candidates CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql.pandas.types import to_arrow_schema

from sparkdl.errors import ConfigError, InputError
from sparkdl.evaluation.detection import (
    Detection,
    DetectOptions,
    limit,
    merge_detections,
    write_candidates_csv,
    write_detections,
)
from sparkdl.store.tables import CANDIDATES_SCHEMA


def _d(series: str, x: float, p: float, diameter: float = 6.0) -> Detection:
    return Detection(series, (x, 0.0, 0.0), diameter, p)


def test_detections_of_one_finding_merge_into_the_most_probable() -> None:
    found = [
        _d("A", 0.0, 0.6),
        _d("A", 2.0, 0.9),  # 2 mm from the first: the same finding, more probable
        _d("A", 30.0, 0.5),  # another finding
        _d("B", 2.0, 0.4),  # the same place in another scan is another finding
        _d("A", 12.0, 0.7, diameter=30.0),  # 30 mm wide: its reach (15 mm) covers the 0.9 one
    ]
    merged = merge_detections(found)
    by_series = {(d.series_uid, d.center[0]) for d in merged}
    # The larger reach of the two decides: the 0.7 detection is the 0.9 one's finding.
    assert by_series == {("A", 2.0), ("A", 30.0), ("B", 2.0)}


def test_limits_keep_the_most_probable_per_scan() -> None:
    found = [_d("A", 10.0 * i, p) for i, p in enumerate([0.2, 0.9, 0.5, 0.7])] + [_d("B", 0, 0.1)]
    kept = limit(found, threshold=0.3, max_per_scan=2)
    assert [(d.series_uid, d.probability) for d in kept] == [("A", 0.9), ("A", 0.7)]
    assert len(limit(found, threshold=None, max_per_scan=None)) == 5


def test_options_are_checked_before_any_work() -> None:
    for bad in ({"threshold": 1.5}, {"max_per_scan": 0}, {"split": "holdout"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            DetectOptions(**bad)  # type: ignore[arg-type]


def test_the_csv_has_luna16s_columns_and_a_size(tmp_path: Path) -> None:
    path = tmp_path / "out" / "detections.csv"
    detections = [Detection("2.25.1", (1.0, 2.0, 3.0), 7.5, 0.87654, malignancy=0.25)]
    write_detections(str(path), detections)
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == [
        "seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "probability", "malignancy"
    ]  # fmt: skip
    assert rows[0]["probability"] == "0.8765" and rows[0]["diameter_mm"] == "7.5"
    write_detections(str(path), [Detection("2.25.1", (1.0, 2.0, 3.0), -1.0, 0.5)])
    assert "malignancy" not in next(csv.DictReader(path.open()))


def _dataset(root: Path, rows: list[dict[str, object]] | None) -> Path:
    root.mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"counts": {}}))
    if rows is not None:
        (root / "candidates").mkdir()
        schema = to_arrow_schema(CANDIDATES_SCHEMA)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), root / "candidates" / "p.parquet")
    return root


def test_candidates_csv_in_luna16_form_unknown_class_left_empty(tmp_path: Path) -> None:
    base = {"patient_id": "p", "split": "test", "coordY": 0.0, "coordZ": 0.0, "mean_hu": -50.0}
    rows = [
        {**base, "series_uid": "B", "coordX": 1.0, "diameter_mm": 5, "score": 9.0,
         "kind": "solid", "label": -1},
        {**base, "series_uid": "A", "coordX": 2.0, "diameter_mm": 8, "score": 4.0,
         "kind": "subsolid", "label": 1},
        {**base, "series_uid": "A", "coordX": 3.0, "diameter_mm": 8, "score": 7.0,
         "kind": "solid", "label": 0},
    ]  # fmt: skip
    data = _dataset(tmp_path / "out", rows)
    target = tmp_path / "candidates.csv"
    assert write_candidates_csv(str(data), str(target)) == 3
    written = list(csv.DictReader(target.open()))
    assert [r["seriesuid"] for r in written] == ["A", "A", "B"]  # by series, strongest first
    assert [r["class"] for r in written] == ["0", "1", ""]
    assert written[0]["kind"] == "solid" and written[1]["diameter_mm"] == "8.0"


def test_candidates_csv_without_generated_candidates_says_how_to_get_them(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "out", None)
    with pytest.raises(InputError, match="generated no candidates"):
        write_candidates_csv(str(data), str(tmp_path / "c.csv"))
