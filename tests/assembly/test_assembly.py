"""Series assembly on pydicom's real CT files and on synthetic series with known geometry."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

from sparkdl import geometry
from sparkdl.assembly.series import AssemblyResult, VolumeOptions, assemble_series
from sparkdl.errors import ConfigError
from sparkdl.store.tables import VolumeSchema

DICOMDIR_TESTS = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests"
BALL_CENTER = np.array([12.3, -40.7, 101.9])
BALL_RADIUS = 6.0
BALL_HU, BACKGROUND_HU = 400, -800
SMALL = VolumeOptions(min_slices=4)


def record_from_file(path: Path) -> dict[str, Any]:
    ds = pydicom.dcmread(path)

    def floats(keyword: str) -> list[float] | None:
        value = ds.get(keyword)
        return None if value is None else [float(v) for v in value]

    return {
        "sop_uid": ds.SOPInstanceUID,
        "series_uid": ds.SeriesInstanceUID,
        "study_uid": ds.StudyInstanceUID,
        "patient_id": "pseudo-1",
        "frame_of_reference_uid": ds.get("FrameOfReferenceUID"),
        "ImagePositionPatient": floats("ImagePositionPatient"),
        "ImageOrientationPatient": floats("ImageOrientationPatient"),
        "PixelSpacing": floats("PixelSpacing"),
        "Rows": ds.Rows,
        "Columns": ds.Columns,
        "RescaleSlope": ds.get("RescaleSlope"),
        "RescaleIntercept": ds.get("RescaleIntercept"),
        "ImageType": list(ds.get("ImageType") or []),
        "SliceThickness": ds.get("SliceThickness"),
        "AcquisitionNumber": ds.get("AcquisitionNumber"),
        "InstanceNumber": ds.get("InstanceNumber"),
        "GantryDetectorTilt": ds.get("GantryDetectorTilt"),
        "NumberOfFrames": ds.get("NumberOfFrames"),
        "pixels": ds.pixel_array,
        "_hu": apply_modality_lut(ds.pixel_array, ds),
    }


def ball(world: np.ndarray) -> np.ndarray:
    inside = np.linalg.norm(world - BALL_CENTER, axis=-1) <= BALL_RADIUS
    return np.where(inside, BALL_HU, BACKGROUND_HU).astype(np.float64)


GRADIENT = np.array([20.0, -30.0, 50.0])  # HU per mm: 0.05 mm off shows as >= 1 HU
#: Stored values are rounded once on the way in and HU once on the way out.
LINEAR_TOLERANCE_HU = 1.0


def linear(world: np.ndarray) -> np.ndarray:
    """A field linear in world mm: linear interpolation reproduces it exactly."""
    return 1500.0 + (world - BALL_CENTER) @ GRADIENT  # > -1024 within the test grids


def make_series(
    ipps: Sequence[np.ndarray],
    row: Sequence[float],
    col: Sequence[float],
    *,
    phantom: Callable[[np.ndarray], np.ndarray] = ball,
    shape: tuple[int, int] = (40, 44),
    pixel_spacing: tuple[float, float] = (0.8, 0.7),
    slope: float = 1.0,
    intercept: float = -1024.0,
    dtype: type = np.uint16,
    series: str = "2.25.1",
    **extra: Any,
) -> list[dict[str, Any]]:
    """One record per IPP, pixels sampled from ``phantom`` at each pixel's world position."""
    row_v, col_v = np.asarray(row, float), np.asarray(col, float)
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    records = []
    for k, ipp in enumerate(ipps):
        world = (
            np.asarray(ipp)[None, None, :]
            + (jj * pixel_spacing[1])[..., None] * row_v
            + (ii * pixel_spacing[0])[..., None] * col_v
        )
        stored = np.rint((phantom(world) - intercept) / slope).astype(dtype)
        records.append(
            {
                "sop_uid": f"{series}.{k}",
                "series_uid": series,
                "study_uid": "2.25.9",
                "patient_id": "pseudo-7",
                "frame_of_reference_uid": "2.25.5",
                "ImagePositionPatient": [float(v) for v in ipp],
                "ImageOrientationPatient": [*map(float, row), *map(float, col)],
                "PixelSpacing": list(pixel_spacing),
                "Rows": shape[0],
                "Columns": shape[1],
                "RescaleSlope": slope,
                "RescaleIntercept": intercept,
                "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
                "SliceThickness": 1.5,
                "AcquisitionNumber": 1,
                "InstanceNumber": k + 1,
                "GantryDetectorTilt": None,
                "NumberOfFrames": None,
                "pixels": stored,
                **extra,
            }
        )
    return records


def stack_ipps(
    row: Sequence[float],
    col: Sequence[float],
    positions: Sequence[float],
    shape: tuple[int, int] = (40, 44),
    pixel_spacing: tuple[float, float] = (0.8, 0.7),
) -> list[np.ndarray]:
    """IPPs of slices at ``positions`` (mm along the normal) with the ball near the middle."""
    row_v, col_v = np.asarray(row, float), np.asarray(col, float)
    normal = np.cross(row_v, col_v)
    corner = (
        BALL_CENTER
        - (shape[1] / 2 - 0.3) * pixel_spacing[1] * row_v
        - (shape[0] / 2 + 0.4) * pixel_spacing[0] * col_v
    )
    return [corner + p * normal for p in positions]


def ball_centroid_world(result: AssemblyResult) -> np.ndarray:
    (volume,) = result.volumes
    index = np.argwhere(volume.volume > (BALL_HU + BACKGROUND_HU) / 2)
    return geometry.voxel_to_world(
        index.mean(axis=0), volume.origin, volume.spacing, volume.direction
    )


def assert_every_instance_has_an_outcome(
    records: list[dict[str, Any]], result: AssemblyResult
) -> None:
    assert set(result.instances) == {r["sop_uid"] for r in records}
    for volume in result.volumes:
        assert all(result.instances[s].volume_id == volume.volume_id for s in volume.sop_uids)


def codes(result: AssemblyResult) -> list[str]:
    return [w["code"] for v in result.volumes for w in v.warnings]


def reasons(result: AssemblyResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in result.instances.values():
        if outcome.reason:
            counts[outcome.reason] = counts.get(outcome.reason, 0) + 1
    return counts


ROTATION = geometry.direction_from_iop(
    [0.9396926, 0.3420201, 0.0, -0.0593912, 0.1631759, -0.9848078]
)
ORIENTATIONS = {
    "head_first": ([1, 0, 0], [0, 1, 0]),
    "feet_first": ([-1, 0, 0], [0, 1, 0]),
    "oblique": (ROTATION[:, 0].tolist(), ROTATION[:, 1].tolist()),
}


# ---------------------------------------------------------------- real DICOM written by others


def test_ct5n_slices_follow_the_normal_not_instance_number() -> None:
    records = [record_from_file(p) for p in sorted((DICOMDIR_TESTS / "98892001/CT5N").iterdir())]
    numbers = [r["InstanceNumber"] for r in sorted(records, key=lambda r: r["InstanceNumber"])]
    z = [r["ImagePositionPatient"][2] for r in sorted(records, key=lambda r: r["InstanceNumber"])]
    assert numbers == sorted(numbers) and z == sorted(z, reverse=True)  # the premise
    result = assemble_series(records[::-1], VolumeOptions(min_slices=5))
    assert_every_instance_has_an_outcome(records, result)
    (volume,) = result.volumes
    by_position = sorted(records, key=lambda r: r["ImagePositionPatient"][2])
    assert volume.sop_uids == [r["sop_uid"] for r in by_position]
    for k, record in enumerate(by_position):
        np.testing.assert_array_equal(volume.volume[k], record["_hu"].astype(np.int16))
        np.testing.assert_array_equal(volume.volume[k].astype(float), record["_hu"])
        np.testing.assert_allclose(
            geometry.voxel_to_world([k, 0, 0], volume.origin, volume.spacing, volume.direction),
            record["ImagePositionPatient"],
            atol=1e-4,
        )
    np.testing.assert_allclose(volume.spacing, [2.5, 0.488281, 0.488281])
    assert volume.warnings == []
    row = volume.to_row()
    VolumeSchema.encode_row(row)  # the row satisfies the schema's codecs
    assert row["num_slices"] == 5 and json.loads(row["warnings"]) == []


def test_ct2_with_a_large_gap_is_not_stacked() -> None:
    records = [record_from_file(p) for p in sorted((DICOMDIR_TESTS / "77654033/CT2").iterdir())]
    result = assemble_series(records, SMALL)
    assert_every_instance_has_an_outcome(records, result)
    assert result.volumes == []
    assert reasons(result) == {"missing_slices": 4}
    assert "162.0×" in result.instances[records[0]["sop_uid"]].detail


# ---------------------------------------------------------------- synthetic geometry


@pytest.mark.parametrize("name", sorted(ORIENTATIONS))
@pytest.mark.parametrize(
    "slope, intercept, dtype",
    [(1.0, -1024.0, np.uint16), (2.0, -1024.0, np.uint16), (1.0, 0.0, np.int16)],
)
def test_ball_lands_at_its_world_position(
    name: str, slope: float, intercept: float, dtype: type
) -> None:
    row, col = ORIENTATIONS[name]
    records = make_series(
        stack_ipps(row, col, np.arange(-12, 12.1, 1.5) + 0.3),
        row,
        col,
        slope=slope,
        intercept=intercept,
        dtype=dtype,
    )
    for k, record in enumerate(records):
        record["InstanceNumber"] = len(records) - k  # reversed on purpose
    shuffled = [records[i] for i in np.random.default_rng(3).permutation(len(records))]
    result = assemble_series(shuffled, SMALL)
    assert_every_instance_has_an_outcome(records, result)
    (volume,) = result.volumes
    assert volume.volume.dtype == np.int16 and volume.warnings == []
    assert volume.sop_uids == [r["sop_uid"] for r in records]
    np.testing.assert_allclose(volume.spacing, [1.5, 0.8, 0.7])
    assert np.linalg.det(volume.direction.reshape(3, 3)) == pytest.approx(1.0)
    index = np.rint(
        geometry.world_to_voxel(BALL_CENTER, volume.origin, volume.spacing, volume.direction)
    ).astype(int)
    assert volume.volume[tuple(index)] == BALL_HU
    np.testing.assert_allclose(ball_centroid_world(result), BALL_CENTER, atol=0.3)
    if name == "feet_first":
        assert volume.direction[8] == -1.0  # slice axis runs towards the feet


def test_gantry_tilt_is_resampled_to_true_world_positions() -> None:
    tilt = np.radians(15.0)
    row, col = [1.0, 0.0, 0.0], [0.0, np.cos(tilt), np.sin(tilt)]
    base = stack_ipps(row, col, [0.0])[0] - np.array([0, 0, 12.0])
    ipps = [base + np.array([0.0, 0.0, 1.5 * k]) for k in range(17)]  # table moves along z
    for phantom in (ball, linear):
        records = make_series(ipps, row, col, phantom=phantom, GantryDetectorTilt=15.0)
        result = assemble_series(records, SMALL)
        assert_every_instance_has_an_outcome(records, result)
        (volume,) = result.volumes
        assert "resampled_gantry_tilt" in codes(result)
        np.testing.assert_allclose(volume.spacing, [1.5 * np.cos(tilt), 0.8, 0.7])
        np.testing.assert_allclose(
            volume.direction.reshape(3, 3)[:, 2], [0, -np.sin(tilt), np.cos(tilt)], atol=1e-7
        )
        if phantom is ball:
            np.testing.assert_allclose(ball_centroid_world(result), BALL_CENTER, atol=0.3)
        else:
            index = np.argwhere(volume.volume != -1000)  # inside every slice's field of view
            world = geometry.voxel_to_world(index, volume.origin, volume.spacing, volume.direction)
            expected = linear(world)
            assert len(index) > 0.6 * volume.volume.size
            assert np.abs(volume.volume[tuple(index.T)] - expected).max() <= LINEAR_TOLERANCE_HU
    excluded = assemble_series(records, VolumeOptions(min_slices=4, on_tilt="exclude"))
    assert excluded.volumes == [] and reasons(excluded) == {"gantry_tilt": 17}


def test_in_plane_shift_without_tilted_orientation_is_tilt_too() -> None:
    row, col = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    ipps = [
        p + np.array([0.0, 0.4 * k, 0.0])
        for k, p in enumerate(stack_ipps(row, col, np.arange(-12, 12.1, 1.5)))
    ]
    records = make_series(ipps, row, col, phantom=linear)
    result = assemble_series(records, SMALL)
    (volume,) = result.volumes
    assert codes(result) == ["resampled_gantry_tilt"]
    index = np.argwhere(volume.volume != -1000)
    world = geometry.voxel_to_world(index, volume.origin, volume.spacing, volume.direction)
    assert np.abs(volume.volume[tuple(index.T)] - linear(world)).max() <= LINEAR_TOLERANCE_HU


def test_uneven_spacing_is_resampled_at_the_median_spacing() -> None:
    name = "oblique"
    row, col = ORIENTATIONS[name]
    positions = (
        np.cumsum(
            [
                0,
                1.0,
                1.0,
                1.5,
                1.0,
                2.0,
                1.0,
                1.0,
                1.5,
                1.0,
                1.0,
                1.0,
                1.5,
                1.0,
                1.0,
                1.0,
                1.0,
                1.0,
                1.0,
                1.5,
                1.0,
            ]
        )
        - 12.0
    )
    for phantom in (ball, linear):
        records = make_series(stack_ipps(row, col, positions), row, col, phantom=phantom)
        result = assemble_series(records, SMALL)
        assert_every_instance_has_an_outcome(records, result)
        (volume,) = result.volumes
        assert codes(result) == ["resampled_uneven_spacing"]
        assert volume.spacing[0] == pytest.approx(1.0)
        assert volume.volume.shape[0] == int(positions[-1] - positions[0]) + 1
        np.testing.assert_allclose(volume.origin, records[0]["ImagePositionPatient"])
        if phantom is ball:
            np.testing.assert_allclose(ball_centroid_world(result), BALL_CENTER, atol=0.3)
        else:
            index = np.argwhere(np.ones(volume.volume.shape, dtype=bool))
            world = geometry.voxel_to_world(index, volume.origin, volume.spacing, volume.direction)
            assert np.abs(volume.volume.reshape(-1) - linear(world)).max() <= LINEAR_TOLERANCE_HU
    excluded = assemble_series(records, VolumeOptions(min_slices=4, on_uneven="exclude"))
    assert reasons(excluded) == {"uneven_spacing": len(records)}


def test_a_gap_beyond_max_gap_slices_is_missing_slices() -> None:
    row, col = ORIENTATIONS["head_first"]
    positions = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11]  # two slices missing
    records = make_series(stack_ipps(row, col, positions), row, col)
    assert reasons(assemble_series(records, SMALL)) == {"missing_slices": 10}
    result = assemble_series(records, VolumeOptions(min_slices=4, max_gap_slices=3.5))
    assert codes(result) == ["resampled_uneven_spacing"]


# ---------------------------------------------------------------- exclusions and splits


def _axial(count: int = 10, **kwargs: Any) -> list[dict[str, Any]]:
    row, col = ORIENTATIONS["head_first"]
    return make_series(stack_ipps(row, col, np.arange(count) * 1.5 - 7), row, col, **kwargs)


def test_duplicate_with_identical_pixels_is_dropped_with_a_warning() -> None:
    records = _axial()
    records.append({**records[4], "sop_uid": "2.25.1.dup"})
    result = assemble_series(records, SMALL)
    assert_every_instance_has_an_outcome(records, result)
    assert codes(result) == ["dropped_duplicate_slices"]
    assert result.volumes[0].volume.shape[0] == 10
    assert result.instances["2.25.1.dup"].reason == "duplicate_instance"


def test_different_pixels_at_one_position_exclude_the_series() -> None:
    records = _axial()
    records.append({**records[4], "sop_uid": "2.25.1.other", "pixels": records[4]["pixels"] + 1})
    result = assemble_series(records, SMALL)
    assert_every_instance_has_an_outcome(records, result)
    assert result.volumes == [] and reasons(result) == {"duplicate_positions": 11}


def test_two_acquisitions_at_the_same_positions_become_two_volumes() -> None:
    first = _axial(AcquisitionNumber=1)
    second = _axial(AcquisitionNumber=2, phantom=lambda w: ball(w) + 100)  # other HU
    for record in second:
        record["sop_uid"] += ".b"
    result = assemble_series(first + second, SMALL)
    assert_every_instance_has_an_outcome(first + second, result)
    assert len(result.volumes) == 2
    assert codes(result) == ["split_by_acquisition", "split_by_acquisition"]
    assert [v.volume_id for v in result.volumes] == ["2.25.1.0", "2.25.1.1"]


def test_unusable_instances_are_excluded_with_their_reason() -> None:
    records = _axial()
    records[0] = {**records[0], "ImagePositionPatient": None}
    records[1] = {**records[1], "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}
    records[2] = {**records[2], "NumberOfFrames": 3}
    records[3] = {**records[3], "pixels": records[3]["pixels"][:-1]}
    result = assemble_series(records, SMALL)
    assert_every_instance_has_an_outcome(records, result)
    assert reasons(result) == {
        "missing_geometry": 1,
        "localizer": 1,
        "multiframe_unsupported": 1,
        "invalid_pixels": 1,
    }
    assert result.volumes[0].volume.shape[0] == 6


def test_too_few_slices() -> None:
    records = _axial(count=5)
    result = assemble_series(records)  # default min_slices
    assert result.volumes == [] and reasons(result) == {"too_few_slices": 5}


def test_mixed_sizes_become_separate_volumes_with_warnings() -> None:
    big = _axial(count=8)
    small = _axial(count=6, shape=(32, 32))
    for record in small:
        record["sop_uid"] += ".s"
    records = big + small
    result = assemble_series(records[::-1], SMALL)
    assert_every_instance_has_an_outcome(records, result)
    assert [v.volume.shape for v in result.volumes] == [(8, 40, 44), (6, 32, 32)]
    assert codes(result) == ["split_mixed_geometry", "split_mixed_geometry"]
    again = assemble_series(records, SMALL)
    assert [v.volume_id for v in again.volumes] == [v.volume_id for v in result.volumes]


def test_tilt_tag_without_sheared_slices_is_used_as_is() -> None:
    result = assemble_series(_axial(GantryDetectorTilt=-12.0), SMALL)
    assert codes(result) == ["gantry_tilt_tag"]


def test_hu_outside_int16_is_clipped_and_counted() -> None:
    records = _axial(
        slope=100.0, intercept=0.0, dtype=np.int16, phantom=lambda w: np.full(w.shape[:-1], 40000.0)
    )
    result = assemble_series(records, SMALL)
    assert codes(result) == ["hu_clipped"]
    assert int(result.volumes[0].volume.max()) == 32767


def test_a_stored_volume_batch_holds_the_volume_as_from_pylist_would() -> None:
    """The volume stage wraps the encoded bytes without copying them (``_volume_batch``):
    the batch must equal the copying ``from_pylist`` and decode back to the volume."""
    import pyarrow as pa

    from sparkdl.ingestion import volume_stage

    volume = assemble_series(_axial(), SMALL).volumes[0]
    batch = volume_stage._volume_batch(volume.to_row())
    encoded = dict(zip(VolumeSchema.fields, VolumeSchema.encode_row(volume.to_row())))
    assert batch.equals(pa.RecordBatch.from_pylist([encoded], schema=batch.schema))
    stored = VolumeSchema.decode_row(batch.to_pylist()[0])
    np.testing.assert_array_equal(stored["volume"], volume.volume)


@pytest.mark.parametrize(
    "values, key",
    [
        ({"min_slices": 0}, "min_slices"),
        ({"on_tilt": "skip"}, "on_tilt"),
        ({"max_gap_slices": 0.5}, "max_gap_slices"),
        ({"max_gap_slices": float("nan")}, "max_gap_slices"),
        ({"spacing_tolerance": float("inf")}, "spacing_tolerance"),
        ({"min_slice": 3}, "min_slice"),
    ],
)
def test_volume_options_name_the_bad_key(values: Mapping[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        VolumeOptions.from_mapping(values)


def test_volume_options_from_mapping() -> None:
    options = VolumeOptions.from_mapping(
        {"min_slices": 4, "on_uneven": "exclude", "spacing_tolerance_mm": 0}
    )
    assert options == VolumeOptions(min_slices=4, on_uneven="exclude", spacing_tolerance_mm=0.0)


def test_same_hu_through_another_rescale_is_a_duplicate() -> None:
    records = _axial()
    twin = _axial(slope=2.0, intercept=-1024.0)[4]  # other stored values, same HU
    assert not np.array_equal(twin["pixels"], records[4]["pixels"])
    records.append({**twin, "sop_uid": "2.25.1.twin"})
    result = assemble_series(records, SMALL)
    assert result.instances["2.25.1.twin"].reason == "duplicate_instance"


def test_localizer_in_dicom_string_form_and_shuffled_instance_numbers() -> None:
    records = _axial()
    records[0] = {**records[0], "ImageType": "ORIGINAL\\PRIMARY\\LOCALIZER"}
    records[5]["InstanceNumber"], records[6]["InstanceNumber"] = 7, 6
    result = assemble_series(records, SMALL)
    assert reasons(result) == {"localizer": 1}
    assert codes(result) == ["instance_number_order"]
