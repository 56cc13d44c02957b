"""Petastorm 0.13.1 reads what sparkdl writes, and sparkdl reads what Petastorm writes.

Petastorm runs in its own venv (``.venv-interop``, made by ``scripts/setup_interop.sh``, which
``scripts/test.sh`` runs: Python <= 3.12, pyarrow 14, NumPy 1.26, pyspark 4.0, no TF) through
``tests/interop/petastorm_side.py``; values cross as digests (dtype, shape, SHA-256), never as
pickles. A dataset written by sparkdl 0.1 (through Petastorm itself) is kept in
``tests/data/sparkdl-0.1-patches`` and read here too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sparkdl.store.patch_batches import patch_chunk_reader, read_row_group
from sparkdl.store.reader import RowGroupReader, read_rows
from sparkdl.store.tables import VolumeSchema, patch_shape
from sparkdl.store.writer import write_dataset
from sparkdl.training.sharding import shard_groups, shard_row_counts
from tests.helpers import ROOT, run_child
from tests.interop.petastorm_side import digest
from tests.patch_data import _rows, write_patches

SIDE = ROOT / "tests" / "interop" / "petastorm_side.py"
OLD_DATASET = ROOT / "tests" / "data" / "sparkdl-0.1-patches"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def petastorm_python() -> Path:
    setting = os.environ.get("SPARKDL_INTEROP_PYTHON", "")
    if setting.startswith("unavailable:"):
        pytest.skip(f"Petastorm venv not built on this machine: {setting[len('unavailable:') :]}")
    python = Path(setting) if setting else ROOT / ".venv-interop" / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"No Petastorm venv at {python}: run scripts/setup_interop.sh (scripts/test.sh does)."
        )
    return python


def _petastorm(python: Path, command: str, url: str) -> Any:
    return run_child(
        SIDE,
        command,
        url,
        python=python,
        env={"PYTHONPATH": "", "PYSPARK_PYTHON": str(python)},
        cwd=ROOT,
    ).result


def _digests(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {str(row[key]): {name: digest(value) for name, value in row.items()} for row in rows}


def _shard_ids(url: str, key: str, num_shards: int) -> list[list[str]]:
    """Row ids per shard in sparkdl's unshuffled order (Petastorm's, when unshuffled)."""
    shards = []
    for index in range(num_shards):
        fs, groups = shard_groups(url, index, num_shards)
        shards.append(
            [str(v) for g in groups for v in read_row_group(fs, g, [key]).column(key).to_pylist()]
        )
    return shards


def _volume_rows() -> list[dict[str, Any]]:
    rng = np.random.default_rng(3)
    rows = []
    # ~3.6 MB of noise in 1 MB row groups: at least 3 row groups however Spark spreads the
    # rows over the files, so that 3 shards are never empty.
    shapes = [(40, 64, 80), (9, 8, 8), (3, 20, 20), (7, 4, 6)] + [
        (50, 64, 64 + i) for i in range(5)
    ]
    for i, shape in enumerate(shapes):
        rows.append(
            {
                "series_uid": f"2.25.{100 + i}",
                "patient_id": f"pat{i}",
                "study_uid": f"2.25.{i}",
                "volume_id": f"v{i}",
                "volume": rng.integers(-1024, 2000, shape).astype(np.int16),
                "spacing": np.array([2.5, 0.7, 0.7 + i / 10]),
                "origin": np.array([-100.0, i, 3.0]),
                "direction": np.eye(3).ravel(),
                "num_slices": np.int32(shape[0]),
                "warnings": json.dumps([{"code": "gantry_tilt"}] if i == 2 else []),
            }
        )
    return rows


def test_petastorm_reads_volumes_sparkdl_writes(
    spark: Any, petastorm_python: Path, tmp_path: Path
) -> None:
    rows = _volume_rows()
    url = (tmp_path / "volumes").as_uri()
    frame = spark.createDataFrame(
        [VolumeSchema.encode_row(r) for r in rows], VolumeSchema.as_spark_schema()
    )
    write_dataset(frame, VolumeSchema, url, rows_per_group=1, num_files=3)
    seen = _petastorm(petastorm_python, "read", url)
    expected = _digests(rows, "series_uid")
    assert seen["make_reader"] == expected
    assert seen["make_batch_reader"] == expected
    for num_shards in (2, 3):
        assert seen["shards"][str(num_shards)] == _shard_ids(url, "series_uid", num_shards)


def test_petastorm_reads_patches_sparkdl_writes(
    spark: Any, petastorm_python: Path, tmp_path: Path
) -> None:
    url = (tmp_path / "patches").as_uri()
    total = write_patches(spark, url, size=8)
    seen = _petastorm(petastorm_python, "read", url)
    expected = _digests(list(_rows(0, total, 8)), "patch_id")
    assert seen["make_reader_rows"] == total
    assert seen["make_reader"] == expected
    assert seen["make_batch_reader"] == expected
    for num_shards in (2, 3):
        petastorm_shards = seen["shards"][str(num_shards)]
        assert petastorm_shards == _shard_ids(url, "patch_id", num_shards)
        assert [len(ids) for ids in petastorm_shards] == shard_row_counts(url, num_shards)


def test_sparkdl_reads_what_petastorm_writes(petastorm_python: Path, tmp_path: Path) -> None:
    url = (tmp_path / "petastorm-written").as_uri()
    written = _petastorm(petastorm_python, "write", url)
    assert len(written) == 60
    assert _digests(list(read_rows(url)), "patch_id") == written
    assert patch_shape(url) == ((8, 8, 8), np.dtype(np.int16))
    fs, groups = shard_groups(url, 0, 1)
    read = patch_chunk_reader("train", "label", (8, 8, 8), np.dtype(np.int16))
    with RowGroupReader(
        fs, groups, read, num_epochs=1, shuffle=False, seed=0, workers_count=2, results_queue_size=4
    ) as reader:
        chunks = list(reader)
    patches = np.concatenate([p for p, _ in chunks])
    train = [w for w in written.values() if w["split"] == "train"]
    assert sorted(digest(p)[2] for p in patches) == sorted(w["patch"][2] for w in train)


def test_reads_a_dataset_written_by_sparkdl_0_1() -> None:
    """sparkdl 0.1 wrote through Petastorm 0.13.1 on NumPy 1.26 (its pickle names NumPy 1's
    types and pyspark's); the restricted unpickler maps it onto today's schema."""
    url = OLD_DATASET.as_uri()
    rows = list(read_rows(url))
    assert "sources" not in rows[0]  # 0.1 predates the column: its rows read without it
    old_rows = [{k: v for k, v in r.items() if k != "sources"} for r in _rows(0, len(rows), 4)]
    expected = _digests(old_rows, "patch_id")
    assert len(rows) == 12
    assert _digests(rows, "patch_id") == expected
    assert patch_shape(url) == ((4, 4, 4), np.dtype(np.int16))
