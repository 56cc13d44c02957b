"""The lung mask on synthetic chests: it follows the true lungs, keeps juxtapleural nodules,
drops a trachea and its main bronchi, the air outside and a hollow table, and finds nothing
where there are no lungs."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from sparkdl.candidates.lungs import block_mean, lung_mask
from sparkdl.errors import ConfigError
from sparkdl.synth.anatomy import make_phantom
from tests.candidates.chests import Chest, Volume, paint_capsule, render_chest, truth, voxel


@pytest.fixture(scope="module")
def pleural() -> list[tuple[Chest, npt.NDArray[np.bool_]]]:
    """Four chests whose nodules all touch the pleura, with their masks."""
    chests = [render_chest(seed, pleural_fraction=1.0, num_nodules=5) for seed in range(4)]
    return [(c, lung_mask(c.hu, c.geometry.spacing)) for c in chests]


@pytest.fixture(scope="module")
def chest(pleural: list[tuple[Chest, npt.NDArray[np.bool_]]]) -> Chest:
    return pleural[1][0]


def test_the_mask_follows_the_true_lungs(
    pleural: list[tuple[Chest, npt.NDArray[np.bool_]]],
) -> None:
    for chest, mask in pleural:
        lungs = truth(chest)
        assert mask.shape == chest.hu.shape and mask.dtype == np.bool_
        recall = np.count_nonzero(mask & lungs) / np.count_nonzero(lungs)
        excess = np.count_nonzero(mask & ~lungs) / np.count_nonzero(lungs)
        assert recall > 0.97, recall
        assert excess < 0.06, excess  # closing fills dents and vessels, nothing wholesale


def test_juxtapleural_nodules_stay_inside(
    pleural: list[tuple[Chest, npt.NDArray[np.bool_]]],
) -> None:
    inside, solid = [], 0
    for chest, mask in pleural:
        assert all(n.attached_to == "pleura" for n in chest.phantom.nodules)
        for nodule in chest.phantom.nodules:
            centre = voxel(chest, nodule.center)
            inside.append(bool(mask[centre]))
            if mask[centre] and nodule.texture == "solid":
                # Tissue at the centre: a threshold mask would have a dent there.
                assert chest.hu[centre] > -400
                solid += 1
    # 19 of 20: one sits where the lung's tip curves more sharply than the closing ball.
    assert sum(inside) >= 0.9 * len(inside) and solid >= 5, (inside, solid)


def test_the_outside_and_a_hollow_table_are_left_out(chest: Chest) -> None:
    hu = chest.hu.copy()
    ay = chest.phantom.body_axes[1]
    cy = chest.phantom.center[1]
    rows = np.arange(hu.shape[1]) * chest.geometry.spacing[1] + chest.geometry.origin[1]
    table = (rows > cy + ay + 8) & (rows < cy + ay + 28)
    hu[:, table, 20:-20] = 300
    cavity = (rows > cy + ay + 12) & (rows < cy + ay + 24)
    hu[:, cavity, 30:-30] = -1000  # a hollow table: enclosed air, but not the patient's
    mask = lung_mask(hu, chest.geometry.spacing)
    assert not mask[:, table].any()
    x, y, _ = chest.grid.world(*(np.arange(n) for n in chest.grid.shape))
    cx, cy = chest.phantom.center
    ax, ay = chest.phantom.body_axes
    outside = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 > 0.85**2  # beyond the ribs
    assert not (mask & outside).any()
    assert mask.any()


def test_the_trachea_and_main_bronchi_are_left_out() -> None:
    chest = render_chest(5)
    ph = chest.phantom
    (rx, ly, zc), (lx, _, _) = ph.lung_centers
    cx = (rx + lx) / 2.0
    top = chest.geometry.origin[2] + (chest.hu.shape[0] - 1) * chest.geometry.spacing[0]
    carina = np.array([cx, ly, zc + 0.25 * ph.lung_axes[2]])
    trachea = paint_capsule(chest, np.array([cx, ly, top + 5.0]), carina, 8.0)
    bronchi = np.zeros_like(trachea)
    for side in (-1.0, 1.0):  # main bronchi, 45° down and out into each lung
        end = carina + np.array([side * 0.3 * ph.body_axes[0], 0.0, -40.0])
        bronchi |= paint_capsule(chest, carina, end, 5.5)
    mask = lung_mask(chest.hu, chest.geometry.spacing)
    lungs = truth(chest)
    assert not (mask & trachea).any()
    outside = bronchi & ~lungs & ~trachea
    # Where a bronchus runs into its lung's cross-section (here its last ~15 mm, painted
    # without a wall) it stays, as lung would at the hilum; the rest goes.
    assert np.count_nonzero(mask & outside) < 0.5 * np.count_nonzero(outside)
    assert np.count_nonzero(mask & lungs) > 0.97 * np.count_nonzero(lungs)
    # The lungs are closed one by one: no bridge over the mediastinum at the carina.
    k, r, c = voxel(chest, (cx, ly, float(carina[2])))
    assert not mask[k, r, c - 3 : c + 4].any()


def test_synthetic_hard_places_are_where_they_say() -> None:
    """The test data: juxtapleural nodules touch the pleura, juxtavascular ones a vessel, and
    the default fractions (0) draw exactly the phantom they drew before they existed."""
    from sparkdl.synth.anatomy import _depth

    rng = np.random.default_rng(11)
    phantom = make_phantom(
        rng, min_nodule_radius_mm=2.0, num_nodules=8, pleural_fraction=0.5, vascular_fraction=0.5
    )
    kinds = [n.attached_to for n in phantom.nodules]
    assert kinds.count("pleura") >= 2 and kinds.count("vessel") >= 2 and "none" not in kinds
    for nodule in phantom.nodules:
        centre = np.asarray(nodule.center)
        if nodule.attached_to == "pleura":
            assert 0.4 * nodule.radius_mm <= _depth(phantom, centre) <= 0.85 * nodule.radius_mm
        else:
            gaps = [
                _segment_distance(centre, v.start, v.end) - v.radius_mm for v in phantom.vessels
            ]
            assert min(gaps) < 0.85 * nodule.radius_mm
    plain = make_phantom(np.random.default_rng(4), min_nodule_radius_mm=2.0, num_nodules=3)
    zero = make_phantom(
        np.random.default_rng(4),
        min_nodule_radius_mm=2.0,
        num_nodules=3,
        pleural_fraction=0.0,
        vascular_fraction=0.0,
    )
    assert plain == zero and all(n.attached_to == "none" for n in plain.nodules)
    with pytest.raises(ConfigError, match="pleural_fraction"):
        make_phantom(rng, min_nodule_radius_mm=2.0, num_nodules=1, pleural_fraction=1.5)


def _segment_distance(
    p: npt.NDArray[np.float64],
    a: tuple[float, float, float],
    b: tuple[float, float, float],
) -> float:
    start, end = np.asarray(a), np.asarray(b)
    t = np.clip((p - start) @ (end - start) / ((end - start) @ (end - start)), 0.0, 1.0)
    return float(np.linalg.norm(p - start - t * (end - start)))


@pytest.mark.parametrize(
    "hu",
    [
        np.full((40, 64, 64), -1000, dtype=np.int16),  # air
        np.zeros((40, 64, 64), dtype=np.int16),  # water
        np.random.default_rng(0).integers(-1024, 3072, (40, 64, 64)).astype(np.int16),
        np.random.default_rng(1).normal(-600, 300, (40, 64, 64)).astype(np.int16),
        np.full((2, 3, 4), -800, dtype=np.int16),  # tiny
        np.zeros((0, 8, 8), dtype=np.int16),  # empty
    ],
    ids=["air", "water", "uniform-noise", "lung-like-noise", "tiny", "empty"],
)
def test_no_lungs_no_mask(hu: Volume) -> None:
    mask = lung_mask(hu, (1.25, 0.7, 0.7))
    assert mask.shape == hu.shape and not mask.any()


def test_one_slice_does_not_crash(chest: Chest) -> None:
    k = voxel(chest, chest.phantom.nodules[0].center)[0]
    one = chest.hu[k : k + 1]
    mask = lung_mask(one, chest.geometry.spacing)
    assert mask.shape == one.shape


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="3D"):
        lung_mask(np.zeros((8, 8), dtype=np.int16), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        lung_mask(np.zeros((8, 8, 8), dtype=np.int16), (1.0, 0.0, 1.0))


def test_block_means_cover_partial_blocks() -> None:
    volume = np.arange(7 * 9 * 11, dtype=np.int16).reshape(7, 9, 11)
    means = block_mean(volume, (2, 4, 3))
    assert means.shape == (4, 3, 4) and means.dtype == np.float32
    assert means[0, 0, 0] == pytest.approx(volume[:2, :4, :3].mean())
    assert means[-1, -1, -1] == pytest.approx(volume[6:, 8:, 9:].mean())
    assert means[1, 2, 1] == pytest.approx(volume[2:4, 8:, 3:6].mean())
