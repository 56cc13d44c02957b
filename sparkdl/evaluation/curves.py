"""Training curves: loss and AUC per epoch, train and validation, drawn from ``M/history.json``.

``sparkdl evaluate`` writes them as ``R/curves.png`` next to the ROC plot, so that a report
shows how training went (still learning at the end? validation drifting from training?) as
well as where it ended.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sparkdl.store.storage import join, local_path

#: (metric, title) per panel; Keras names the validation series ``val_<metric>``.
PANELS = (("loss", "loss (binary cross-entropy)"), ("auc", "AUC"))


def plot_training_curves(model_dir: str, path: str) -> bool:
    """Draw the curves of the model in ``model_dir`` to ``path`` (PNG); False without history."""
    history_path = Path(local_path(join(model_dir, "history.json")))
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
