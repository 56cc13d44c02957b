"""The labels a synthetic cohort comes with: LUNA16's CSVs and the fake PHI it wrote."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from sparkdl.synth.anatomy import sample_negatives
from sparkdl.synth.phantom import Phantom

ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "malignancy")
CANDIDATE_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "class")


def write_labels(
    out: Path,
    nodules: list[tuple[str, float, float, float, float, int]],
    candidates: list[tuple[str, float, float, float, int]],
    phi: set[str],
) -> tuple[Path, Path, Path]:
    """``annotations.csv`` (``nodules``: series UID, centre, diameter, malignancy),
    ``candidates.csv`` (LUNA16 columns) and ``phi.json``."""
    annotations_csv, candidates_csv, phi_json = (
        out / "annotations.csv",
        out / "candidates.csv",
        out / "phi.json",
    )
    write_csv(
        annotations_csv,
        ANNOTATION_COLUMNS,
        [
            (uid, f"{x:.3f}", f"{y:.3f}", f"{z:.3f}", f"{diameter:.2f}", malignancy)
            for uid, x, y, z, diameter, malignancy in nodules
        ],
    )
    write_csv(
        candidates_csv,
        CANDIDATE_COLUMNS,
        [(uid, f"{x:.3f}", f"{y:.3f}", f"{z:.3f}", label) for uid, x, y, z, label in candidates],
    )
    phi_json.write_text(
        json.dumps(sorted(phi), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return annotations_csv, candidates_csv, phi_json


def write_csv(path: Path, header: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(header)
        out.writerows(rows)


def candidate_rows(
    series_uid: str,
    phantom: Phantom,
    negatives: list[tuple[float, float, float]],
    rng: np.random.Generator,
    extra: int | None,
) -> list[tuple[str, float, float, float, int]]:
    """``candidates.csv`` rows of one series, shuffled: its nodules (class 1), the sampled
    negatives and ``extra`` more (two thirds in the lungs, one third on vessels)."""
    rows = [(series_uid, *n.center, 1) for n in phantom.nodules]
    rows += [(series_uid, *p, 0) for p in negatives]
    if extra:
        in_lungs = extra - extra // 3
        rows += [(series_uid, *p, 0) for p in sample_negatives(rng, phantom, in_lungs, extra // 3)]
    return [rows[i] for i in rng.permutation(len(rows))]
