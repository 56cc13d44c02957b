"""Geometry: HU against pydicom, normals, direction matrices and world ↔ voxel round trips."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut

from sparkdl import geometry
from sparkdl.assembly.series import VolumeOptions, assemble_series


def _rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_to_hounsfield_equals_pydicom_modality_lut() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    expected = apply_modality_lut(ds.pixel_array, ds)
    hu = geometry.to_hounsfield(ds.pixel_array, ds.RescaleSlope, ds.RescaleIntercept)
    assert hu.dtype == np.float64
    np.testing.assert_array_equal(hu, expected)


def test_ct_small_as_a_one_slice_volume_has_pydicom_hu() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    record = {
        "sop_uid": ds.SOPInstanceUID,
        "series_uid": ds.SeriesInstanceUID,
        "study_uid": ds.StudyInstanceUID,
        "patient_id": "p",
        "frame_of_reference_uid": ds.get("FrameOfReferenceUID"),
        "ImagePositionPatient": [float(v) for v in ds.ImagePositionPatient],
        "ImageOrientationPatient": [float(v) for v in ds.ImageOrientationPatient],
        "PixelSpacing": [float(v) for v in ds.PixelSpacing],
        "Rows": ds.Rows,
        "Columns": ds.Columns,
        "RescaleSlope": float(ds.RescaleSlope),
        "RescaleIntercept": float(ds.RescaleIntercept),
        "ImageType": list(ds.ImageType),
        "SliceThickness": float(ds.SliceThickness),
        "AcquisitionNumber": None,
        "InstanceNumber": None,
        "GantryDetectorTilt": None,
        "NumberOfFrames": None,
        "pixels": ds.pixel_array,
    }
    assert assemble_series([record]).instances[ds.SOPInstanceUID].reason == "too_few_slices"
    result = assemble_series([record], VolumeOptions(min_slices=1))
    (volume,) = result.volumes
    expected = apply_modality_lut(ds.pixel_array, ds)
    np.testing.assert_array_equal(volume.volume[0], expected.astype(np.int16))
    np.testing.assert_array_equal(volume.volume[0].astype(np.float64), expected)
    np.testing.assert_allclose(volume.origin, [float(v) for v in ds.ImagePositionPatient])
    assert volume.spacing[0] == float(ds.SliceThickness)
    assert [w["code"] for w in volume.warnings] == ["single_slice_spacing"]


@pytest.mark.parametrize(
    "iop, normal",
    [
        ([1, 0, 0, 0, 1, 0], [0, 0, 1]),  # axial, head first supine
        ([-1, 0, 0, 0, 1, 0], [0, 0, -1]),  # axial, feet first supine
        ([0, 1, 0, 0, 0, -1], [-1, 0, 0]),  # sagittal
        ([1, 0, 0, 0, 0, -1], [0, 1, 0]),  # coronal
    ],
)
def test_slice_normal_is_row_cross_column(iop: list[float], normal: list[float]) -> None:
    np.testing.assert_allclose(geometry.slice_normal(iop), normal, atol=1e-12)
    direction = geometry.direction_from_iop(iop)
    np.testing.assert_allclose(direction[:, 0], iop[:3])
    np.testing.assert_allclose(direction[:, 1], iop[3:])
    np.testing.assert_allclose(direction[:, 2], normal, atol=1e-12)
    assert np.linalg.det(direction) == pytest.approx(1.0)


def test_invalid_orientation_is_rejected() -> None:
    with pytest.raises(ValueError, match="orthogonal"):
        geometry.slice_normal([1, 0, 0, 1, 0, 0])
    with pytest.raises(ValueError, match="6 finite"):
        geometry.slice_normal([1, 0, 0])


def test_voxel_to_world_uses_each_axis_direction_and_spacing() -> None:
    direction = _rotation(1)
    origin = np.array([-120.5, 33.0, 871.25])
    spacing_zyx = np.array([2.5, 0.7, 0.6])
    x_axis, y_axis, z_axis = direction[:, 0], direction[:, 1], direction[:, 2]
    flat = direction.reshape(9)
    np.testing.assert_allclose(
        geometry.voxel_to_world([0, 0, 0], origin, spacing_zyx, flat), origin
    )
    np.testing.assert_allclose(
        geometry.voxel_to_world([0, 0, 1], origin, spacing_zyx, flat), origin + 0.6 * x_axis
    )
    np.testing.assert_allclose(
        geometry.voxel_to_world([0, 1, 0], origin, spacing_zyx, flat), origin + 0.7 * y_axis
    )
    np.testing.assert_allclose(
        geometry.voxel_to_world([3, 2, 5], origin, spacing_zyx, flat),
        origin + 7.5 * z_axis + 1.4 * y_axis + 3.0 * x_axis,
    )


def test_world_to_voxel_inverts_voxel_to_world() -> None:
    rng = np.random.default_rng(7)
    for seed in range(5):
        direction = _rotation(seed).reshape(9)
        origin = rng.uniform(-300, 300, 3)
        spacing_zyx = rng.uniform(0.3, 5.0, 3)
        index = rng.uniform(-10, 500, size=(50, 3))
        world = geometry.voxel_to_world(index, origin, spacing_zyx, direction)
        back = geometry.world_to_voxel(world, origin, spacing_zyx, direction)
        np.testing.assert_allclose(back, index, atol=1e-9)
        one = geometry.world_to_voxel(world[0], origin, spacing_zyx, direction)
        assert one.shape == (3,)
        np.testing.assert_allclose(one, index[0], atol=1e-9)


def test_hu_to_int16_rounds_and_counts_clipping() -> None:
    values, clipped = geometry.hu_to_int16(np.array([-1024.4, 0.5, 1.5, 40000.0, -40000.0]))
    assert values.dtype == np.int16
    assert values.tolist() == [-1024, 0, 2, 32767, -32768]
    assert clipped == 2


def test_unsigned_storage_is_converted_in_float() -> None:
    stored = np.array([[0, 65535]], dtype=np.uint16)
    hu = geometry.to_hounsfield(stored, 2.0, -1024.0)
    assert hu.tolist() == [[-1024.0, 65535 * 2.0 - 1024.0]]
    assert geometry.to_hounsfield(stored, None, None).tolist() == [[0.0, 65535.0]]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32])
@pytest.mark.parametrize(
    ("slope", "intercept"),
    [
        (1, -1024),
        (None, None),
        (4, 100),
        (2, -1024),
        (-1, 0),
        (3.0, 40000.0),
        (1, -32768),
        (0.5, -1024),
        (1.0, -1024.5),
        (float("nan"), 0),
        (1e12, 0),
    ],
)
def test_stored_to_int16_hu_equals_the_float_path(
    dtype: type, slope: object, intercept: object
) -> None:
    """Whole rescales are computed in integers: every value and the clipped count must be
    those of ``hu_to_int16(to_hounsfield(...))``, extremes of the stored type included."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(7)
    pixels = rng.integers(info.min, info.max, size=(64, 64), dtype=dtype, endpoint=True)
    pixels[0, :4] = [info.min, info.max, 0, 1]
    slope_value = None if slope is None else float(slope)  # type: ignore[arg-type]
    intercept_value = None if intercept is None else float(intercept)  # type: ignore[arg-type]
    with np.errstate(invalid="ignore"):
        expected, expected_clipped = geometry.hu_to_int16(
            geometry.to_hounsfield(pixels, slope_value, intercept_value)
        )
        values, clipped = geometry.stored_to_int16_hu(pixels, slope_value, intercept_value)
    assert values.dtype == np.int16
    np.testing.assert_array_equal(values, expected)
    assert clipped == expected_clipped


def test_stored_to_int16_hu_takes_the_float_path_for_float_pixels() -> None:
    values, clipped = geometry.stored_to_int16_hu(np.array([[-0.6, 0.5, 1e6]]), 1, 0)
    assert values.tolist() == [[-1, 0, 32767]]
    assert clipped == 1


def test_geometry_value_object_maps_world_and_voxel_both_ways() -> None:
    from sparkdl.geometry import Geometry

    direction = geometry.direction_from_iop([0.0, 1.0, 0.0, 0.0, 0.0, -1.0]).reshape(9)
    grid = Geometry([2.5, 0.7, 0.8], [-30.0, 12.0, -250.0], direction)
    index = np.array([[0, 0, 0], [3, 4.5, 7], [10, 2, 1]], dtype=np.float64)
    world = grid.to_world(index)
    np.testing.assert_allclose(world[0], [-30.0, 12.0, -250.0])
    # x (column) runs along +y LPS at 0.8 mm, y (row) along -z at 0.7 mm, z along the normal.
    np.testing.assert_allclose(
        world[1] - world[0],
        7 * 0.8 * np.array([0, 1, 0])
        + 4.5 * 0.7 * np.array([0, 0, -1])
        + 3 * 2.5 * np.cross([0, 1, 0], [0, 0, -1]),
    )
    np.testing.assert_allclose(grid.to_voxel(world), index, atol=1e-9)
    assert (
        Geometry.of({"spacing": grid.spacing, "origin": grid.origin, "direction": grid.direction})
        == grid
    )
    with pytest.raises(ValueError, match="spacing must be finite and > 0"):
        Geometry([0.0, 1.0, 1.0], [0, 0, 0], np.eye(3))
    with pytest.raises(ValueError, match="3×3 direction"):
        Geometry([1.0, 1.0, 1.0], [0, 0, 0], np.eye(2))
