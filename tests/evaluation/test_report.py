"""The evaluation report's numbers and pictures: confusion matrix, AUC interval, the summary's
caution on a small split, training curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def test_binary_metrics_confusion_matrix() -> None:
    from sparkdl.evaluation.report import binary_metrics

    metrics = binary_metrics(np.array([0, 0, 0, 1, 1]), np.array([0.1, 0.6, 0.2, 0.9, 0.4]), 0.5)
    assert metrics["confusion_matrix"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 1}
    assert (metrics["sensitivity"], metrics["specificity"]) == (0.5, pytest.approx(2 / 3))
    assert metrics["auc"] == pytest.approx(5 / 6)


def test_auc_interval_is_wide_on_few_patients_and_narrows_with_more() -> None:
    from sklearn.metrics import roc_auc_score

    from sparkdl.evaluation.report import auc_interval

    rng = np.random.default_rng(0)

    def split(n_pos: int, n_neg: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
        return y, rng.normal(y * 1.5, 1.0)  # a separation of AUC ~0.86

    small, large = split(5, 20), split(200, 800)
    (low_s, high_s), (low_l, high_l) = auc_interval(*small), auc_interval(*large)
    assert low_s <= roc_auc_score(*small) <= high_s and low_l <= roc_auc_score(*large) <= high_l
    assert high_s - low_s > 2 * (high_l - low_l)
    assert low_l < 0.86 < high_l
    assert auc_interval(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1])) == (1.0, 1.0)
    assert auc_interval(np.zeros(4), np.arange(4.0)) is None  # one class: no AUC


def test_summary_warns_on_a_small_split() -> None:
    from sparkdl.evaluation.report import auc_interval, binary_metrics, summary_text

    def summary(y: np.ndarray, s: np.ndarray) -> str:
        return summary_text(
            {
                "task": "nodule",
                "model": "cnn3d",
                "split": "test",
                **binary_metrics(y, s, 0.5),
                "auc_ci95": auc_interval(y, s),
            }
        )

    tiny = summary(np.array([1, 0, 0, 0, 0]), np.array([0.9, 0.1, 0.2, 0.3, 0.4]))
    assert "AUC: 1.000 (95 % bootstrap interval 1.000-1.000)" in tiny
    assert "caution: 1 positive and 4 negative patches" in tiny
    y = np.r_[np.ones(20), np.zeros(60)]
    assert "caution" not in summary(y, np.random.default_rng(0).normal(y, 1.0))


def test_training_curves_from_history(tmp_path: Path) -> None:
    from sparkdl.evaluation.plots import plot_training_curves

    model_dir = tmp_path / "m"
    model_dir.mkdir()
    assert not plot_training_curves(str(model_dir), str(tmp_path / "none.png"))  # no history
    history = {
        "epoch": [2, 3, 4],
        "metrics": {
            "loss": [0.7, 0.5, 0.4],
            "val_loss": [0.8, 0.6, 0.5],
            "auc": [0.6, 0.8, 0.9],
            "val_auc": [0.5, 0.7, 0.85],
        },
    }
    (model_dir / "history.json").write_text(json.dumps(history))
    assert plot_training_curves(str(model_dir), str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
