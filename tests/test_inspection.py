"""`sparkdl inspect`: the summary agrees with the tables, the sheet marks real nodule centres.

One real ingest (2 synthetic patients with annotations) is shared by the module; the cases
without patches or volumes are copies of it with those tables removed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sparkdl import Labels
from sparkdl.errors import InputError
from sparkdl.inspection import format_summary, inspect_dataset
from sparkdl.synth import synthesize_cohort
from tests.helpers import TEST_KEY

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, spark: Any) -> Iterator[Path]:
    from sparkdl.ingestion.job import ingest

    base = tmp_path_factory.mktemp("inspect")
    cohort = synthesize_cohort(base / "cohort", num_patients=2, seed=1, image_size=64)
    previous = os.environ.get("SPARKDL_DEID_KEY")
    os.environ["SPARKDL_DEID_KEY"] = TEST_KEY
    try:
        ingest(
            [str(cohort.dicom_dir)],
            str(base / "out"),
            spark=spark,
            labels=Labels(annotations=str(cohort.annotations_csv)),
        )
    finally:
        if previous is None:
            os.environ.pop("SPARKDL_DEID_KEY", None)
        else:
            os.environ["SPARKDL_DEID_KEY"] = previous
    yield base / "out"


@pytest.fixture(scope="module")
def summary(dataset: Path) -> dict[str, Any]:
    return inspect_dataset(str(dataset))


def _table(folder: Path, columns: list[str]) -> pd.DataFrame:
    return pd.read_parquet(folder, columns=columns)


def _copy_without(dataset: Path, target: Path, tables: list[str]) -> Path:
    """A copy of the dataset as an ingest without those tables would have written it."""
    shutil.copytree(dataset, target, ignore=shutil.ignore_patterns("inspect.png", *tables))
    manifest = json.loads((target / "manifest.json").read_text())
    for name in tables:
        manifest["counts"][name] = 0
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_counts_agree_with_manifest_and_tables(dataset: Path, summary: dict[str, Any]) -> None:
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert summary["checks"] == []
    assert summary["manifest"]["counts"] == manifest["counts"]
    assert summary["catalog"]["instances"] == manifest["counts"]["cataloged"]
    assert summary["volumes"]["count"] == manifest["counts"]["volumes"] > 0
    assert summary["patches"]["count"] == manifest["counts"]["patches"] > 0
    assert summary["patches"]["by_split_label"] == manifest["patches"]["by_split_label"]

    catalog = _table(dataset / "catalog", ["Modality", "volume_status"])
    assert summary["catalog"]["by_modality"] == dict(Counter(catalog["Modality"]))
    assert summary["catalog"]["by_volume_outcome"]["volume"] == int(
        (catalog["volume_status"] == "volume").sum()
    )

    patches = _table(dataset / "patches", ["label", "malignancy", "source"])
    assert summary["patches"]["by_label"] == {
        str(k): v for k, v in Counter(patches["label"]).items()
    }
    assert summary["patches"]["by_malignancy"] == {
        str(k): v for k, v in Counter(patches["malignancy"]).items()
    }
    assert summary["patches"]["by_source"] == dict(Counter(patches["source"]))
    assert sum(sum(row.values()) for row in summary["patches"]["by_split"].values()) == len(patches)

    volumes = _table(dataset / "volumes", ["num_slices", "warnings"])
    histograms = ("shape_zyx", "num_slices", "slice_spacing_mm", "pixel_spacing_mm")
    for name in histograms:
        assert sum(summary["volumes"][name].values()) == len(volumes), name
    codes = Counter(w["code"] for cell in volumes["warnings"] for w in json.loads(cell))
    assert {k: v["occurrences"] for k, v in summary["volumes"]["warnings"].items()} == dict(codes)
    assert all("?" not in shape for shape in summary["volumes"]["shape_zyx"])
    assert sorted(
        int(s.split("x")[0])
        for s in summary["volumes"]["shape_zyx"]
        for _ in range(summary["volumes"]["shape_zyx"][s])
    ) == sorted(volumes["num_slices"])
    json.dumps(summary)  # JSON-able


def test_sheet_is_a_png_with_marks_on_nodules(dataset: Path, summary: dict[str, Any]) -> None:
    sheet = summary["sheet"]
    png = Path(sheet["path"])
    assert png == dataset / "inspect.png"
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert 10_000 < len(data) < 5_000_000
    from matplotlib.image import imread

    height, width = imread(png).shape[:2]
    assert width >= 600 and height >= 200

    patches = [p for p in sheet["panels"] if p["kind"] == "patch"]
    assert {p["label"] for p in patches} == {0, 1}
    assert len(patches) == 6
    volumes = [p for p in sheet["panels"] if p["kind"] == "volume"]
    assert volumes and len({p["volume_id"] for p in volumes}) == len(volumes)
    for panel in patches + volumes:
        rows, columns = panel["image_shape"]
        x, y = panel["marker_xy"]
        assert 0 <= x <= columns - 1 and 0 <= y <= rows - 1
    for panel in volumes:
        # world → voxel put the mark on the nodule: nodule tissue, far denser than lung (-850).
        assert panel["plane"] == "axial"
        assert panel["hu_at_marker"] > -700, panel


def test_format_summary_names_the_counts(summary: dict[str, Any]) -> None:
    text = format_summary(summary)
    assert f"catalog: {summary['catalog']['instances']} instances" in text
    assert f"volumes: {summary['volumes']['count']} from" in text
    assert f"patches: {summary['patches']['count']} from" in text
    assert "CT Image Storage" in text and "inspect.png" in text
    assert "WARNING" not in text


def test_custom_png_path_and_max_items(dataset: Path, tmp_path: Path) -> None:
    target = tmp_path / "sheet.png"
    result = inspect_dataset(str(dataset), report_png=str(target), max_items=2)
    assert target.read_bytes()[:8] == PNG_SIGNATURE
    kinds = Counter(p["kind"] for p in result["sheet"]["panels"])
    assert kinds["patch"] == 2 and 1 <= kinds["volume"] <= 2


def test_without_patches_draws_volume_slices(dataset: Path, tmp_path: Path) -> None:
    copy = _copy_without(dataset, tmp_path / "out", ["patches"])
    result = inspect_dataset(str(copy))
    assert result["patches"]["present"] is False and result["patches"]["count"] == 0
    assert result["checks"] == []
    panels = result["sheet"]["panels"]
    assert panels and all(p["kind"] == "volume" and p["marker_xy"] is None for p in panels)
    assert (copy / "inspect.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "patches: none" in format_summary(result)


def test_without_volumes_draws_nothing(dataset: Path, tmp_path: Path) -> None:
    copy = _copy_without(dataset, tmp_path / "out", ["patches", "volumes"])
    result = inspect_dataset(str(copy))
    assert result["volumes"] == {**result["volumes"], "present": False, "count": 0}
    assert result["sheet"] is None and not (copy / "inspect.png").exists()
    assert result["catalog"]["instances"] > 0
    text = format_summary(result)
    assert "volumes: none" in text and "nothing to draw" in text


def test_manifest_disagreeing_with_tables_is_reported(dataset: Path, tmp_path: Path) -> None:
    copy = _copy_without(dataset, tmp_path / "out", [])
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["counts"]["volumes"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = inspect_dataset(str(copy), max_items=0)
    assert [c["count"] for c in result["checks"]] == ["volumes"]
    assert "WARNING: manifest says volumes=" in format_summary(result)


def test_not_a_dataset_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "catalog").mkdir()
    with pytest.raises(InputError, match=r"no manifest\.json.*sparkdl ingest --output"):
        inspect_dataset(str(tmp_path))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        inspect_dataset(str(tmp_path))
    assert not (tmp_path / "inspect.png").exists()


def test_histograms_sort_numbers_as_numbers_and_stay_short() -> None:
    from collections import Counter

    from sparkdl.inspection import _counts, _lines

    shapes = Counter({"238x128x128": 1, "53x128x128": 2, "107x128x128": 1})
    assert list(_counts(shapes)) == ["53x128x128", "107x128x128", "238x128x128"]
    many = {f"{n}x64x64": n for n in range(1, 21)}
    lines = _lines("shape", many)
    assert len(lines) == 1 + 8 + 1 and lines[-1].endswith("12 more (--json lists all)")
    assert "20x64x64" in lines[8] and "1x64x64" not in "\n".join(lines)
