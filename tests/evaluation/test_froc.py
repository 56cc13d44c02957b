"""LUNA16 FROC and CPM: a hand-computed example, the script's edge rules, and a cross-check
against a transcription of the script's own loops (``evaluateCAD`` + ``computeFROC``)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import sparkdl.evaluation.froc
from sparkdl.evaluation.froc import (
    FP_RATES,
    froc,
    froc_bootstrap,
    froc_metrics,
)
from sparkdl.evaluation.froc_matching import CANDIDATE_COLUMNS, FINDING_COLUMNS
from sparkdl.evaluation.plots import plot_froc

# Hand-made example: scans A and B, four nodules, one excluded finding of unknown size.
#   A: N1 (0,0,0) d=10 (r 5), N2 (50,0,0) d=6 (r 3)
#   B: N3 (0,0,0) d=8 (r 4), N4 (-60,20,10) d=5 (never hit); excluded E (30,30,30) d=-1 (r 5)
ANNOTATIONS = pd.DataFrame(
    [
        ("A", 0.0, 0.0, 0.0, 10.0),
        ("A", 50.0, 0.0, 0.0, 6.0),
        ("B", 0.0, 0.0, 0.0, 8.0),
        ("B", -60.0, 20.0, 10.0, 5.0),
        ("Z", 0.0, 0.0, 0.0, 10.0),  # a scan outside the evaluated set: ignored
    ],
    columns=FINDING_COLUMNS,
)
EXCLUDED = pd.DataFrame([("B", 30.0, 30.0, 30.0, -1.0)], columns=FINDING_COLUMNS)
CANDIDATES = pd.DataFrame(
    [
        ("A", 1.0, 0.0, 0.0, 0.9),  # a1 hits N1
        ("A", 0.0, 2.0, 0.0, 0.6),  # a2 hits N1 again: ignored, N1 keeps 0.9
        ("A", 20.0, 0.0, 0.0, 0.8),  # a3 FP
        ("A", 50.0, 0.0, 2.9, 0.75),  # a4 hits N2 (2.9 < 3)
        ("A", 80.0, 0.0, 0.0, 0.5),  # a5 FP
        ("B", 32.0, 30.0, 30.0, 0.95),  # b1 on E (2 < 5, the 10 mm default): ignored
        ("B", -10.0, 0.0, 0.0, 0.7),  # b2 FP
        ("B", 0.0, 0.0, 4.0, 0.5),  # b3 exactly on N3's radius: not a hit (strict <), FP
        ("B", 0.0, 3.0, 0.0, 0.5),  # b4 hits N3
        ("B", 100.0, 100.0, 100.0, 0.5),  # b5 FP
        ("B", 5.0, 0.0, 0.0, 0.3),  # b6 FP (5 > 4)
    ],
    columns=CANDIDATE_COLUMNS,
)
# The FROC list by decreasing probability: 0.9 TP, 0.8 FP, 0.75 TP, 0.7 FP,
# 0.5 {TP, FP, FP, FP}, 0.3 FP. Cumulative (FP, TP) from the origin:
#   (0,0) (0,1) (1,1) (1,2) (2,2) (5,3) (6,3); 2 scans, 4 nodules.
# FP/scan 1/8 ... 8 are 0.25, 0.5, 1, 2, 4, 8, 16 FPs:
#   0.25, 0.5 -> between (0,1) and (1,1): TP 1 -> 1/4
#   1         -> on the vertical step (1,1)-(1,2): its top, TP 2 -> 1/2
#   2         -> on (2,2) -> 1/2
#   4         -> between (2,2) and (5,3): 2 + 2/3 -> 2/3
#   8, 16     -> past the end (6,3) -> 3/4 (N4 is never hit)
# CPM = (1/4 + 1/4 + 1/2 + 1/2 + 2/3 + 3/4 + 3/4) / 7 = 11/21.
HAND_SENSITIVITY = [0.25, 0.25, 0.5, 0.5, 2 / 3, 0.75, 0.75]
HAND_CPM = 11 / 21


def test_hand_example() -> None:
    result = froc(CANDIDATES, ANNOTATIONS, EXCLUDED, ["A", "B"])
    np.testing.assert_allclose(result.sensitivity_at_fp_rates, HAND_SENSITIVITY)
    assert result.cpm == pytest.approx(HAND_CPM)
    np.testing.assert_allclose(result.fp_per_scan, [0, 0, 0.5, 0.5, 1, 2.5, 3])
    np.testing.assert_allclose(result.sensitivity, [0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75])
    np.testing.assert_allclose(result.thresholds, [np.inf, 0.9, 0.8, 0.75, 0.7, 0.5, 0.3])
    # The script reads the curve with np.interp: same values.
    np.testing.assert_allclose(
        np.interp(FP_RATES, result.fp_per_scan, result.sensitivity), HAND_SENSITIVITY
    )
    counts = (
        result.num_scans,
        result.num_nodules,
        result.num_candidates,
        result.num_detected,
        result.num_false_positives,
        result.num_excluded_hits,
    )
    assert counts == (2, 4, 11, 3, 6, 1)


def test_scan_without_candidates_counts_in_fp_per_scan() -> None:
    # Scan C: no candidates, no nodules. 3 scans: 1/8 ... 8 FP/scan are 0.375 ... 24 FPs:
    #   0.375, 0.75 -> 1/4; 1.5 -> between (1,2) and (2,2) -> 1/2;
    #   3 -> between (2,2) and (5,3): 2 + 1/3 -> 7/12; 6 -> on (6,3) -> 3/4; 12, 24 -> 3/4
    # CPM = (1/4 + 1/4 + 1/2 + 7/12 + 3 * 3/4) / 7 = 23/42
    result = froc(CANDIDATES, ANNOTATIONS, EXCLUDED, ["A", "B", "C"])
    assert result.num_scans == 3
    assert result.fp_per_scan[-1] == pytest.approx(6 / 3)
    np.testing.assert_allclose(
        result.sensitivity_at_fp_rates, [0.25, 0.25, 0.5, 7 / 12, 0.75, 0.75, 0.75]
    )
    assert result.cpm == pytest.approx(23 / 42)


def test_several_hits_on_one_nodule_count_once_at_the_highest_probability() -> None:
    without_a2 = froc(CANDIDATES.drop(index=1), ANNOTATIONS, EXCLUDED, ["A", "B"])
    assert without_a2.cpm == pytest.approx(HAND_CPM)
    assert without_a2.num_detected == 3
    # a1 below a2: N1 is now detected at a2's 0.6, and 0.9 is no threshold any more.
    lowered = CANDIDATES.copy()
    lowered.loc[0, "probability"] = 0.1
    result = froc(lowered, ANNOTATIONS, EXCLUDED, ["A", "B"])
    assert result.num_detected == 3
    assert result.num_false_positives == 6
    assert 0.6 in result.marks_probability[result.marks_is_nodule]
    assert 0.9 not in result.thresholds and 0.1 not in result.thresholds


def test_candidate_on_an_excluded_finding_is_ignored() -> None:
    without_b1 = froc(CANDIDATES.drop(index=5), ANNOTATIONS, EXCLUDED, ["A", "B"])
    with_b1 = froc(CANDIDATES, ANNOTATIONS, EXCLUDED, ["A", "B"])
    np.testing.assert_array_equal(with_b1.fp_per_scan, without_b1.fp_per_scan)
    assert with_b1.num_false_positives == without_b1.num_false_positives == 6
    assert with_b1.num_excluded_hits == 1
    # Without the excluded list, b1 (0.95, the highest) is a false positive.
    no_excluded = froc(CANDIDATES, ANNOTATIONS, None, ["A", "B"])
    assert no_excluded.num_false_positives == 7
    assert no_excluded.thresholds[1] == 0.95
    assert no_excluded.cpm < HAND_CPM


def test_excluded_finding_without_diameter_gets_a_10_mm_one() -> None:
    near = CANDIDATES.iloc[:5].copy()
    near.loc[99] = ["B", 30.0, 30.0, 34.9, 0.99]  # 4.9 mm from E: inside 10 mm
    near.loc[100] = ["B", 30.0, 30.0, 25.0, 0.98]  # 5.0 mm: on the radius, outside
    result = froc(near, ANNOTATIONS, EXCLUDED, ["A", "B"])
    assert result.num_excluded_hits == 1
    assert result.num_false_positives == 2 + 1  # a3, a5 and the one 5 mm away


def test_a_nodule_never_hit_caps_the_sensitivity() -> None:
    result = froc(CANDIDATES, ANNOTATIONS, EXCLUDED, ["A", "B"])
    assert result.sensitivity.max() == pytest.approx(3 / 4)
    # Every nodule found at once, with no false positive: the curve is flat at 3/4.
    hits = CANDIDATES.iloc[[0, 3, 8]]
    flat = froc(hits, ANNOTATIONS, EXCLUDED, ["A", "B"])
    assert flat.num_false_positives == 0
    np.testing.assert_allclose(flat.sensitivity_at_fp_rates, [0.75] * 7)
    # Only false positives: sensitivity 0 everywhere, not NaN.
    misses = froc(CANDIDATES.iloc[[2, 4, 6]], ANNOTATIONS, EXCLUDED, ["A", "B"])
    assert misses.cpm == 0.0


def test_most_probable_marks_per_scan_as_evaluate_cad_keeps_them() -> None:
    # B's probabilities, high to low: 0.95 0.7 0.5 0.5 0.5 0.3. The cap keeps marks above
    # the (cap + 1)-th: cap 2 keeps > 0.5 (b1, b2); cap 3 keeps > 0.5 too (ties all go).
    for cap, kept_in_b in ((2, 2), (3, 2), (5, 5), (6, 6)):
        result = froc(CANDIDATES, ANNOTATIONS, EXCLUDED, ["A", "B"], max_candidates_per_scan=cap)
        assert result.num_candidates == min(cap, 5) + kept_in_b, cap


def test_order_of_scores_is_all_that_matters() -> None:
    p = CANDIDATES.probability
    logits = CANDIDATES.assign(probability=np.log(p / (1 - p)))  # beyond [0, 1]: accepted
    assert froc(logits, ANNOTATIONS, EXCLUDED, ["A", "B"]).cpm == pytest.approx(HAND_CPM)


def test_metrics_are_json_ready() -> None:
    result = froc(CANDIDATES, ANNOTATIONS, EXCLUDED, ["A", "B"])
    metrics = froc_metrics(result, cpm_ci95=(0.4, 0.6))
    assert json.loads(json.dumps(metrics)) == metrics
    assert metrics["cpm"] == pytest.approx(HAND_CPM)
    assert metrics["cpm_ci95"] == [0.4, 0.6]
    assert metrics["sensitivity_at_fp_per_scan"]["1"] == pytest.approx(0.5)
    assert list(metrics["sensitivity_at_fp_per_scan"]) == [f"{r:g}" for r in FP_RATES]
    assert (metrics["num_nodules"], metrics["sensitivity"], metrics["fp_per_scan"]) == (
        4,
        0.75,
        3.0,
    )
    # No nodule in the evaluated scans: sensitivity is undefined.
    none = froc_metrics(froc(CANDIDATES.iloc[:0], ANNOTATIONS.iloc[:0], None, ["A"]))
    assert none["cpm"] is None and none["sensitivity"] is None
    assert none["sensitivity_at_fp_per_scan"]["8"] is None


def test_plot_writes_a_png(tmp_path: Path) -> None:
    result = froc(CANDIDATES, ANNOTATIONS, EXCLUDED, ["A", "B"])
    path = tmp_path / "froc.png"
    plot_froc(result, path, cpm_ci95=(0.4, 0.6))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    undefined = froc(CANDIDATES.iloc[:0], ANNOTATIONS.iloc[:0], None, ["A"])
    plot_froc(undefined, tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.drop(columns="probability"), "lacks column"),
        (lambda c: c.assign(coordY=[np.nan] + [0.0] * 10), "coordY"),
        (lambda c: c.assign(coordZ=["x"] + [0.0] * 10), "non-numeric coordZ"),
        (lambda c: c.assign(probability=[np.inf] + [0.5] * 10), "probability"),
        (lambda c: c.assign(seriesuid=["Q"] + ["A"] * 10), "not in series_ids"),
    ],
)
def test_bad_candidates(change: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        froc(change(CANDIDATES), ANNOTATIONS, EXCLUDED, ["A", "B"])


def test_bad_findings_and_arguments() -> None:
    no_diameter = ANNOTATIONS.assign(diameter_mm=[np.nan, 6, 8, 5, 10])
    with pytest.raises(ValueError, match=r"annotations has 1 row.*diameter_mm"):
        froc(CANDIDATES, no_diameter, EXCLUDED, ["A", "B"])
    with pytest.raises(ValueError, match="excluded lacks column"):
        froc(CANDIDATES, ANNOTATIONS, EXCLUDED.drop(columns="diameter_mm"), ["A", "B"])
    with pytest.raises(ValueError, match="more than once"):
        froc(CANDIDATES, ANNOTATIONS, EXCLUDED, ["A", "B", "A"])
    with pytest.raises(ValueError, match="empty"):
        froc(CANDIDATES.iloc[:0], ANNOTATIONS, EXCLUDED, [])
    with pytest.raises(ValueError, match="not one string"):
        froc(CANDIDATES, ANNOTATIONS, EXCLUDED, "A")
    with pytest.raises(ValueError, match="max_candidates_per_scan"):
        froc(CANDIDATES, ANNOTATIONS, EXCLUDED, ["A", "B"], max_candidates_per_scan=0)
    result = froc(CANDIDATES, ANNOTATIONS, EXCLUDED, ["A", "B"])
    with pytest.raises(ValueError, match="n_bootstraps"):
        froc_bootstrap(result, n_bootstraps=0)


# --- The script's logic, transcribed loop by loop (slow), on a random example. ---


def random_study(
    seed: int, num_scans: int = 20, max_false_positives: int = 40, decimals: int = 2
) -> tuple[pd.DataFrame, ...]:
    """Nodules, excluded findings (some of unknown size), hits, near misses; probabilities
    rounded to ``decimals`` (2: many ties)."""
    rng = np.random.default_rng(seed)

    def probability(low: float, high: float) -> float:
        return round(float(rng.uniform(low, high)), decimals)

    ann, exc, cand = [], [], []

    def around(centre: np.ndarray[Any, Any], distance: float) -> list[float]:
        direction = rng.normal(size=3)
        return list(centre + distance * direction / np.linalg.norm(direction))

    for s in range(num_scans):
        uid = f"1.2.826.{s}"
        for _ in range(rng.integers(0, 4)):
            centre, diameter = rng.uniform(-150, 150, 3), rng.uniform(3, 30)
            ann.append((uid, *centre, diameter))
            for _ in range(rng.integers(0, 4)):
                inside = rng.uniform(0, 1.2) * diameter / 2
                cand.append((uid, *around(centre, inside), probability(0.3, 1.0)))
        for _ in range(rng.integers(0, 3)):
            centre = rng.uniform(-150, 150, 3)
            diameter = -1.0 if rng.random() < 0.5 else rng.uniform(3, 10)
            exc.append((uid, *centre, diameter))
            for _ in range(rng.integers(0, 3)):
                cand.append((uid, *around(centre, rng.uniform(0, 6)), probability(0.0, 1.0)))
        if rng.random() < 0.2:
            continue  # a scan with no false positive marks
        for _ in range(rng.integers(0, max_false_positives)):
            cand.append((uid, *rng.uniform(-150, 150, 3), probability(0.0, 0.8)))
    return (
        pd.DataFrame(cand, columns=CANDIDATE_COLUMNS),
        pd.DataFrame(ann, columns=FINDING_COLUMNS),
        pd.DataFrame(exc, columns=FINDING_COLUMNS),
        pd.Series([f"1.2.826.{s}" for s in range(num_scans)]),
    )


def script_most_probable(cand: pd.DataFrame, cap: int) -> list[tuple[float, ...]]:
    """evaluateCAD's maxNumberOfCADMarks: marks above the (cap + 1)-th highest probability."""
    cands = [tuple(r) for r in cand.iloc[:, 1:].itertuples(index=False)]
    if cap > 0 and len(cands) > cap:
        probs = sorted((c[3] for c in cands), reverse=True)
        cands = [c for c in cands if c[3] > probs[cap]][:cap]
    return cands


def script_froc_lists(
    cand: pd.DataFrame, ann: pd.DataFrame, exc: pd.DataFrame, series: list[str], cap: int
) -> tuple[dict[str, list[tuple[float, float, bool]]], dict[str, int]]:
    """evaluateCAD's loops: per scan, the FROC list entries (gt, probability, exclude)."""
    entries: dict[str, list[tuple[float, float, bool]]] = {}
    counts = dict.fromkeys(("tp", "fp", "nodules", "cands", "irrelevant"), 0)
    for uid in series:
        cands = script_most_probable(cand[cand.seriesuid == uid], cap)
        counts["cands"] += len(cands)
        remaining = set(range(len(cands)))
        findings = [(*r[1:], "Included") for r in ann[ann.seriesuid == uid].itertuples(index=False)]
        findings += [
            (*r[1:], "Excluded") for r in exc[exc.seriesuid == uid].itertuples(index=False)
        ]
        scan: list[tuple[float, float, bool]] = []
        for x, y, z, diameter, state in findings:
            if state == "Included":
                counts["nodules"] += 1
            radius_squared = pow((diameter if diameter >= 0.0 else 10.0) / 2.0, 2.0)
            matches = []
            for key, (x2, y2, z2, p) in enumerate(cands):
                dist = math.pow(x - x2, 2.0) + math.pow(y - y2, 2.0) + math.pow(z - z2, 2.0)
                if dist < radius_squared:
                    if state == "Included":
                        matches.append(p)
                        remaining.discard(key)
                    elif key in remaining:
                        counts["irrelevant"] += 1
                        remaining.discard(key)
            if state == "Included":
                if matches:
                    scan.append((1.0, max(matches), False))
                    counts["tp"] += 1
                else:
                    scan.append((1.0, -1000000000.0, True))
        for key in sorted(remaining):
            scan.append((0.0, cands[key][3], False))
            counts["fp"] += 1
        entries[uid] = scan
    return entries, counts


def script_compute_froc(
    entries: list[tuple[float, float, bool]], num_images: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """computeFROC, with the organisers' later guard for a list without any detection."""
    from sklearn.metrics import roc_curve

    gt = [e[0] for e in entries]
    gt_local = [e[0] for e in entries if not e[2]]
    prob_local = [e[1] for e in entries if not e[2]]
    detected = sum(gt_local)
    if detected < 1:
        return np.array([0.0]), np.array([0.0]), np.array([0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no negatives: the script's branch below
        fpr, tpr, thresholds = roc_curve(gt_local, prob_local)
    if sum(gt) == len(gt):
        fps = np.zeros(len(fpr))
    else:
        fps = fpr * (len(prob_local) - detected) / num_images
    sens = (tpr * detected) / sum(gt)
    return fps, sens, thresholds


@pytest.mark.parametrize(
    ("seed", "cap", "decimals"), [(1, 100, 2), (2, 100, 2), (3, 8, 2), (4, -1, 2), (5, -1, 9)]
)
def test_matches_the_script_on_a_random_study(seed: int, cap: int, decimals: int) -> None:
    cand, ann, exc, series = random_study(seed, decimals=decimals)
    entries, counts = script_froc_lists(cand, ann, exc, list(series), cap)
    fps, sens, thresholds = script_compute_froc(
        [e for s in series for e in entries[s]], len(series)
    )
    result = froc(cand, ann, exc, series, max_candidates_per_scan=cap if cap > 0 else None)
    np.testing.assert_allclose(result.fp_per_scan, fps, rtol=1e-12)
    np.testing.assert_allclose(result.sensitivity, sens, rtol=1e-12)
    np.testing.assert_array_equal(result.thresholds, thresholds)
    expected = np.interp(FP_RATES, fps, sens)
    np.testing.assert_allclose(result.sensitivity_at_fp_rates, expected, rtol=1e-12)
    assert result.cpm == pytest.approx(float(np.mean(expected)), rel=1e-12)
    assert (
        result.num_detected,
        result.num_false_positives,
        result.num_nodules,
        result.num_candidates,
        result.num_excluded_hits,
    ) == (counts["tp"], counts["fp"], counts["nodules"], counts["cands"], counts["irrelevant"])


def test_bootstrap_matches_the_script_and_is_seeded() -> None:
    # ~200 marks a scan, uncapped: a draw's curve passes 8 FP/scan well inside the ranking.
    cand, ann, exc, series = random_study(5, max_false_positives=400)
    result = froc(cand, ann, exc, series, max_candidates_per_scan=None)
    low, high = froc_bootstrap(result, n_bootstraps=200, seed=7)
    # computeFROC_bootstrap on the same draws: scans with replacement, divisor = scan count.
    entries, _ = script_froc_lists(cand, ann, exc, list(series), -1)
    draws = np.random.default_rng(7).integers(0, len(series), (200, len(series)))
    cpms = []
    for row in draws:
        sample = [e for i in row for e in entries[series[i]]]
        fps, sens, _ = script_compute_froc(sample, len(series))
        cpms.append(np.interp(FP_RATES, fps, sens).mean())
    cpms.sort()
    # compute_mean_ci: sorted[floor(Pz * n)], sorted[floor((1 - Pz) * n)], Pz = 0.025
    assert (low, high) == pytest.approx((cpms[5], cpms[195]), rel=1e-12)
    assert low <= result.cpm <= high
    assert low < high
    assert froc_bootstrap(result, n_bootstraps=200, seed=7) == (low, high)
    assert froc_bootstrap(result, n_bootstraps=200, seed=8) != (low, high)


def test_bootstrap_reading_short_prefixes_gives_the_same_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cand, ann, exc, series = random_study(6, max_false_positives=400)
    result = froc(cand, ann, exc, series, max_candidates_per_scan=None)
    whole = froc_bootstrap(result, n_bootstraps=300, seed=1)
    # One mark a scan to start: most draws need the prefix grown once or twice.
    monkeypatch.setattr(sparkdl.evaluation.froc, "_PREFIX_MARKS_PER_SCAN", 1)
    assert froc_bootstrap(result, n_bootstraps=300, seed=1) == pytest.approx(whole, rel=1e-12)


def test_bootstrap_of_the_hand_example_brackets_its_cpm(caplog: pytest.LogCaptureFixture) -> None:
    result = froc(CANDIDATES, ANNOTATIONS, EXCLUDED, ["A", "B", "C"])
    with caplog.at_level("WARNING", logger="sparkdl.evaluation.froc"):
        low, high = froc_bootstrap(result)
    # Draws of C alone (1 in 27) hold no nodule: left out, and said so.
    assert "hold no nodule" in caplog.text
    assert 0.0 <= low <= result.cpm <= high <= 1.0
