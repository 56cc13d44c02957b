"""The lines each command ends with: the counts that matter, in the manifest's words."""

from __future__ import annotations

from types import SimpleNamespace

from sparkdl.cli.summaries import (
    detect_lines,
    ingest_lines,
    predict_lines,
    synth_lines,
    train_lines,
)

MANIFEST = {
    "changed": True,
    "counts": {
        "files_seen": 4546,
        "units": 4546,
        "cataloged": 4533,
        "rejected": 13,
        "read_messages": 0,
        "series": 60,
        "image_series": 49,
        "volumes": 35,
        "nodules": 68,
        "patches": 334,
    },
    "rejected_by_reason": {"burned_in_annotation": 13},
    "instances_by_volume_outcome": {"excluded:localizer": 23, "volume": 4499},
    "patches": {"by_split_label": {"train/0": 155, "train/1": 39, "test/0": 61, "val/1": 13}},
}


def test_ingest_says_files_series_volumes_nodules_and_patches() -> None:
    lines = ingest_lines(MANIFEST, "/data/out")
    assert lines[0] == (
        "ingest: 4,546 files, 4,546 units: 4,533 cataloged, 13 rejected (burned_in_annotation 13)"
    )
    assert lines[1] == (
        "ingest: 60 series, 49 with images → 35 volumes (instances left out: localizer 23)"
    )
    assert lines[2] == "ingest: 68 nodules → 334 patches (train 194, val 13, test 61)"
    assert lines[3] == "ingest: wrote /data/out; look: sparkdl inspect --data /data/out"


def test_an_ingest_that_cataloged_nothing_warns() -> None:
    empty = {**MANIFEST, "counts": {**MANIFEST["counts"], "cataloged": 0}}
    assert ingest_lines(empty, "o")[-1].startswith("ingest: warning: nothing was cataloged")
    unchanged = {**MANIFEST, "changed": False}
    assert ingest_lines(unchanged, "o") == [
        "ingest: o: no new inputs since the last run; nothing changed"
    ]


def test_synth_counts_every_series_as_ingest_does() -> None:
    summary = SimpleNamespace(
        num_files=4546,
        num_patients=30,
        num_series=35,
        num_other_series=25,
        num_nodules=68,
        dicom_dir="c/dicom",
        annotations_csv="c/annotations.csv",
        candidates_csv="c/candidates.csv",
    )
    assert synth_lines(summary, "DICOM files")[0] == (
        "synth: 4,546 DICOM files: 30 patients, 60 series (35 axial CT with 68 nodules, 25 others)"
    )
    kinds = ["axial_ct"] * 35 + ["localizer"] * 14 + ["dose_report"] * 13 + ["structured_report"]
    summary.series = [SimpleNamespace(kind=kind) for kind in kinds]
    summary.num_other_series = 28
    assert synth_lines(summary, "DICOM files")[0] == (
        "synth: 4,546 DICOM files: 30 patients, 63 series (35 axial CT with 68 nodules; "
        "13 dose reports, 14 localizers, 1 SR)"
    )


def test_train_predict_and_detect_end_with_one_line_each_and_where() -> None:
    history = {"metrics": {"loss": [0.5, 0.25], "auc": [0.7, 0.9], "precision": [0.1, 0.2]}}
    summary = {"epochs_run": [0, 1], "train_seconds": 12.34, "model_path": "m/model.keras"}
    assert train_lines({**summary, "workers": [{}, {}]}, history) == [
        "train: 2 epochs in 12.3 s on 2 worker(s); last epoch loss: 0.2500 - auc: 0.9000",
        "train: model m/model.keras",
    ]
    result = {"rows": 84, "output": "p", "submission": None}
    assert predict_lines(result) == ["predict: 84 patches scored → p (Parquet)"]
    found = {
        "candidates_scored": 700,
        "scans": 5,
        "detections": 40,
        "scans_with_detections": 5,
        "path": "d.csv",
        "pictures": ["pics/a.png"],
    }
    assert detect_lines(found) == [
        "detect: 700 candidates of 5 scans scored → 40 detections in 5 scans",
        "detect: wrote d.csv",
        "detect: 1 pictures under pics",
    ]
