"""Readers' marks in world space, clustered into nodules and labelled: DICOM pixel geometry
by hand, synthetic readers outlining known spheres, and the real LIDC-IDRI-0002 series."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from sparkdl.deid.keys import remap_uid
from sparkdl.errors import ConfigError
from sparkdl.geometry import to_hounsfield
from sparkdl.lidc import (
    ANNOTATION_COLUMNS,
    Mark,
    Nodule,
    NoduleRules,
    SliceGeometry,
    annotation_rows,
    cluster_marks,
    malignancy_label,
    parse_read_message,
    read_marks,
    write_annotations_csv,
)
from sparkdl.patches.points import read_points_csv
from sparkdl.synth.lidc_xml import SynthNodule, write_read_message
from tests.lidc_data import message, real_xml

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SPACING = (0.7, 0.7)
DZ = 1.25


def series(
    num_slices: int = 80, spacing: tuple[float, float] = SPACING
) -> dict[str, SliceGeometry]:
    return {
        f"1.2.826.0.1.{k}": SliceGeometry((-90.0, -80.0, -50.0 + k * DZ), AXIAL, spacing, DZ)
        for k in range(num_slices)
    }


def roi(sop_uid: str, points: list[tuple[int, int]], inclusion: bool = True) -> str:
    edges = "".join(
        f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>" for x, y in points
    )
    flag = "TRUE" if inclusion else "FALSE"
    return (
        f"<roi><imageZposition>0</imageZposition><imageSOP_UID>{sop_uid}</imageSOP_UID>"
        f"<inclusion>{flag}</inclusion>{edges}</roi>"
    )


def square(low: int, high: int) -> list[tuple[int, int]]:
    """The outline pixels of the square [low, high]², in order around it."""
    top = [(x, low) for x in range(low, high)]
    right = [(high, y) for y in range(low, high)]
    bottom = [(x, high) for x in range(high, low, -1)]
    left = [(low, y) for y in range(high, low, -1)]
    return top + right + bottom + left


# --- pixel geometry --------------------------------------------------------------------------


def test_pixel_to_world_follows_dicom_row_and_column_conventions() -> None:
    # Rows 0.5 mm apart, columns 2 mm apart: a swap of PixelSpacing or IOP shows at once.
    axial = SliceGeometry((10.0, 20.0, 30.0), AXIAL, (0.5, 2.0), 1.0)
    np.testing.assert_allclose(axial.to_world(20, 10)[0], [10 + 10 * 2.0, 20 + 20 * 0.5, 30])
    # A sagittal slice: columns run posterior (+y), rows run inferior (-z).
    sagittal = SliceGeometry((5.0, -100.0, 50.0), (0, 1, 0, 0, 0, -1), (0.5, 2.0), 1.0)
    np.testing.assert_allclose(sagittal.to_world(4, 3)[0], [5.0, -100 + 3 * 2.0, 50 - 4 * 0.5])
    row, column, height = sagittal.to_pixel([7.5, -94.0, 48.0])
    np.testing.assert_allclose([row, column, height], [4, 3, -2.5])


def test_point_marks_land_on_their_pixel_and_unknown_slices_are_refused() -> None:
    geometry = {"1.2.1": SliceGeometry((10.0, 20.0, 30.0), AXIAL, (0.5, 2.0), 1.0)}
    data = message(
        "<readingSession><unblindedReadNodule><noduleID>s</noduleID>"
        f"{roi('1.2.1', [(10, 20)])}</unblindedReadNodule>"
        "<unblindedReadNodule><noduleID>lost</noduleID>"
        f"{roi('1.2.1', square(0, 4))}{roi('9.9.9', square(0, 4))}</unblindedReadNodule>"
        "<unblindedReadNodule><noduleID>huge</noduleID>"
        f"{roi('1.2.1', [(0, 0), (5000, 0), (5000, 5000)])}</unblindedReadNodule>"
        "<nonNodule><nonNoduleID>n</nonNoduleID><imageZposition>30</imageZposition>"
        "<imageSOP_UID>9.9.9</imageSOP_UID><locus><xCoord>1</xCoord><yCoord>2</yCoord></locus>"
        "</nonNodule></readingSession>"
    )
    marks, unusable = read_marks(parse_read_message(data), geometry)
    (small,) = marks
    assert (small.kind, small.diameter_mm, small.characteristics) == ("small_nodule", None, {})
    np.testing.assert_allclose(small.centre_lps, [30.0, 30.0, 30.0])
    assert small.footprint == {("1.2.1", 20, 10)}
    assert [(u.kind, u.mark_id, u.reason) for u in unusable] == [
        ("nodule", "lost", "sop_uid_not_in_series"),
        ("nodule", "huge", "outline_too_large"),
        ("non_nodule", "n", "sop_uid_not_in_series"),
    ]
    # 9.9.9 is in the series after all, but its geometry could not be read: said so.
    _, unusable = read_marks(parse_read_message(data), geometry, unplaceable=frozenset({"9.9.9"}))
    assert [(u.mark_id, u.reason) for u in unusable] == [
        ("lost", "slice_geometry_unusable"),
        ("huge", "outline_too_large"),
        ("n", "slice_geometry_unusable"),
    ]


def test_outlines_fill_their_inside_and_exclusions_cut_holes() -> None:
    geometry = {"1.2.1": SliceGeometry((0.0, 0.0, 0.0), AXIAL, (0.5, 0.5), 2.0)}
    reads = [
        f"<unblindedReadNodule><noduleID>a</noduleID>{roi('1.2.1', square(10, 16))}"
        "</unblindedReadNodule>",
        f"<unblindedReadNodule><noduleID>b</noduleID>{roi('1.2.1', square(10, 16))}"
        f"{roi('1.2.1', square(12, 14), inclusion=False)}</unblindedReadNodule>",
        f"<unblindedReadNodule><noduleID>c</noduleID>{roi('1.2.1', [(3, 3), (4, 3)])}"
        "<characteristics><malignancy>2</malignancy></characteristics></unblindedReadNodule>",
    ]
    sessions = "".join(f"<readingSession>{read}</readingSession>" for read in reads)
    (full, holed, tiny), unusable = read_marks(parse_read_message(message(sessions)), geometry)
    assert unusable == []
    # The outline lies just outside the nodule: a 7×7 outline square holds 5×5 pixels.
    assert full.footprint == {("1.2.1", r, c) for r in range(11, 16) for c in range(11, 16)}
    assert full.volume_mm3 == pytest.approx(25 * 0.25 * 2.0)
    assert full.diameter_mm == pytest.approx((6 * 12.5 / np.pi) ** (1 / 3))
    np.testing.assert_allclose(full.centre_lps, [6.5, 6.5, 0.0])
    assert holed.footprint == full.footprint - {("1.2.1", 13, 13)}
    assert holed.volume_mm3 == pytest.approx(24 * 0.25 * 2.0)
    # An outline enclosing no pixel centre is its own pixels.
    assert tiny.footprint == {("1.2.1", 3, 3), ("1.2.1", 3, 4)}
    assert (tiny.kind, tiny.characteristics) == ("nodule", {"malignancy": 2})


def test_de_identified_slice_keys_through_the_uid_map() -> None:
    key = b"k" * 32
    slices = series(40)
    xml = write_read_message("1.2.3", "1.2", slices, [SynthNodule((-60.0, -50.0, -30.0), 8.0, 4)])
    deid = {remap_uid(key, sop): geometry for sop, geometry in slices.items()}
    plain, _ = read_marks(parse_read_message(xml), slices)
    mapped, unusable = read_marks(parse_read_message(xml), deid, uid=lambda u: remap_uid(key, u))
    assert unusable == [] and len(mapped) == len(plain) > 0
    assert [m.centre_lps for m in mapped] == [m.centre_lps for m in plain]
    assert all(k.startswith("2.25.") for m in mapped for k, _, _ in m.footprint)
    _, lost = read_marks(parse_read_message(xml), deid)
    assert {u.reason for u in lost} == {"sop_uid_not_in_series"}


# --- synthetic readers, clustering and labels ------------------------------------------------

TRUTH = [
    SynthNodule((-50.0, -40.0, -20.0), 12.0, 5),
    SynthNodule((-38.0, -30.0, -12.0), 6.0, 2),  # 16 mm from the first: close, not touching
    SynthNodule((0.0, -5.0, 10.0), 5.0, 3),
    SynthNodule((-20.0, -60.0, 30.0), 8.0, 4, num_readers=2),
    SynthNodule((-70.0, -20.0, -40.0), 2.0, 1),  # < 3 mm: points only
    SynthNodule((-10.0, -30.0, 40.0), 10.0, 1, num_readers=1),  # a far-away singleton
]


@pytest.fixture(scope="module")
def synthetic() -> tuple[list[Mark], list[Nodule]]:
    slices = series(90, spacing=(0.7, 0.8))
    xml = write_read_message("1.2.3", "1.2", slices, TRUTH, num_readers=4, seed=3)
    assert xml == write_read_message("1.2.3", "1.2", slices, TRUTH, num_readers=4, seed=3)
    marks, unusable = read_marks(parse_read_message(xml), slices)
    assert unusable == []
    return marks, cluster_marks(marks)


def nearest(nodules: list[Nodule], truth: SynthNodule) -> Nodule:
    return min(
        nodules, key=lambda n: float(np.linalg.norm(np.subtract(n.centre_lps, truth.centre_lps)))
    )


def test_synthetic_outlines_recover_the_spheres(synthetic: tuple[list[Mark], list[Nodule]]) -> None:
    _, nodules = synthetic
    assert len(nodules) == len(TRUTH)
    voxel = np.array([0.8, 0.7, DZ])  # LPS x (columns), y (rows), z (slices)
    for truth in TRUTH:
        nodule = nearest(nodules, truth)
        error = np.abs(np.subtract(nodule.centre_lps, truth.centre_lps))
        assert np.all(error <= voxel), (truth, nodule.centre_lps)
        if truth.diameter_mm >= 3:
            assert nodule.diameter_mm == pytest.approx(truth.diameter_mm, rel=0.10)
        else:
            assert nodule.diameter_mm is None
            assert {m.kind for m in nodule.marks} == {"small_nodule"}


def test_synthetic_readers_cluster_into_the_right_nodules(
    synthetic: tuple[list[Mark], list[Nodule]],
) -> None:
    marks, nodules = synthetic
    for truth in TRUTH:
        nodule = nearest(nodules, truth)
        expected = truth.num_readers or 4
        assert nodule.num_readers == expected
        assert sorted(m.reader for m in nodule.marks) == sorted({m.reader for m in nodule.marks})
        assert nodule.num_nodule_readers == (expected if truth.diameter_mm >= 3 else 0)
        if truth.diameter_mm >= 3:
            assert len(nodule.ratings["malignancy"]) == expected
            assert abs(nodule.medians["malignancy"] - truth.malignancy) <= 1
    # The same nodules whatever the order of the marks.
    shuffled = list(marks)
    random.Random(0).shuffle(shuffled)
    assert cluster_marks(shuffled) == nodules
    centres_z = [n.centre_lps[2] for n in nodules]
    assert centres_z == sorted(centres_z)


def test_a_reader_contributes_one_mark_per_nodule(
    synthetic: tuple[list[Mark], list[Nodule]],
) -> None:
    marks, _ = synthetic
    big = [m for m in marks if m.kind == "nodule" and m.diameter_mm and m.diameter_mm > 10]
    first = min(big, key=lambda m: m.reader)
    # The same reader also clicks a point 2 mm off the centre: inside the nodule, but the
    # reader's outline is nearer, so the point starts a nodule of its own.
    x, y, z = first.centre_lps
    extra = Mark(first.reader, "non_nodule", "extra", (x + 2.0, y, z), None, None, {}, frozenset())
    nodules = cluster_marks([*marks, extra])
    (with_extra,) = [n for n in nodules if extra in n.marks]
    assert with_extra.marks == (extra,)
    (host,) = [n for n in nodules if first in n.marks]
    assert host.num_readers == 4


def test_rules_select_positives_and_label_malignancy(
    synthetic: tuple[list[Mark], list[Nodule]], tmp_path: Path
) -> None:
    _, nodules = synthetic
    positives = NoduleRules().select(nodules)
    # Left out: read by 2 readers, by 1 reader, and < 3 mm.
    assert positives == [n for n in nodules if n in [nearest(nodules, t) for t in TRUTH[:3]]]
    assert len(NoduleRules(min_readers=2).select(nodules)) == 4
    assert len(NoduleRules(min_diameter_mm=7.0).select(nodules)) == 1
    assert [malignancy_label(m) for m in (5, 4, 3.5, 3, 2.5, 1, None)] == [1, 1, 1, -1, 0, 0, -1]
    # Malignancy 5, 2 and 3 read by 4 readers: malignant, benign, indeterminate.
    labels = {
        t.malignancy: malignancy_label(nearest(nodules, t).medians["malignancy"]) for t in TRUTH[:3]
    }
    assert labels == {5: 1, 2: 0, 3: -1}
    rows = annotation_rows("2.25.99", nodules)
    assert len(rows) == len(positives)
    for row, nodule in zip(rows, positives):
        median = nodule.medians["malignancy"]
        expected = (
            "2.25.99",
            *nodule.centre_lps,
            nodule.diameter_mm,
            malignancy_label(median),
            4,
            median,
        )
        assert row == expected
    frame = read_points_csv(
        write_annotations_csv(tmp_path / "annotations.csv", rows), "annotations"
    )
    assert tuple(frame.columns) == ANNOTATION_COLUMNS
    assert frame["seriesuid"].tolist() == ["2.25.99"] * 3
    assert sorted(frame["malignancy"]) == [-1, 0, 1]
    coordinates = frame[["coordX", "coordY", "coordZ", "diameter_mm"]].to_numpy()
    np.testing.assert_allclose(coordinates, [row[1:5] for row in rows], atol=1e-3)
    with pytest.raises(ConfigError, match="min_readers"):
        NoduleRules(min_readers=0)


# --- the real series -------------------------------------------------------------------------


def real_slices(xml: Path) -> tuple[dict[str, SliceGeometry], dict[str, Path], pydicom.Dataset]:
    headers = {
        path: pydicom.dcmread(path, stop_before_pixels=True) for path in xml.parent.glob("*.dcm")
    }
    positions = sorted(float(ds.ImagePositionPatient[2]) for ds in headers.values())
    spacing = float(np.median(np.diff(positions)))
    slices = {
        str(ds.SOPInstanceUID): SliceGeometry(
            tuple(float(v) for v in ds.ImagePositionPatient),  # type: ignore[arg-type]
            tuple(float(v) for v in ds.ImageOrientationPatient),  # type: ignore[arg-type]
            tuple(float(v) for v in ds.PixelSpacing),  # type: ignore[arg-type]
            spacing,
        )
        for ds in headers.values()
    }
    files = {str(ds.SOPInstanceUID): path for path, ds in headers.items()}
    return slices, files, next(iter(headers.values()))


def test_real_marks_land_in_the_volume_on_dense_tissue() -> None:
    xml = real_xml()
    slices, files, header = real_slices(xml)
    assert len(slices) == 261
    marks, unusable = read_marks(parse_read_message(xml.read_bytes()), slices)
    assert unusable == [] and len(marks) == 53
    zs = [g.position[2] for g in slices.values()]
    for mark in marks:
        row, column, _ = next(iter(slices.values())).to_pixel(mark.centre_lps)
        assert 0 <= row < header.Rows and 0 <= column < header.Columns
        assert min(zs) <= mark.centre_lps[2] <= max(zs)
    largest = max((m for m in marks if m.volume_mm3), key=lambda m: m.volume_mm3 or 0.0)
    by_slice: dict[str, list[tuple[int, int]]] = {}
    for key, row, column in largest.footprint:
        by_slice.setdefault(key, []).append((row, column))
    inside: list[float] = []
    anterior: list[float] = []  # the same outline moved 40 rows (27 mm) forward, into the lung
    for key, pixels in by_slice.items():
        ds = pydicom.dcmread(files[key])
        hu = to_hounsfield(ds.pixel_array, ds.RescaleSlope, ds.RescaleIntercept)
        rows, columns = np.asarray(pixels).T
        inside.extend(hu[rows, columns].tolist())
        anterior.extend(hu[rows - 40, columns].tolist())
    mean_hu, lung_hu = float(np.mean(inside)), float(np.mean(anterior))
    print(
        f"\nlargest mark: reader {largest.reader}, {largest.diameter_mm:.1f} mm, "
        f"{len(by_slice)} slices, mean {mean_hu:.0f} HU inside, {lung_hu:.0f} HU 27 mm anterior"
    )
    # A ground-glass nodule (both readers rated texture 1–2, non-solid): denser than the
    # aerated lung (about -850 HU) but not solid; a swapped row/column or a shifted outline
    # would read lung.
    assert lung_hu < -800
    assert mean_hu > -750 and mean_hu > lung_hu + 100


def test_real_marks_cluster_consistently() -> None:
    xml = real_xml()
    slices, _, _ = real_slices(xml)
    read = parse_read_message(xml.read_bytes())
    marks, _ = read_marks(read, slices)
    nodules = cluster_marks(marks)
    assert sum(len(n.marks) for n in nodules) == len(marks)
    for nodule in nodules:
        assert nodule.num_readers == len({m.reader for m in nodule.marks}) == len(nodule.marks)
        assert nodule.num_readers <= len(read.sessions) == 4
    outlined = [n for n in nodules if n.num_nodule_readers]
    assert len(outlined) == 1  # the one large nodule; two readers outlined it
    (large,) = outlined
    assert large.num_nodule_readers == 2 and large.ratings["malignancy"] == (5, 4)
    assert NoduleRules().select(nodules) == []  # fewer than 3 readers: not a LUNA16 positive
    assert len(NoduleRules(min_readers=2).select(nodules)) == 1
    print_table(nodules, marker=lambda n: "*" if n is large else "")


def print_table(nodules: list[Nodule], marker: Callable[[Nodule], str]) -> None:
    print(f"\n{'centre LPS (mm)':>26}  {'diam':>5}  readers  outlined  kinds{'':27}malig")
    for n in nodules:
        x, y, z = n.centre_lps
        diameter = f"{n.diameter_mm:5.1f}" if n.diameter_mm is not None else "    -"
        kinds = ",".join(sorted({m.kind for m in n.marks}))
        median = n.medians.get("malignancy")
        malignancy = "-" if median is None else f"{median:g} {n.ratings['malignancy']}"
        print(
            f"{x:8.1f}{y:8.1f}{z:8.1f}{marker(n):>2}  {diameter}  {n.num_readers:7d}  "
            f"{n.num_nodule_readers:8d}  {kinds:32}{malignancy}"
        )
