"""Streaming ingest of a landing folder: each file cataloged once, also across restarts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from sparkdl.ingestion.watch import watch
from sparkdl.synth import synthesize_cohort

pytestmark = pytest.mark.slow


def _land(files: list[Path], landing: Path) -> None:
    """Copy next to the landing folder, then move in: files appear atomically."""
    for path in files:
        tmp = landing.parent / f".{path.name}.part"
        shutil.copy(path, tmp)
        tmp.rename(landing / path.name)


def test_watch_catalogs_each_file_once_across_restarts(
    spark, deid_key: str, tmp_path: Path
) -> None:
    cohort = synthesize_cohort(tmp_path / "cohort", num_patients=1, seed=21, image_size=48)
    files = sorted(p for p in Path(cohort.dicom_dir).rglob("*") if p.is_file())
    landing, out, checkpoint = tmp_path / "landing", tmp_path / "out", tmp_path / "checkpoint"
    landing.mkdir()
    half = len(files) // 2

    _land(files[:half], landing)
    watch(str(landing), str(out), spark=spark, checkpoint=str(checkpoint), once=True)
    first = pd.read_parquet(out / "catalog")
    assert 0 < len(first) <= half

    _land(files[half:], landing)
    watch(str(landing), str(out), spark=spark, checkpoint=str(checkpoint), once=True)
    catalog = pd.read_parquet(out / "catalog")
    rejected = pd.read_parquet(out / "_restricted/rejected")
    assert len(catalog) + len(rejected) == len(files)
    assert catalog["sop_uid"].is_unique

    # A crash after the ingest but before the stream's commit: the batch is replayed.
    commits = sorted(
        (p for p in (checkpoint / "commits").iterdir() if p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    commits[-1].unlink()
    (checkpoint / "commits" / f".{commits[-1].name}.crc").unlink(missing_ok=True)
    watch(str(landing), str(out), spark=spark, checkpoint=str(checkpoint), once=True)
    replayed = pd.read_parquet(out / "catalog")
    assert sorted(replayed["sop_uid"]) == sorted(catalog["sop_uid"])
    assert len(pd.read_parquet(out / "_restricted/rejected")) == len(rejected)
    assert (out / "volumes").exists()
