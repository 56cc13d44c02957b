"""Patches: exact centring in world space, lung negatives, patient splits, LUNA16 CSVs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sparkdl import geometry
from sparkdl.assembly.series import AssembledVolume
from sparkdl.errors import ConfigError, InputError
from sparkdl.geometry import Geometry
from sparkdl.patches.extract import (
    PatchOptions,
    assign_split,
    extract_patch,
    lung_mask,
    make_patch_rows,
    sample_negatives,
    series_rng,
)
from sparkdl.patches.points import points_from_frame, read_points_csv
from sparkdl.store.tables import patch_schema

KEY = b"test-key-0123456789abcdef0123456789abcdef"
DIRECTION = geometry.direction_from_iop(
    [0.9396926, 0.3420201, 0.0, -0.0593912, 0.1631759, -0.9848078]
).reshape(9)
SPACING = np.array([1.25, 0.7, 0.8])
ORIGIN = np.array([-30.0, 12.0, -250.0])
GRID = Geometry(SPACING, ORIGIN, DIRECTION)


def field_volume(
    shape: tuple[int, int, int],
    fn: Any,
    direction: np.ndarray = DIRECTION,
    spacing: np.ndarray = SPACING,
    origin: np.ndarray = ORIGIN,
) -> np.ndarray:
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = geometry.voxel_to_world(index, origin, spacing, direction)
    return np.rint(fn(world)).astype(np.int16)


def test_patch_centre_is_the_world_point() -> None:
    shape = (40, 60, 56)
    center = geometry.voxel_to_world([17.3, 31.6, 25.2], ORIGIN, SPACING, DIRECTION)
    volume = field_volume(
        shape, lambda w: np.where(np.linalg.norm(w - center, axis=-1) <= 4.0, 300, -900)
    )
    patch = extract_patch(volume, GRID, center, 32, 1.0)
    assert patch.shape == (32, 32, 32) and patch.dtype == np.int16
    assert np.all(patch[15:17, 15:17, 15:17] == 300)
    assert patch[0, 0, 0] == -900
    # symmetric about the centre, up to the voxelisation of the ball in the volume
    ball = patch > -300
    centroid = np.argwhere(ball).mean(axis=0)
    np.testing.assert_allclose(centroid, [15.5, 15.5, 15.5], atol=0.35)


@pytest.mark.parametrize("size, spacing_mm", [(32, 1.0), (9, 0.6)])
def test_patch_samples_a_linear_field_exactly(size: int, spacing_mm: float) -> None:
    gradient = np.array([7.0, -11.0, 13.0])
    center = geometry.voxel_to_world([19.5, 28.2, 27.7], ORIGIN, SPACING, DIRECTION)
    volume = field_volume((40, 60, 56), lambda w: (w - center) @ gradient)
    patch = extract_patch(volume, GRID, center, size, spacing_mm)
    index = np.argwhere(np.ones(patch.shape, dtype=bool))
    offset_xyz = (index[:, ::-1] - (size - 1) / 2) * spacing_mm
    world = center + offset_xyz @ DIRECTION.reshape(3, 3).T
    expected = (world - center) @ gradient
    assert np.abs(patch.reshape(-1) - expected).max() <= 1.0
    if size % 2:
        assert patch[size // 2, size // 2, size // 2] == 0


def test_patch_outside_the_volume_is_padded() -> None:
    volume = np.zeros((10, 10, 10), dtype=np.int16)
    far = geometry.voxel_to_world([-100, 5, 5], ORIGIN, SPACING, DIRECTION)
    assert np.all(extract_patch(volume, GRID, far, 8, 1.0) == -1000)
    edge = geometry.voxel_to_world([0, 5, 5], ORIGIN, SPACING, DIRECTION)
    patch = extract_patch(volume, GRID, edge, 8, 1.0, pad_hu=-1024)
    assert set(np.unique(patch)) == {-1024, 0}


def chest(shape: tuple[int, int, int] = (36, 80, 96)) -> tuple[np.ndarray, list[Any]]:
    """Air around a soft-tissue body holding two lungs, with two nodules in the lungs."""
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    volume = np.full(shape, -1000, dtype=np.int16)
    body = ((y - 40) / 34.0) ** 2 + ((x - 48) / 44.0) ** 2 <= 1
    volume[body] = 40
    for cx in (28, 68):
        volume[body & (((y - 40) / 24.0) ** 2 + ((x - cx) / 15.0) ** 2 <= 1)] = -850
    spacing, origin, direction = (
        np.array([2.0, 0.9, 0.9]),
        np.array([-40.0, -30.0, -60.0]),
        np.eye(3).reshape(9),
    )
    nodules = []
    for zyx, radius in (((18, 40, 28), 4.0), ((10, 30, 68), 6.0)):
        world = geometry.voxel_to_world(zyx, origin, spacing, direction)
        index = np.stack([z, y, x], axis=-1)
        inside = (
            np.linalg.norm(
                geometry.voxel_to_world(index, origin, spacing, direction) - world, axis=-1
            )
            <= radius
        )
        volume[inside] = 30
        nodules.append((tuple(world), radius))
    return volume, [spacing, origin, direction, nodules]


def test_negatives_are_in_the_lungs_and_away_from_nodules() -> None:
    volume, (spacing, origin, direction, nodules) = chest()
    mask = lung_mask(volume, spacing)
    assert mask.any() and not mask[:, 0, :].any() and not np.any(volume[mask] > -400)
    grid = Geometry(spacing, origin, direction)
    points = sample_negatives(volume, grid, nodules, 40, np.random.default_rng(0), margin_mm=10.0)
    assert len(points) == 40 and len(set(points)) == 40
    for point in points:
        index = np.rint(geometry.world_to_voxel(point, origin, spacing, direction)).astype(int)
        assert volume[tuple(index)] == -850  # lung, not the air around the body
        for center, radius in nodules:
            assert np.linalg.norm(np.subtract(point, center)) > radius + 10.0
    again = sample_negatives(volume, grid, nodules, 40, np.random.default_rng(0), margin_mm=10.0)
    assert again == points
    assert (
        sample_negatives(np.full((4, 20, 20), 40, np.int16), grid, [], 5, np.random.default_rng(0))
        == []
    )


def test_split_is_one_per_patient_with_configured_proportions() -> None:
    patients = [f"pseudo-{i}" for i in range(200)]
    splits = [assign_split(KEY, p, (0.7, 0.15, 0.15)) for p in patients]
    assert splits == [assign_split(KEY, p, (0.7, 0.15, 0.15)) for p in patients]
    counts = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert abs(counts["train"] - 0.7) < 0.1
    assert abs(counts["val"] - 0.15) < 0.08 and abs(counts["test"] - 0.15) < 0.08
    other_key = [assign_split(b"another key", p, (0.7, 0.15, 0.15)) for p in patients]
    assert other_key != splits
    assert {assign_split(KEY, p, (0.0, 0.0, 1.0)) for p in patients} == {"test"}
    with pytest.raises(ConfigError):
        assign_split(KEY, "p", (0.5, 0.5, 0.5))


def _volume(patient: str, series: str) -> AssembledVolume:
    volume, (spacing, origin, direction, _) = chest()
    return AssembledVolume(
        volume_id=series + ".0",
        series_uid=series,
        study_uid="2.25.3",
        patient_id=patient,
        volume=volume,
        spacing=spacing,
        origin=origin,
        direction=direction,
    )


def test_patch_rows_fit_the_schema_and_skip_outside_points() -> None:
    volume = _volume("pseudo-1", "2.25.11")
    _, (_, _, _, nodules) = chest()
    options = PatchOptions(size=16)
    points = [
        {
            "center_xyz": nodules[0][0],
            "label": 1,
            "malignancy": 1,
            "diameter_mm": 8.0,
            "source": "annotation",
        },
        {"center_xyz": nodules[0][0], "label": 1, "source": "annotation"},  # repeated
        {"center_xyz": (500.0, 0.0, 0.0), "label": 1, "source": "annotation"},
        {
            "center_xyz": nodules[1][0],
            "label": 0,
            "source": "candidate",
            "malignancy": None,
            "diameter_mm": float("nan"),
        },
    ]
    rows, skipped = make_patch_rows(volume, points, options, KEY)
    assert skipped == 1 and len(rows) == 3
    schema = patch_schema(16)
    for row in rows:
        schema.encode_row(row)
    assert len({r["patch_id"] for r in rows}) == 3
    assert [r["patch_id"] for r in make_patch_rows(volume, points, options, KEY)[0]] == [
        r["patch_id"] for r in rows
    ]
    assert rows[0]["malignancy"] == 1 and rows[1]["malignancy"] == -1
    assert rows[1]["diameter_mm"] == -1.0 and rows[2]["diameter_mm"] == -1.0
    assert {r["split"] for r in rows} == {assign_split(KEY, "pseudo-1", options.fractions)}
    assert rows[0]["patch"][8, 8, 8] == 30  # the nodule
    # the same patient in another series lands in the same split
    other, _ = make_patch_rows(_volume("pseudo-1", "2.25.12").to_row(), points[:1], options, KEY)
    assert other[0]["split"] == rows[0]["split"]
    with pytest.raises(InputError, match="label"):
        make_patch_rows(volume, [{**points[0], "label": 2}], options, KEY)


def test_read_luna16_csvs() -> None:
    annotations = read_points_csv(
        io.StringIO(
            "seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,-10.5,20,-300.25,6.1\n"
            "1.2.4,1,2,3,4\n"
        ),
        "annotations",
    )
    assert annotations["malignancy"].tolist() == [-1, -1]
    assert annotations["seriesuid"].tolist() == ["1.2.3", "1.2.4"]
    points = points_from_frame(annotations, "annotations")
    assert points[0] == {
        "center_xyz": (-10.5, 20.0, -300.25),
        "label": 1,
        "source": "annotation",
        "malignancy": -1,
        "diameter_mm": 6.1,
        "sources": ("annotations",),
    }
    candidates = read_points_csv(
        io.StringIO("seriesuid,coordX,coordY,coordZ,class\n1.2.3,1,2,3,0\n1.2.3,4,5,6,1\n"),
        "candidates",
    )
    assert [p["label"] for p in points_from_frame(candidates, "candidates")] == [0, 1]
    with pytest.raises(InputError, match=r"lacks column\(s\) \['diameter_mm'\]"):
        read_points_csv(io.StringIO("seriesuid,coordX,coordY,coordZ\n1,2,3,4\n"), "annotations")
    with pytest.raises(InputError, match="coordY"):
        read_points_csv(
            io.StringIO("seriesuid,coordX,coordY,coordZ,class\n1,2,x,4,0\n"), "candidates"
        )
    with pytest.raises(InputError, match="not found"):
        read_points_csv("/nonexistent/annotations.csv", "annotations")


def test_read_points_csv_from_a_path_or_uri(tmp_path: Path) -> None:
    path = tmp_path / "candidates.csv"
    path.write_text("seriesuid,coordX,coordY,coordZ,class\n1.2.3,1,2,3,1\n")
    for source in (path, str(path), path.as_uri()):
        frame = read_points_csv(source, "candidates")
        assert frame["seriesuid"].tolist() == ["1.2.3"] and frame["class"].tolist() == [1]


def test_patch_options_validate_and_load() -> None:
    assert PatchOptions.from_mapping({"size": 48, "spacing_mm": 0.75}).size == 48
    with pytest.raises(ConfigError, match="fraction"):
        PatchOptions(train_fraction=0.8)
    with pytest.raises(ConfigError, match="sizes"):
        PatchOptions.from_mapping({"sizes": 3})
    with pytest.raises(ConfigError, match="spacing_mm"):
        PatchOptions(spacing_mm=0)
    with pytest.raises(ConfigError, match="spacing_mm"):
        PatchOptions(spacing_mm=float("nan"))


def test_series_rng_is_deterministic() -> None:
    assert series_rng("2.25.1").integers(1 << 30) == series_rng("2.25.1").integers(1 << 30)
    assert series_rng("2.25.1").integers(1 << 30) != series_rng("2.25.2").integers(1 << 30)
