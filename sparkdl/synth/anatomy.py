"""A random chest: one patient's organs, lung vessel trees and nodules, and lung points.

:func:`make_phantom` draws a :class:`~sparkdl.synth.phantom.Phantom` (sizes and positions,
then branching vessel trees from each hilum, then nodules that fit in the lung parenchyma
apart from each other); :func:`sample_lung_point` and :func:`sample_negatives` pick points
in its lungs. Everything here is a pure function of its inputs and a
``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import numpy as np
import numpy.typing as npt

from sparkdl.errors import ConfigError, SparkdlError
from sparkdl.synth.phantom import Attachment, Margin, Nodule, Phantom, Texture, Vessel, lung_mask


def make_phantom(
    rng: np.random.Generator,
    *,
    min_nodule_radius_mm: float,
    num_nodules: int,
    pleural_fraction: float = 0.0,
    vascular_fraction: float = 0.0,
) -> Phantom:
    """Draw one patient's anatomy, lung vessels and ``num_nodules`` nodules.

    ``min_nodule_radius_mm`` is the smallest radius the patient's coarsest series resolves: the
    inscribed sphere of every nodule is at least that big, so the voxel nearest to a nodule
    centre always holds nodule tissue.

    ``pleural_fraction`` and ``vascular_fraction`` are the expected shares of nodules placed
    against the pleura (juxtapleural) and against a vessel (juxtavascular), the places where
    candidate detectors miss nodules. At their default 0 nothing more is drawn from ``rng``,
    so a phantom is the same as before these options existed.
    """
    _check_fraction("pleural_fraction", pleural_fraction)
    _check_fraction("vascular_fraction", vascular_fraction)
    _check_fraction("pleural_fraction + vascular_fraction", pleural_fraction + vascular_fraction)
    cx, cy = rng.uniform(-15, 15), rng.uniform(-30, 30)
    ax, ay = rng.uniform(130, 150), rng.uniform(95, 115)
    zc = rng.uniform(-260, -140)
    lz = rng.uniform(100, 122)
    lung_y = cy - 0.05 * ay
    phantom = Phantom(
        center=(cx, cy),
        body_axes=(ax, ay),
        fat_mm=rng.uniform(8, 16),
        lung_centers=((cx - 0.45 * ax, lung_y, zc), (cx + 0.45 * ax, lung_y, zc)),
        lung_axes=(0.30 * ax, 0.62 * ay, lz),
        heart_center=(cx + 0.12 * ax, cy - 0.30 * ay, zc - 0.45 * lz),
        heart_axes=(0.30 * ax, 0.36 * ay, 0.45 * lz),
        aorta=(cx + 0.17 * ax, cy + 0.42 * ay, rng.uniform(10, 13)),
        spine=(cx, cy + 0.66 * ay, rng.uniform(14, 17)),
        rib_period_mm=rng.uniform(22, 28),
        vessels=(),
        nodules=(),
    )
    vessels = tuple(v for lung in (0, 1) for v in _vessel_tree(rng, phantom, lung))
    phantom = replace(phantom, vessels=vessels)
    nodules: list[Nodule] = []
    for _ in range(num_nodules):
        attached_to: Attachment = "none"
        if pleural_fraction > 0 or vascular_fraction > 0:
            u = rng.uniform()
            if u < pleural_fraction:
                attached_to = "pleura"
            elif u < pleural_fraction + vascular_fraction:
                attached_to = "vessel"
        nodules.append(_place_nodule(rng, phantom, nodules, min_nodule_radius_mm, attached_to))
    return replace(phantom, nodules=tuple(nodules))


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be between 0 and 1. Received: {value!r}")


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return v / float(np.linalg.norm(v))


def _vessel_tree(rng: np.random.Generator, phantom: Phantom, lung: int) -> list[Vessel]:
    """Three branching trees from the hilum of one lung, 7 segments each, 8 mm down to 2 mm."""
    lcx, lcy, lcz = phantom.lung_centers[lung]
    side = -1.0 if lung == 0 else 1.0  # lung 0 is the patient's right (-x in LPS)
    hilum = np.array([lcx - side * 0.6 * phantom.lung_axes[0], lcy, lcz + rng.uniform(-10, 20)])
    hu = float(rng.uniform(40, 200))
    out: list[Vessel] = []
    for vertical in (0.8, 0.0, -0.8):
        root = _unit(np.array([side, rng.uniform(-0.4, 0.4), vertical + rng.uniform(-0.2, 0.2)]))
        stack = [(hilum, root, rng.uniform(3.2, 4.0), 0)]
        while stack:
            start, direction, radius, depth = stack.pop()
            end = start + direction * rng.uniform(30, 50)
            out.append(
                Vessel(
                    (float(start[0]), float(start[1]), float(start[2])),
                    (float(end[0]), float(end[1]), float(end[2])),
                    float(radius),
                    hu,
                )
            )
            if depth < 2:
                for sign in (-1.0, 1.0):
                    bend = _unit(rng.normal(size=3)) * 0.6 * sign
                    child = _unit(direction + bend - (bend @ direction) * direction)
                    stack.append((end, child, max(radius * 0.65, 1.0), depth + 1))
    return out


def _random_rotation(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation: npt.NDArray[np.float64] = q * np.sign(np.diag(r))
    return rotation


def _neighbour_directions() -> npt.NDArray[np.float64]:
    """The 26 unit directions to a voxel's neighbours."""
    dirs = np.array(
        [
            [i, j, k]
            for i in (-1, 0, 1)
            for j in (-1, 0, 1)
            for k in (-1, 0, 1)
            if (i, j, k) != (0, 0, 0)
        ],
        dtype=float,
    )
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return dirs


_DIRECTIONS = _neighbour_directions()


def _fits(phantom: Phantom, center: npt.NDArray[np.float64], radius: float) -> bool:
    """Whether a ball of ``radius`` around ``center`` lies in the lung parenchyma."""
    dirs = _DIRECTIONS
    pts = np.vstack([center, center + radius * dirs, center + 0.5 * radius * dirs])
    return bool(lung_mask(phantom, pts[:, 0], pts[:, 1], pts[:, 2]).all())


def sample_lung_point(
    rng: np.random.Generator, phantom: Phantom, clearance_mm: float
) -> npt.NDArray[np.float64]:
    """A uniform random point whose ball of ``clearance_mm`` lies in the lung parenchyma."""
    lx, ly, lz = phantom.lung_axes
    for _ in range(10_000):
        c = np.asarray(phantom.lung_centers[int(rng.integers(2))])
        p: npt.NDArray[np.float64] = c + rng.uniform(-1, 1, size=3) * np.array([lx, ly, lz])
        if _fits(phantom, p, clearance_mm):
            return p
    raise SparkdlError(f"synthetic phantom: no lung point with {clearance_mm:.1f} mm clearance")


def _place_nodule(
    rng: np.random.Generator,
    phantom: Phantom,
    others: list[Nodule],
    min_radius_mm: float,
    attached_to: Attachment = "none",
) -> Nodule:
    # rng.choice of a list of the literals returns one of them (as np.str_).
    """Long: the placement rules (free lung, against the pleura, beside a vessel) read best in
    one place."""
    texture = cast(
        Texture, str(rng.choice(["solid", "part_solid", "ground_glass"], p=[0.65, 0.15, 0.2]))
    )
    margin = cast(Margin, str(rng.choice(["smooth", "lobulated", "spiculated"], p=[0.5, 0.3, 0.2])))
    if margin == "spiculated" and texture == "ground_glass":
        margin = "lobulated"
    axes = rng.uniform(0.85, 1.15, size=3)
    axes /= np.cbrt(axes.prod())
    lobulation = 0.0 if margin == "smooth" else float(rng.uniform(0.08, 0.18))
    # Inscribed radius = radius * min(axes) * (1 - lobulation) must reach min_radius_mm; on
    # very coarse grids (image_size < ~40) that floor can exceed the 30 mm ceiling, and wins.
    floor = 2.0 * min_radius_mm / (np.min(axes) * (1.0 - lobulation))
    band = rng.choice(3, p=[0.6, 0.3, 0.1])
    diameter = max(min(float(rng.uniform(*[(4, 10), (10, 20), (20, 30)][band])), 30.0), floor)
    radius = diameter / 2.0
    spicules: tuple[tuple[float, float, float, float], ...] = ()
    if margin == "spiculated":
        spicules = tuple(
            (*_unit(rng.normal(size=3)), float(radius * rng.uniform(1.3, 1.8)))
            for _ in range(int(rng.integers(6, 12)))
        )
    # Malignancy follows what a radiologist sees (size first, then margin and texture, as in
    # the Brock model), strongly enough that a model can learn it from a few hundred nodules:
    # this logit ranks malignant above benign with AUC ~0.90 (size alone ~0.83).
    logit = (
        -6.0
        + 0.4 * diameter
        + {"smooth": 0.0, "lobulated": 1.5, "spiculated": 3.0}[margin]
        + {"solid": 0.8, "part_solid": 1.5, "ground_glass": 0.0}[texture]
    )
    malignant = bool(rng.uniform() < 1.0 / (1.0 + np.exp(-logit)))
    nodule = Nodule(
        center=(0.0, 0.0, 0.0),
        radius_mm=radius,
        axes=(float(axes[0]), float(axes[1]), float(axes[2])),
        rotation=tuple(map(tuple, _random_rotation(rng))),
        texture=texture,
        margin=margin,
        lobulation=lobulation,
        lobe_freq=(int(rng.integers(2, 4)), int(rng.integers(3, 6))),
        lobe_phase=float(rng.uniform(0, 2 * np.pi)),
        spicules=spicules,
        malignant=malignant,
    )
    reach = nodule.bounding_radius_mm + 2.0
    for _ in range(200):
        if attached_to == "pleura":
            c = _pleural_point(rng, phantom, nodule.radius_mm)
        elif attached_to == "vessel":
            c = _vascular_point(rng, phantom, nodule.radius_mm, nodule.body_radius_mm)
        else:
            c = sample_lung_point(rng, phantom, reach)
        if c is not None and all(
            np.linalg.norm(c - np.asarray(o.center)) > reach + o.bounding_radius_mm + 5.0
            for o in others
        ):
            centre = (float(c[0]), float(c[1]), float(c[2]))
            return replace(nodule, center=centre, attached_to=attached_to)
    raise SparkdlError("synthetic phantom: no room for another nodule in the lungs")


_RAY_STEPS = np.arange(0.0, 320.0, 0.25)  # mm


def _exit_distance(
    phantom: Phantom, start: npt.NDArray[np.float64], direction: npt.NDArray[np.float64]
) -> float:
    """How far (mm, to a quarter millimetre) a ray from a lung point runs in the lung."""
    pts = start + _RAY_STEPS[:, None] * direction
    outside = ~lung_mask(phantom, pts[:, 0], pts[:, 1], pts[:, 2])
    return float(_RAY_STEPS[int(np.argmax(outside))]) if outside.any() else float(_RAY_STEPS[-1])


def _depth(phantom: Phantom, point: npt.NDArray[np.float64]) -> float:
    """Distance (mm, approximately) from a lung point to the nearest pleural surface: the
    shortest exit along 26 directions."""
    return min(_exit_distance(phantom, point, d) for d in _DIRECTIONS)


def _pleural_point(
    rng: np.random.Generator, phantom: Phantom, radius: float
) -> npt.NDArray[np.float64] | None:
    """A juxtapleural centre: a lung point 0.45–0.8 radii from the pleura, so the nodule body
    touches the chest wall, diaphragm or mediastinum with 80–95 % of it in the lung and the
    rest hidden in the wall (its centre is then near the centre a reader marks); None on a
    miss.

    Walks a random ray from a lung point to the pleura and backs off; kept only where the
    nearest surface (in any direction) is that close too, so the ray did not graze it.
    """
    start = sample_lung_point(rng, phantom, 2.0)
    direction = _unit(rng.normal(size=3))
    gap = float(rng.uniform(0.45, 0.8)) * radius
    travel = _exit_distance(phantom, start, direction) - gap
    if travel <= 0:
        return None
    centre: npt.NDArray[np.float64] = start + travel * direction
    depth = _depth(phantom, centre)
    return centre if 0.45 * radius <= depth <= 0.8 * radius else None


def _vascular_point(
    rng: np.random.Generator, phantom: Phantom, radius: float, body_radius: float
) -> npt.NDArray[np.float64] | None:
    """A juxtavascular centre: beside a vessel segment, the nodule overlapping the vessel's
    wall by 0.2–0.7 radii, with the whole body inside the lung; None on a miss."""
    vessel = phantom.vessels[int(rng.integers(len(phantom.vessels)))]
    a, b = np.asarray(vessel.start), np.asarray(vessel.end)
    axis = _unit(b - a)
    side = rng.normal(size=3)
    side = _unit(side - (side @ axis) * axis)
    on_axis = a + float(rng.uniform(0.15, 0.85)) * (b - a)
    offset = vessel.radius_mm + float(rng.uniform(0.3, 0.8)) * radius
    centre: npt.NDArray[np.float64] = on_axis + offset * side
    if not lung_mask(phantom, centre[0:1], centre[1:2], centre[2:3])[0]:
        return None
    return centre if _depth(phantom, centre) >= body_radius + 1.0 else None


def sample_negatives(
    rng: np.random.Generator, phantom: Phantom, num_lung: int, num_vessel: int
) -> list[tuple[float, float, float]]:
    """Non-nodule candidate points: random lung points and points on vessel centre lines,
    all at least 5 mm outside every nodule."""

    def clear(p: npt.NDArray[np.float64]) -> bool:
        return all(
            np.linalg.norm(p - np.asarray(n.center)) > n.bounding_radius_mm + 5.0
            for n in phantom.nodules
        )

    points: list[npt.NDArray[np.float64]] = []
    while len(points) < num_lung:
        p = sample_lung_point(rng, phantom, 2.0)
        if clear(p):
            points.append(p)
    vessels = [v for v in phantom.vessels if v.radius_mm >= 1.5]
    for _ in range(num_vessel * 100):
        if len(points) >= num_lung + num_vessel:
            break
        v = vessels[int(rng.integers(len(vessels)))]
        p = np.asarray(v.start) + rng.uniform(0.1, 0.9) * (np.asarray(v.end) - np.asarray(v.start))
        if clear(p) and lung_mask(phantom, p[0:1], p[1:2], p[2:3])[0]:
            points.append(p)
    return [(float(p[0]), float(p[1]), float(p[2])) for p in points]
