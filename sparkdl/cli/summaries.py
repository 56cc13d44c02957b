"""The few lines each command prints when it is done: the counts that matter, in one vocabulary.

The same words mean the same counts everywhere (synth, ingest, ``manifest.json``, inspect):
a *series* is a SeriesInstanceUID, *image series* the series with pixel data that series
assembly looked at, a *volume* an assembled CT, a *nodule* one labelled nodule of one series
(however many label sources named it), a *patch* one row of ``patches/``. Pure functions of
the command's result, so tests check the text without running anything.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any


def synth_lines(summary: Any, what: str) -> list[str]:
    """What ``sparkdl synth`` wrote (a :class:`sparkdl.synth.CohortSummary`): every series by
    kind, so the count matches ingest's once it rejects the dose reports (burned-in text)."""
    kinds = Counter(s.kind for s in getattr(summary, "series", ()) if s.kind != "axial_ct")
    names = {"localizer": "localizers", "dose_report": "dose reports", "structured_report": "SR"}
    others = ", ".join(f"{n} {names.get(kind, kind)}" for kind, n in sorted(kinds.items()))
    series = summary.num_series + summary.num_other_series
    return [
        f"synth: {summary.num_files:,} {what}: {summary.num_patients} patients, {series} series "
        f"({summary.num_series} axial CT with {summary.num_nodules} nodules"
        + (f"; {others})" if others else f", {summary.num_other_series} others)"),
        f"synth: images under {summary.dicom_dir}",
        f"synth: annotations {summary.annotations_csv}, candidates {summary.candidates_csv}",
    ]


def ingest_lines(manifest: Mapping[str, Any], output: str) -> list[str]:
    """What an ingest run published, from its manifest."""
    counts = manifest["counts"]
    if not manifest.get("changed", True):
        return [f"ingest: {output}: no new inputs since the last run; nothing changed"]
    reasons = _breakdown(manifest.get("rejected_by_reason") or {})
    excluded = _excluded_series(manifest)
    by_split = _patches_by_split(manifest)
    lines = [
        f"ingest: {counts.get('files_seen', 0):,} files, {counts['units']:,} units: "
        f"{counts['cataloged']:,} cataloged, {counts['rejected']:,} rejected"
        + (f" ({reasons})" if reasons else "")
        + (f", {counts['read_messages']} LIDC read messages" if counts["read_messages"] else ""),
        f"ingest: {counts['series']:,} series, {counts.get('image_series', 0):,} with images → "
        f"{counts['volumes']:,} volumes" + (f" ({excluded})" if excluded else ""),
        f"ingest: {counts.get('nodules', 0):,} nodules → {counts['patches']:,} patches"
        + (f" ({by_split})" if by_split else ""),
        f"ingest: wrote {output}; look: sparkdl inspect --data {output}",
    ]
    if counts["cataloged"] == 0:
        lines.append("ingest: warning: nothing was cataloged (see the rejected reasons above)")
    return lines


def train_lines(summary: Mapping[str, Any], history: Mapping[str, Any] | None) -> list[str]:
    """What a training run did: epochs, time, the last epoch's metrics, the model."""
    epochs = summary.get("epochs_run") or []
    workers = len(summary.get("workers") or [summary])
    seconds = float(summary.get("train_seconds") or 0.0)
    metrics = (history or {}).get("metrics") or {}
    last = " - ".join(
        f"{name}: {values[-1]:.4f}"
        for name, values in metrics.items()
        if values and name in ("loss", "auc", "val_loss", "val_auc")
    )
    return [
        f"train: {len(epochs)} epochs in {seconds:.1f} s on {workers} worker(s)"
        + (f"; last epoch {last}" if last else ""),
        f"train: model {summary['model_path']}",
    ]


def predict_lines(result: Mapping[str, Any]) -> list[str]:
    """What ``sparkdl predict`` wrote: the scored patches, and the submission if asked."""
    lines = [f"predict: {result['rows']:,} patches scored → {result['output']} (Parquet)"]
    submission = result.get("submission")
    if submission:
        ids = "original series ids" if submission["original_series_ids"] else "pseudonymous ids"
        lines.append(
            f"predict: submission {submission['path']}: {submission['rows']:,} candidates, {ids}"
        )
    return lines


def detect_lines(result: Mapping[str, Any]) -> list[str]:
    """What ``sparkdl detect`` found and wrote."""
    lines = [
        f"detect: {result['candidates_scored']:,} candidates of {result['scans']:,} scans scored "
        f"→ {result['detections']:,} detections in {result['scans_with_detections']:,} scans",
        f"detect: wrote {result['path']}",
    ]
    if result.get("pictures"):
        folder = str(result["pictures"][0]).rsplit("/", 1)[0]
        lines.append(f"detect: {len(result['pictures'])} pictures under {folder}")
    return lines


def as_json(value: Any) -> str:
    """``--json``: the whole result, machine-readable, lists of numbers on one line."""
    return json.dumps(value, indent=1, default=str, sort_keys=True)


def _breakdown(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _excluded_series(manifest: Mapping[str, Any]) -> str:
    """Instances left out of volumes, by reason (``excluded:localizer`` and so on)."""
    outcomes = manifest.get("instances_by_volume_outcome") or {}
    excluded = {
        key.split(":", 1)[1]: n
        for key, n in outcomes.items()
        if key.startswith("excluded:") and ":" in key
    }
    return f"instances left out: {_breakdown(excluded)}" if excluded else ""


def _patches_by_split(manifest: Mapping[str, Any]) -> str:
    per_split: dict[str, int] = {}
    for key, n in ((manifest.get("patches") or {}).get("by_split_label") or {}).items():
        split = key.split("/", 1)[0]
        per_split[split] = per_split.get(split, 0) + int(n)
    order = {"train": 0, "val": 1, "test": 2}
    return ", ".join(
        f"{split} {n:,}"
        for split, n in sorted(per_split.items(), key=lambda kv: order.get(kv[0], 9))
    )
