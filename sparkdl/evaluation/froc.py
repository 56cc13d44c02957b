"""LUNA16 FROC analysis of a nodule detector: the FROC curve, the CPM and its bootstrap interval.

The definitions are those of the challenge's evaluation script ``noduleCADEvaluationLUNA16.py``
(LUNA16 ``evaluationScript.zip``; read in the copy kept at ``fionaxzhou/cancer``), functions
``evaluateCAD``, ``computeFROC``, ``computeFROC_bootstrap`` and ``compute_mean_ci``:

- Matching (``evaluateCAD``): a candidate hits a finding when its squared distance to the
  finding's centre (world mm) is strictly below ``(diameter_mm / 2) ** 2``; a negative diameter
  (``annotations_excluded.csv`` writes -1) means 10 mm. Each scan keeps only its most probable
  marks, those above the 101st highest probability (``noduleCADEvaluation`` passes
  ``maxNumberOfCADMarks=100``): ties at that value all go.
- A nodule hit by several candidates counts once, with the highest probability; one candidate
  may detect two overlapping nodules. A candidate on an excluded finding and on no nodule is
  ignored (``bOtherNodulesAsIrrelevant``); any other candidate is a false positive.
- ``computeFROC``: at each threshold, FP/scan is the false positives at or above it divided by
  the number of scans in ``series_ids`` (with or without candidates), and sensitivity is the
  nodules detected at or above it divided by all nodules of those scans, missed ones included.
  The curve's points are ``sklearn.metrics.roc_curve``'s (collinear points dropped), from (0, 0).
- The CPM (Setio et al. 2017, Med Image Anal 42:1-13) is the mean sensitivity at 1/8 ... 8 FP
  per scan, read off the curve by linear interpolation over FP/scan as the script's
  ``np.interp`` does: at a vertical step the upper value, past the curve's end its last value.
  (The organisers' 2025 CPM calculator, DIAG Radboudumc, takes the nearest curve point
  instead, ``getCPM``; the two differ by at most one step of the curve.)
- ``computeFROC_bootstrap``: scans are drawn with replacement, as many as there are; the FP
  divisor stays the number of scans; bounds are the sorted values at ``floor(Pz * n)`` and
  ``floor((1 - Pz) * n)``, ``Pz = (1 - 0.95) / 2``. The script bands each FP rate; here the
  bounds are taken over each draw's CPM.

Departures, all at edges the script does not handle: a curve without any detected nodule has
sensitivity 0, not NaN (as the organisers' later CPM calculator does); candidates of a scan
outside ``series_ids`` are an error, not silently dropped; FP rates are compared as counts, so
the script's float rounding of ``fpr * FPs / scans`` cannot move a point off a step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from sparkdl.errors import DataError
from sparkdl.evaluation.froc_matching import match_marks

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

#: False positives per scan at which the CPM averages the sensitivity.
FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Marks kept per scan, the most probable ones, as in the official evaluation.
MAX_CANDIDATES_PER_SCAN = 100

#: Elements of one bootstrap block (draws × marks): bounds the memory at ~100 MB.
_BLOCK_ELEMENTS = 2_000_000
#: Marks per scan in the first prefix of the ranking a bootstrap draw reads: twice 8 FP/scan.
_PREFIX_MARKS_PER_SCAN = 16


@dataclass(frozen=True, eq=False)
class FrocResult:
    """The FROC analysis of one set of candidates; see :func:`froc`.

    ``fp_per_scan``, ``sensitivity`` and ``thresholds`` are the curve, one point per threshold
    from ``(0, 0)`` at ``inf`` down to the lowest probability. ``marks_*`` and
    ``nodules_per_scan`` are the FROC list the curve is built from (one mark per detected nodule,
    at its best probability, and one per false positive), kept for :func:`froc_bootstrap`.
    ``num_candidates`` counts the candidates kept by the per-scan cap, ``num_detected`` the
    nodules hit, ``num_excluded_hits`` the candidates ignored on excluded findings.
    """

    fp_per_scan: FloatArray
    sensitivity: FloatArray
    thresholds: FloatArray
    sensitivity_at_fp_rates: FloatArray
    cpm: float
    num_scans: int
    num_nodules: int
    num_candidates: int
    num_detected: int
    num_false_positives: int
    num_excluded_hits: int
    marks_scan: IntArray
    marks_is_nodule: BoolArray
    marks_probability: FloatArray
    nodules_per_scan: IntArray


def froc(
    candidates: pd.DataFrame,
    annotations: pd.DataFrame,
    excluded: pd.DataFrame | None,
    series_ids: Sequence[str],
    *,
    max_candidates_per_scan: int | None = MAX_CANDIDATES_PER_SCAN,
) -> FrocResult:
    """FROC curve and CPM of ``candidates`` over the scans ``series_ids``.

    Frames use the LUNA16 CSV columns: ``candidates`` ``seriesuid, coordX, coordY, coordZ,
    probability`` (world mm; any finite score, only its order matters), ``annotations`` and
    ``excluded`` (``annotations_excluded.csv``, or None) ``seriesuid, coordX, coordY, coordZ,
    diameter_mm``. Findings of scans outside ``series_ids`` are ignored, as the script does
    (``annotations.csv`` covers all folds). ``max_candidates_per_scan=None`` keeps every mark.
    """
    if max_candidates_per_scan is not None and max_candidates_per_scan < 1:
        raise DataError(
            "max_candidates_per_scan must be a positive count or None (keep all). "
            f"Received: {max_candidates_per_scan!r}"
        )
    marks = match_marks(candidates, annotations, excluded, series_ids, max_candidates_per_scan)
    num_scans = len(marks.nodules_per_scan)
    num_nodules = int(marks.nodules_per_scan.sum())
    marks_is_nodule, marks_probability = marks.is_nodule, marks.probability
    ranked = _Ranked.of(marks_is_nodule, marks_probability)
    fp, tp = ranked.counts(np.ones((1, len(marks_probability))), len(ranked.run_ends))
    sensitivity_at = _at_fp_rates(fp, tp, num_scans)[0] / _or_nan(num_nodules)
    fp_kept, tp_kept, thresholds = _drop_collinear(fp[0], tp[0], ranked.thresholds())
    return FrocResult(
        fp_per_scan=fp_kept / num_scans,
        sensitivity=tp_kept / _or_nan(num_nodules),
        thresholds=thresholds,
        sensitivity_at_fp_rates=sensitivity_at,
        cpm=float(sensitivity_at.mean()),
        num_scans=num_scans,
        num_nodules=num_nodules,
        num_candidates=marks.num_candidates,
        num_detected=int(marks_is_nodule.sum()),
        num_false_positives=int((~marks_is_nodule).sum()),
        num_excluded_hits=marks.num_excluded_hits,
        marks_scan=marks.scan,
        marks_is_nodule=marks_is_nodule,
        marks_probability=marks_probability,
        nodules_per_scan=marks.nodules_per_scan,
    )


def froc_bootstrap(
    result: FrocResult, *, n_bootstraps: int = 1000, seed: int | None = 0
) -> tuple[float, float]:
    """95 % bootstrap interval of the CPM, resampling scans with replacement.

    Each draw takes ``num_scans`` scans with replacement (all draws at once:
    ``default_rng(seed).integers(0, num_scans, (n_bootstraps, num_scans))``), weights each
    scan's marks and nodules by how often it was drawn, and reads the CPM off that curve.
    Draws without any nodule have no sensitivity and are left out (logged).
    """
    if n_bootstraps < 1:
        raise DataError(f"n_bootstraps must be at least 1. Received: {n_bootstraps!r}")
    num_scans = result.num_scans
    draws = np.random.default_rng(seed).integers(0, num_scans, (n_bootstraps, num_scans))
    offsets = num_scans * np.arange(n_bootstraps)[:, None]
    times = np.bincount((draws + offsets).ravel(), minlength=draws.size)
    times = times.reshape(n_bootstraps, num_scans)
    ranked = _Ranked.of(result.marks_is_nodule, result.marks_probability)
    tp_at = _weighted_tp_at_fp_rates(ranked, result.marks_scan[ranked.order], times)
    nodules = (times @ result.nodules_per_scan).astype(np.float64)
    nodules[nodules == 0] = np.nan
    cpms = (tp_at / nodules[:, None]).mean(axis=1)
    defined = np.sort(cpms[~np.isnan(cpms)])
    if len(defined) < n_bootstraps:
        logger.warning(
            "froc_bootstrap: %d of %d draws hold no nodule; the interval uses the other %d",
            n_bootstraps - len(defined),
            n_bootstraps,
            len(defined),
        )
    if not len(defined):
        return math.nan, math.nan
    tail = (1.0 - 0.95) / 2.0
    low = defined[math.floor(tail * len(defined))]
    high = defined[math.floor((1.0 - tail) * len(defined))]
    return float(low), float(high)


def froc_metrics(
    result: FrocResult, *, cpm_ci95: tuple[float, float] | None = None
) -> dict[str, Any]:
    """The JSON-ready summary of ``result`` for ``metrics.json``; None where undefined."""
    return {
        "cpm": _number(result.cpm),
        "cpm_ci95": None if cpm_ci95 is None else [_number(v) for v in cpm_ci95],
        "sensitivity_at_fp_per_scan": {
            f"{rate:g}": _number(s)
            for rate, s in zip(FP_RATES, result.sensitivity_at_fp_rates, strict=True)
        },
        # At the lowest threshold: every kept candidate counts.
        "sensitivity": _number(result.num_detected / _or_nan(result.num_nodules)),
        "fp_per_scan": result.num_false_positives / result.num_scans,
        "num_scans": result.num_scans,
        "num_nodules": result.num_nodules,
        "num_candidates": result.num_candidates,
        "num_detected": result.num_detected,
        "num_false_positives": result.num_false_positives,
        "num_excluded_hits": result.num_excluded_hits,
    }


@dataclass(frozen=True)
class _Ranked:
    """Marks by decreasing probability, and where each run of equal probabilities ends."""

    order: IntArray
    is_nodule: BoolArray
    probability: FloatArray
    run_ends: IntArray

    @classmethod
    def of(cls, is_nodule: BoolArray, probability: FloatArray) -> _Ranked:
        order = np.argsort(-probability, kind="stable")
        ranked = probability[order]
        run_ends = np.flatnonzero(np.r_[np.diff(ranked) != 0, True])[: len(ranked)]
        return cls(order, is_nodule[order], ranked, run_ends)

    def counts(self, weights: npt.NDArray[Any], runs: int) -> tuple[FloatArray, FloatArray]:
        """Cumulative (FP, TP) counts at the first ``runs`` run ends, from the origin, per row
        of ``weights`` (rows × marks in rank order, at least up to the last of those runs)."""
        ends = self.run_ends[:runs]
        fp = np.zeros((len(weights), runs + 1))
        tp = np.zeros_like(fp)
        tp[:, 1:] = np.cumsum(weights * self.is_nodule[: weights.shape[1]], axis=1)[:, ends]
        fp[:, 1:] = np.cumsum(weights * ~self.is_nodule[: weights.shape[1]], axis=1)[:, ends]
        return fp, tp

    def thresholds(self) -> FloatArray:
        return np.concatenate(([np.inf], self.probability[self.run_ends]))


def _weighted_tp_at_fp_rates(
    ranked: _Ranked, scan_of_rank: IntArray, times: npt.NDArray[np.int64]
) -> FloatArray:
    """TP counts at :data:`FP_RATES` of each draw, its scans weighted by ``times`` (draws × scans).

    A draw's curve matters only until its FP count passes 8 per scan, a few hundred marks
    into the ranking, not all of it: each draw reads a prefix of the ranking, grown fourfold
    until its FP count passes that or the prefix is the whole ranking.
    """
    num_scans = times.shape[1]
    out = np.empty((len(times), len(FP_RATES)))
    todo = np.arange(len(times))
    length = _PREFIX_MARKS_PER_SCAN * num_scans
    while len(todo):
        runs = int(np.searchsorted(ranked.run_ends, length))  # runs ending inside the prefix
        whole = runs == len(ranked.run_ends)
        end = int(ranked.run_ends[runs - 1]) + 1 if runs else 0
        step = max(1, _BLOCK_ELEMENTS // max(1, end))
        left = []
        for start in range(0, len(todo), step):
            rows = todo[start : start + step]
            fp, tp = ranked.counts(times[rows][:, scan_of_rank[:end]], runs)
            done = whole | (fp[:, -1] > FP_RATES[-1] * num_scans)
            out[rows[done]] = _at_fp_rates(fp[done], tp[done], num_scans)
            left.append(rows[~done])
        todo = np.concatenate(left)
        length *= 4
    return out


def _at_fp_rates(fp: FloatArray, tp: FloatArray, num_scans: int) -> FloatArray:
    """TP counts at :data:`FP_RATES` per curve (rows of nondecreasing FP, TP counts).

    Equals ``np.interp(FP_RATES, fp / num_scans, tp)``: at an FP count equal to a point's,
    the last such point (the top of a vertical step); between points, linear; past the end,
    the last point.
    """
    rows = np.arange(len(fp))
    out = np.empty((len(fp), len(FP_RATES)))
    for j, rate in enumerate(FP_RATES):
        limit = rate * num_scans
        i = (fp <= limit).sum(axis=1) - 1
        after = np.minimum(i + 1, fp.shape[1] - 1)
        x0, x1, y0, y1 = fp[rows, i], fp[rows, after], tp[rows, i], tp[rows, after]
        step = np.where(x1 > x0, x1 - x0, 1.0)
        out[:, j] = y0 + np.where(x1 > x0, (limit - x0) / step, 0.0) * (y1 - y0)
    return out


def _drop_collinear(
    fp: FloatArray, tp: FloatArray, thresholds: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``roc_curve(drop_intermediate=True)``: drop points inside straight runs, not the origin."""
    if len(fp) > 3:
        bends = (np.diff(fp[1:], 2) != 0) | (np.diff(tp[1:], 2) != 0)
        keep = np.r_[True, True, bends, True]
        return fp[keep], tp[keep], thresholds[keep]
    return fp, tp, thresholds


def _or_nan(count: int) -> float:
    return float(count) if count else math.nan


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def format_rate(value: float) -> str:
    """A sensitivity or CPM for people: three decimals, or ``n/a`` when undefined."""
    return "n/a" if math.isnan(value) else f"{value:.3f}"
