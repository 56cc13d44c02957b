"""Nodule patches from HU volumes: extraction, negative sampling, patient splits.

Patches follow :mod:`sparkdl.store.tables`: int16 HU indexed ``(z, y, x)`` along the *volume's*
index axes, resampled to an isotropic ``spacing_mm``. The world point a patch is cut
around sits at its geometric centre, index ``(size - 1) / 2`` on each axis, so flips and
90° rotations used for augmentation keep it there. (For an even size that is between the
eight central voxels.)

Splits are by patient: ``assign_split`` hashes the pseudonymous patient id with a keyed
HMAC-SHA256, so every patch of a patient lands in one split on every executor and run.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from sparkdl import config, geometry
from sparkdl.errors import ConfigError, DeidKeyError, InputError
from sparkdl.geometry import Geometry
from sparkdl.patches import grid as patch_grid
from sparkdl.store.tables import SOURCES, SPLITS

logger = logging.getLogger(__name__)

#: A checked point: centre (LPS mm), label, source, malignancy, diameter, label sources.
_Point = tuple[npt.NDArray[np.float64], int, str, int, float, str]

#: Air threshold of the lung mask, HU.
LUNG_THRESHOLD_HU = -400.0


@dataclass(frozen=True)
class PatchOptions:
    """How patches are cut and split. Validates itself; :meth:`from_mapping` reads config.

    ``min_negative_distance_mm`` is the margin kept between a sampled negative's centre and
    every nodule's surface. The default, 16 mm, is half a default patch (32 voxels of 1 mm):
    a nodule can reach at most the corners of a negative patch, so a negative is not a
    shifted positive.
    """

    size: int = 32
    spacing_mm: float = 1.0
    negative_ratio: int = 3
    min_negative_distance_mm: float = 16.0
    train_fraction: float = 0.7
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    pad_hu: int = -1000
    #: With a candidates file: negative candidates kept per series of the train split (a
    #: seeded sample; None keeps all). Positives, and the val and test splits, keep every
    #: candidate, so that evaluation scores the candidate list as given.
    train_negatives_per_series: int | None = None

    def __post_init__(self) -> None:
        # Ranges only: config.from_mapping checks the types. Written so NaN fails too.
        config.check_ranges(
            self,
            [
                ("size", self.size >= 1, "an integer >= 1"),
                ("spacing_mm", 0 < self.spacing_mm < math.inf, "a number > 0"),
                ("negative_ratio", self.negative_ratio >= 0, "an integer >= 0"),
                (
                    "min_negative_distance_mm",
                    0 <= self.min_negative_distance_mm < math.inf,
                    "a number >= 0",
                ),
                (
                    "train_negatives_per_series",
                    self.train_negatives_per_series is None or self.train_negatives_per_series >= 0,
                    "an integer >= 0, or null for all",
                ),
                (
                    "pad_hu",
                    geometry.INT16_MIN <= self.pad_hu <= geometry.INT16_MAX,
                    "an integer in the int16 range",
                ),
            ],
        )
        _check_fractions(self.fractions)

    @property
    def fractions(self) -> tuple[float, float, float]:
        """``(train, val, test)`` fractions."""
        return (self.train_fraction, self.val_fraction, self.test_fraction)

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None, *, where: str = "patches"
    ) -> PatchOptions:
        """Options from a config section (e.g. the ``patches:`` block of the YAML file)."""
        return config.from_mapping(cls, values, where=where)


def extract_patch(
    volume: npt.NDArray[np.int16],
    grid: Geometry,
    center_xyz: geometry.ArrayLike,
    size: int,
    spacing_mm: float,
    pad_hu: int = -1000,
) -> npt.NDArray[np.int16]:
    """A ``(size, size, size)`` int16 patch centred exactly on the world point ``center_xyz``.

    Axes follow the volume's index axes at ``spacing_mm`` isotropic spacing; values are
    trilinear; samples outside the volume are ``pad_hu``. Many patches of one volume:
    :func:`sparkdl.patches.grid.cut_patches`.
    """
    center = np.asarray(center_xyz, dtype=np.float64).reshape(1, 3)
    patch: npt.NDArray[np.int16] = patch_grid.cut_patches(
        volume, grid, center, size, spacing_mm, pad_hu
    )[0]
    return patch


def lung_mask(
    volume: npt.NDArray[np.int16], spacing_zyx: geometry.ArrayLike, erosion_mm: float = 2.0
) -> npt.NDArray[np.bool_]:
    """Air inside the body: voxels below -400 HU, per slice, not connected to the slice border.

    Slice by slice (the trachea joins the lungs to the top of the volume in 3-D), each air
    region touching the in-plane border (air around the patient) is dropped, and the rest is
    eroded in-plane by about ``erosion_mm`` so samples keep off the lung wall. Bowel gas
    also counts; it is rare in a chest field of view.
    """
    spacing = np.asarray(spacing_zyx, dtype=np.float64)
    iterations = max(1, math.ceil(erosion_mm / min(spacing[1], spacing[2])))
    mask = np.zeros(volume.shape, dtype=bool)
    for k in range(volume.shape[0]):
        air = volume[k] < LUNG_THRESHOLD_HU
        labels, count = ndimage.label(air)
        if count == 0:
            continue
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        inside = air & ~np.isin(labels, border)
        mask[k] = ndimage.binary_erosion(inside, iterations=iterations)
    return mask


def sample_negatives(
    volume: npt.NDArray[np.int16],
    grid: Geometry,
    avoid: Sequence[tuple[Sequence[float], float]],
    count: int,
    rng: np.random.Generator,
    *,
    margin_mm: float = PatchOptions.min_negative_distance_mm,
) -> list[tuple[float, float, float]]:
    """Up to ``count`` world points (voxel centres) in the lungs, away from every nodule.

    ``avoid`` holds ``(center_xyz, radius_mm)`` per nodule (radius 0 when unknown); a point
    is kept when it is farther than ``radius_mm + margin_mm`` from every centre. Fewer
    points are returned (and logged) when the lungs do not hold enough.
    """
    if count <= 0:
        return []
    mask = lung_mask(volume, grid.spacing)
    if not mask.any():
        logger.warning("no lung voxels found; sampled 0 of %d negatives", count)
        return []
    bounds = [np.flatnonzero(mask.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)]
    low = np.array([b[0] for b in bounds])
    high = np.array([b[-1] + 1 for b in bounds])
    centers = np.array([c for c, _ in avoid], dtype=np.float64).reshape(-1, 3)
    limits = np.array([r + margin_mm for _, r in avoid], dtype=np.float64)
    chosen: dict[tuple[int, int, int], None] = {}
    for _ in range(64):
        index = rng.integers(low, high, size=(max(4 * count, 256), 3))
        index = index[mask[index[:, 0], index[:, 1], index[:, 2]]]
        world = grid.to_world(index)
        if len(centers):
            distance = np.linalg.norm(world[:, None, :] - centers[None, :, :], axis=2)
            index = index[np.all(distance > limits[None, :], axis=1)]
        for zyx in map(tuple, index.tolist()):
            chosen.setdefault(zyx, None)
            if len(chosen) == count:
                break
        if len(chosen) == count:
            break
    if len(chosen) < count:
        logger.warning(
            "sampled %d of %d negatives: not enough lung far from nodules", len(chosen), count
        )
    points = grid.to_world(np.array(list(chosen), dtype=np.float64).reshape(-1, 3))
    return [(float(p[0]), float(p[1]), float(p[2])) for p in points]


def assign_split(
    key: bytes | str, patient_id: str, fractions: Sequence[float] = (0.7, 0.15, 0.15)
) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a patient, by HMAC-SHA256(key, patient_id).

    The first 64 bits of the digest, as a fraction of 2**64, fall into the cumulative
    ``fractions``; the same key and patient always give the same split.
    """
    _check_fractions(fractions)
    key_bytes = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not key_bytes:
        raise DeidKeyError(
            "The split key is empty. Pass the de-identification key "
            "(SPARKDL_DEID_KEY) to assign_split."
        )
    digest = hmac.new(
        key_bytes, b"sparkdl-split\x00" + patient_id.encode("utf-8"), hashlib.sha256
    ).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0**64
    cumulative = np.cumsum(fractions)
    for name, bound in zip(SPLITS, cumulative):
        if fraction < bound:
            return name
    return next(name for name, f in zip(reversed(SPLITS), reversed(fractions)) if f > 0)


def make_patch_rows(
    volume: Any, points: Sequence[Mapping[str, Any]], options: PatchOptions, key: bytes | str
) -> tuple[list[dict[str, Any]], int]:
    """Rows for ``patch_schema(options.size)``, and how many points were skipped.

    ``volume`` is an :class:`~sparkdl.assembly.series.AssembledVolume`, a Row or a mapping with
    ``volume, spacing, origin, direction, series_uid, patient_id``. Each point is a mapping
    ``{center_xyz, label, malignancy, diameter_mm, source}`` (malignancy and diameter
    optional, -1 when unknown). Points whose centre lies outside the volume are skipped.
    """
    array = np.asarray(_get(volume, "volume"))
    grid = Geometry(_get(volume, "spacing"), _get(volume, "origin"), _get(volume, "direction"))
    series_uid, patient_id = str(_get(volume, "series_uid")), str(_get(volume, "patient_id"))
    split = assign_split(key, patient_id, options.fractions)
    checked = [_checked(point, series_uid) for point in points]
    limit = options.train_negatives_per_series
    if split == "train" and limit is not None:
        checked = _fewer_negative_candidates(checked, limit, series_rng(series_uid))
    centers = np.array([c for c, *_ in checked], dtype=np.float64).reshape(-1, 3)
    inside = [geometry.is_inside(index, array.shape) for index in grid.to_voxel(centers)]
    kept = [point for point, ok in zip(checked, inside) if ok]
    skipped = len(checked) - len(kept)
    # All of the volume's patches in one pass (hundreds per scan with a candidates file).
    cut = patch_grid.cut_patches(
        array, grid, centers[np.asarray(inside, dtype=bool)], options.size, options.spacing_mm,
        options.pad_hu,
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for (center, label, source, malignancy, diameter, sources), patch in zip(kept, cut):
        text = f"{series_uid}|{source}|{label}|" + "|".join(f"{v:.3f}" for v in center)
        patch_id = f"{series_uid}.{source[0]}{hashlib.sha256(text.encode()).hexdigest()[:12]}"
        seen[patch_id] = seen.get(patch_id, -1) + 1
        if seen[patch_id]:
            patch_id += f"-{seen[patch_id]}"
        rows.append(
            {
                "patch_id": patch_id,
                "series_uid": series_uid,
                "patient_id": patient_id,
                "patch": patch,
                "label": label,
                "malignancy": malignancy,
                "diameter_mm": diameter,
                "center": center,
                "source": source,
                "sources": sources,
                "split": split,
            }
        )
    if skipped:
        logger.warning("series %s: %d points outside the volume skipped", series_uid, skipped)
    return rows, skipped


def _fewer_negative_candidates(
    points: list[_Point], limit: int, rng: np.random.Generator
) -> list[_Point]:
    """Every point but negative candidates beyond ``limit``, which are sampled (in order)."""
    negatives = [
        i for i, p in enumerate(points) if p[1] == 0 and p[2] in ("candidate", "generated")
    ]
    if len(negatives) <= limit:
        return points
    dropped = set(rng.choice(negatives, size=len(negatives) - limit, replace=False).tolist())
    return [p for i, p in enumerate(points) if i not in dropped]


def _checked(point: Mapping[str, Any], series_uid: str) -> _Point:
    """``(centre, label, source, malignancy, diameter_mm, sources)`` of a point, or
    InputError."""
    center = np.asarray(point["center_xyz"], dtype=np.float64).reshape(3)
    label, source = int(point["label"]), str(point["source"])
    malignancy = _optional(point.get("malignancy"), int)
    if label not in (-1, 0, 1) or source not in SOURCES or malignancy not in (-1, 0, 1):
        raise InputError(
            f"Invalid point for series {series_uid}: label must be 0, 1 or -1 (unknown), "
            f"source one of {SOURCES}, malignancy -1, 0 or 1. Received: "
            f"label={label!r}, source={source!r}, malignancy={malignancy!r}"
        )
    diameter = float(_optional(point.get("diameter_mm"), float))
    return center, label, source, malignancy, diameter, ",".join(point.get("sources", ()))


def series_rng(series_uid: str, seed: int = 0) -> np.random.Generator:
    """A random generator determined by the series and a seed: same draws on any executor."""
    digest = hashlib.sha256(f"{seed}:{series_uid}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _get(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


def _optional(value: Any, kind: type) -> Any:
    """``value`` as ``kind``, or -1 when it is None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return kind(-1)
    return kind(value)


def _check_fractions(fractions: Sequence[float]) -> None:
    if (
        len(fractions) != 3
        or not all(0 <= f < math.inf for f in fractions)
        or abs(sum(fractions) - 1.0) > 1e-6
    ):
        raise ConfigError(
            "Split fractions (train_fraction, val_fraction, test_fraction) must "
            f"be three numbers >= 0 summing to 1. Received: {tuple(fractions)}."
        )
