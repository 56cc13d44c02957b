"""Evaluation of a trained model on the test split: ``R/metrics.json``, ``R/roc.png``,
``R/summary.txt``, and ``R/curves.png`` (the training curves, :mod:`sparkdl.evaluation.plots`).

Runs in one process (no Spark): the test split is small next to the train split, and the
model reads it through :func:`sparkdl.training.tfdata.make_dataset` unshuffled and unaugmented, with
the window and task the model was trained with (from ``M/config.json``).

The operating threshold is ``TrainConfig.threshold`` (default 0.5), fixed before looking at
the test split: training weighs the classes equally, so 0.5 sits where the loss balances
sensitivity and specificity. AUC is threshold-free.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sparkdl.errors import InputError
from sparkdl.evaluation.plots import plot_roc, plot_training_curves
from sparkdl.store.layout import Dataset
from sparkdl.store.storage import local_path
from sparkdl.store.tables import LABEL_FIELDS, PATCHES, patch_shape
from sparkdl.training.artifact import load_model, load_training_config

logger = logging.getLogger(__name__)

#: Fewer rows of either class than this in the evaluated split: the summary says the AUC is
#: not to be trusted (a split of 1-2 patients happens with 30 patients and 15 % test).
FEW_ROWS = 10


def binary_metrics(
    y_true: npt.NDArray[Any], scores: npt.NDArray[Any], threshold: float
) -> dict[str, Any]:
    """AUC, confusion matrix, sensitivity, specificity, precision at ``threshold``."""
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    predicted = (scores >= threshold).astype(int)
    tp = int(((predicted == 1) & (y_true == 1)).sum())
    tn = int(((predicted == 0) & (y_true == 0)).sum())
    fp = int(((predicted == 1) & (y_true == 0)).sum())
    fn = int(((predicted == 0) & (y_true == 1)).sum())
    both = len(np.unique(y_true)) == 2

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    return {
        "n": len(y_true),
        "positives": int(y_true.sum()),
        "auc": float(roc_auc_score(y_true, scores)) if both else None,
        "threshold": float(threshold),
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "precision": ratio(tp, tp + fp),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def auc_interval(
    y_true: npt.NDArray[Any], scores: npt.NDArray[Any], *, rounds: int = 1000, seed: int = 0
) -> tuple[float, float] | None:
    """95 % stratified-bootstrap interval of the AUC (None without both classes).

    Positives and negatives are resampled separately, so every round keeps both classes and
    the class balance of the split. A test split of a few patients gives a wide interval:
    the point AUC alone would look more certain than it is. At perfect separation every
    resample separates too and the interval collapses to (1, 1), as DeLong's would; the
    summary then warns when either class has few rows (:data:`FEW_ROWS`).
    """
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positives, negatives = scores[y_true == 1], scores[y_true == 0]
    if not len(positives) or not len(negatives):
        return None
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    aucs = [
        roc_auc_score(
            labels,
            np.r_[rng.choice(positives, len(positives)), rng.choice(negatives, len(negatives))],
        )
        for _ in range(rounds)
    ]
    low, high = np.percentile(aucs, [2.5, 97.5])
    return float(low), float(high)


def _predict_split(
    model: Any, data: Dataset, split: str, label_field: str, window: tuple[float, float]
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]:
    from sparkdl.training.tfdata import ReadOptions, make_dataset

    options = ReadOptions(shuffle=False, label_field=label_field, augment=False, window=window)
    ds = make_dataset(data, batch_size=64, split=split, num_epochs=1, options=options)
    labels, scores = [], []
    for x, y in ds:
        scores.append(model(x, training=False).numpy().reshape(-1))
        labels.append(y.numpy().reshape(-1))
    if not labels:
        return np.empty(0), np.empty(0)
    return np.concatenate(labels), np.concatenate(scores)


def summary_text(metrics: dict[str, Any]) -> str:
    """A few human-readable lines of ``metrics``."""

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    cm = metrics["confusion_matrix"]
    lines = [
        f"task: {metrics['task']} ({metrics['model']}), split: {metrics['split']}",
        f"patches: {metrics['n']} ({metrics['positives']} positive)",
        f"AUC: {fmt(metrics['auc'])}"
        + (
            f" (95 % bootstrap interval {metrics['auc_ci95'][0]:.3f}-{metrics['auc_ci95'][1]:.3f})"
            if metrics.get("auc_ci95")
            else ""
        ),
        f"at threshold {metrics['threshold']:.2f}: sensitivity {fmt(metrics['sensitivity'])}, "
        f"specificity {fmt(metrics['specificity'])}, precision {fmt(metrics['precision'])}",
        f"confusion matrix: TP {cm['tp']}  FN {cm['fn']}  FP {cm['fp']}  TN {cm['tn']}",
    ]
    negatives = metrics["n"] - metrics["positives"]
    if min(metrics["positives"], negatives) < FEW_ROWS:
        lines.append(
            f"caution: {metrics['positives']} positive and {negatives} negative patches "
            "are too few for a stable AUC; evaluate on more patients"
        )
    if "froc" in metrics:
        froc = metrics["froc"]
        interval = froc.get("cpm_ci95")
        points = ", ".join(
            f"{rate}: {fmt(value)}" for rate, value in froc["sensitivity_at_fp_per_scan"].items()
        )
        lines += [
            f"CPM (LUNA16): {fmt(froc['cpm'])}"
            + (
                f" (95 % bootstrap interval {interval[0]:.3f}-{interval[1]:.3f})"
                if interval and None not in interval
                else ""
            )
            + f" over {froc['num_scans']} scans, {froc['num_nodules']} nodules",
            f"sensitivity at FP/scan {points}",
        ]
        stage = froc.get("candidate_stage")
        if stage:
            lines.append(
                f"candidate generation: {stage['nodules_hit']} of {stage['nodules']} nodules hit "
                f"(sensitivity {fmt(stage['sensitivity'])}), "
                f"{stage['candidates_per_scan_median']:.0f} candidates per scan (median)"
            )
    if "malignancy_auc" in metrics:
        lines.append(
            f"malignancy AUC: {fmt(metrics['malignancy_auc'])} "
            f"({metrics['malignancy_n']} patches with a known malignancy)"
        )
    return "\n".join(lines) + "\n"


def evaluate(
    data: Dataset | str, model_dir: str, report_dir: str, *, split: str = "test"
) -> dict[str, Any]:
    """Score ``data``'s patches (``split``) with the model in ``model_dir``; write the report.

    Returns the metrics written to ``report_dir/metrics.json``: ``auc``, ``auc_ci95`` (its 95 %
    stratified-bootstrap interval, None with one class), ``n``, ``positives``,
    ``threshold``, ``sensitivity``, ``specificity``, ``precision``, ``confusion_matrix``,
    plus ``malignancy_auc``/``malignancy_n`` for a malignancy model (rows with malignancy -1
    are not scored). ``report_dir`` must be a local folder.
    """
    trained = load_training_config(model_dir)
    config = trained["config"]
    dataset = Dataset.of(data)
    url = dataset.url(PATCHES)
    label_field = LABEL_FIELDS[config["task"]]
    model = load_model(model_dir)
    y_true, scores = _predict_split(model, dataset, split, label_field, tuple(config["window"]))
    if len(y_true) == 0:
        raise InputError(
            f"The {split} split of {url} holds no rows with a known {label_field}. "
            "Expected some: check the split fractions of the ingest config."
        )
    metrics = {
        "task": config["task"],
        "model": config["model"],
        "split": split,
        "data_url": url,
        **binary_metrics(y_true, scores, config["threshold"]),
        "auc_ci95": auc_interval(y_true, scores),
    }
    if label_field == "malignancy":
        metrics["malignancy_auc"], metrics["malignancy_n"] = metrics["auc"], metrics["n"]
    out = Path(local_path(report_dir))
    out.mkdir(parents=True, exist_ok=True)
    if label_field == "label":
        from sparkdl.evaluation.froc_report import candidate_froc

        window = (float(config["window"][0]), float(config["window"][1]))
        shape, _ = patch_shape(url)
        found = candidate_froc(dataset, model_dir, split, window, shape, out)
        if found is not None:
            metrics["froc"] = found
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    (out / "summary.txt").write_text(summary_text(metrics))
    plot_roc(
        y_true, scores, metrics["auc"], f"{config['task']} ({split} split)", str(out / "roc.png")
    )
    plot_training_curves(model_dir, str(out / "curves.png"))
    logger.debug("evaluate: %s", summary_text(metrics).replace("\n", "; "))
    return metrics
