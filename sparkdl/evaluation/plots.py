"""The pictures of an evaluation report: ROC, FROC and the training curves (PNG).

``sparkdl evaluate`` writes ``R/roc.png``, ``R/froc.png`` (with candidate patches) and
``R/curves.png``: loss and AUC per epoch, train and validation, from ``M/history.json``, so
that a report shows how training went (still learning at the end? validation drifting from
training?) as well as where it ended. Each draws on a bare matplotlib ``Figure``: off-screen,
without switching the caller's pyplot backend (notebooks).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sparkdl.evaluation.froc import FP_RATES, FrocResult, format_rate
from sparkdl.store.storage import join, local_path
from sparkdl.store.tables import LUNG_WINDOW
from sparkdl.training.artifact import HISTORY_FILE

#: (metric, title) per panel; Keras names the validation series ``val_<metric>``.
PANELS = (("loss", "loss (binary cross-entropy)"), ("auc", "AUC"))


def plot_training_curves(model_dir: str, path: str) -> bool:
    """Draw the curves of the model in ``model_dir`` to ``path`` (PNG); False without history."""
    history_path = Path(local_path(join(model_dir, HISTORY_FILE)))
    if not history_path.is_file():
        return False
    history: dict[str, Any] = json.loads(history_path.read_text())
    metrics: dict[str, list[float]] = history.get("metrics", {})
    if not metrics.get("loss"):
        return False
    # A bare Figure draws off-screen without switching the caller's pyplot backend (notebooks).
    from matplotlib.figure import Figure

    epochs = [int(e) + 1 for e in history.get("epoch", range(len(metrics["loss"])))]
    fig = Figure(figsize=(9, 3.6), dpi=100)
    for ax, (name, title) in zip(fig.subplots(1, len(PANELS)), PANELS, strict=True):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = metrics.get(prefix + name)
            if values:
                ax.plot(epochs[-len(values) :], values, marker="o", ms=3, label=label)
        ax.set(xlabel="epoch", title=title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return True


def plot_roc(
    y_true: npt.NDArray[Any], scores: npt.NDArray[Any], auc: float | None, title: str, path: str
) -> None:
    """The ROC curve of ``scores`` against ``y_true`` to ``path`` (PNG), chance dashed."""
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    ax = fig.subplots()
    if auc is not None:
        fpr, tpr, _ = roc_curve(y_true, scores)
        ax.plot(fpr, tpr, lw=2, label=f"AUC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def plot_froc(
    result: FrocResult,
    path: str | os.PathLike[str],
    *,
    cpm_ci95: tuple[float, float] | None = None,
) -> None:
    """Draw the FROC curve to ``path`` (PNG), as the script does: log2 FP axis 1/8 to 8."""
    from matplotlib.figure import Figure

    # The script plots np.interp of the curve on this grid, straight in linear FP/scan.
    grid = np.linspace(FP_RATES[0], FP_RATES[-1], 10001)
    label = f"CPM = {format_rate(result.cpm)}"
    if cpm_ci95 is not None:
        label += f" (95 % CI {format_rate(cpm_ci95[0])}–{format_rate(cpm_ci95[1])})"
    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.subplots()
    ax.plot(grid, np.interp(grid, result.fp_per_scan, result.sensitivity), lw=2, label=label)
    ax.plot(FP_RATES, result.sensitivity_at_fp_rates, "o", color="C1", label="CPM FP rates")
    ax.set_xscale("log", base=2)
    ax.set_xticks(FP_RATES, labels=[f"{r:g}" for r in FP_RATES])
    ax.minorticks_off()
    ax.set(
        xlim=(FP_RATES[0], FP_RATES[-1]),
        ylim=(0, 1),
        xlabel="Average number of false positives per scan",
        ylabel="Sensitivity",
        title=f"FROC: {result.num_scans} scans, {result.num_nodules} nodules",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def plot_detections(volume: dict[str, Any], detections: Sequence[Any], path: str) -> bool:
    """The axial slice through each detection of one volume, a ring of its estimated size
    (at least 6 mm across) around the centre, its probability in the title; False when none
    of ``detections`` lies in ``volume`` (a series split into several volumes)."""
    from matplotlib.figure import Figure

    from sparkdl.geometry import Geometry

    array = np.asarray(volume["volume"])
    geometry = Geometry.of(volume)
    inside = []
    for item in detections:
        zyx = geometry.to_voxel(np.asarray(item.center, dtype=np.float64))
        if np.all(zyx > -0.5) and np.all(zyx < np.array(array.shape) - 0.5):
            inside.append((item, zyx))
    if not inside:
        return False
    level, width = LUNG_WINDOW
    fig = Figure(figsize=(3.6 * len(inside), 4.0), dpi=100)
    for ax, (item, (z, y, x)) in zip(fig.subplots(1, len(inside), squeeze=False)[0], inside):
        spacing = geometry.spacing
        ax.imshow(
            array[round(z)],
            cmap="gray",
            vmin=level - width / 2,
            vmax=level + width / 2,
            aspect=spacing[1] / spacing[2],
            interpolation="nearest",
        )
        radius_px = max(item.diameter_mm, 6.0) / 2.0 / spacing[2] + 2.0
        ax.add_patch(_ring((x, y), radius_px))
        size = f", {item.diameter_mm:.0f} mm" if item.diameter_mm > 0 else ""
        ax.set_title(f"p = {item.probability:.2f}{size}\nslice {round(z)}", fontsize=11)
        ax.set_axis_off()
    fig.suptitle(f"series ...{str(volume['series_uid'])[-12:]}: top detections", fontsize=12)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.9))  # room for the suptitle
    fig.savefig(path)
    return True


def _ring(center: tuple[float, float], radius: float) -> Any:
    from matplotlib.patches import Circle

    return Circle(center, radius, fill=False, edgecolor="red", linewidth=1.5)
