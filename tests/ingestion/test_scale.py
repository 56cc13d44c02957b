"""Ingest at hospital scale: faults (executor and driver killed), packing, bounded memory.

The fault cases run Spark in their own processes (``local-cluster`` for a real executor JVM to
kill, the CLI for a driver to kill), so a SIGKILL never touches the shared test session. The
archive case streams a test-generated multi-GB tar and zip through the executor-side code in
a subprocess and reads its peak RSS. Speed and series-assembly memory are measured by
``scripts/bench_scale.py``, not asserted here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sparkdl.ingestion.discover import choose_num_partitions, pack_partitions
from sparkdl.ingestion.job import ingest
from sparkdl.synth import synthesize_cohort
from sparkdl.units.records import InputFile
from tests.helpers import SCRIPTS, child_env, linked_spark_home, run_child

MB = 1024**2
#: The child processes' environment: Spark's Python is this one, and no GPU.
CHILD_ENV = {"PYSPARK_PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": None}


# --- helpers ------------------------------------------------------------------------------


def _regular_files(folders: list[Path]) -> set[str]:
    return {str(p) for folder in folders for p in folder.rglob("*") if p.is_file()}


def _check_invariant(out: Path, files: set[str]) -> dict[str, Any]:
    """Every input file is exactly one row in catalog or rejected; counts agree (loose inputs)."""
    manifest = json.loads((out / "manifest.json").read_text())
    catalog = pd.read_parquet(out / "catalog", columns=["sop_uid"])
    rejected = pd.read_parquet(out / "_restricted/rejected", columns=["source_path", "member"])
    lineage = pd.read_parquet(
        out / "_restricted/lineage", columns=["source_path", "member", "sop_uid"]
    )
    assert catalog["sop_uid"].is_unique
    assert len(lineage) == len(catalog) and set(lineage["sop_uid"]) == set(catalog["sop_uid"])
    keys = pd.concat([lineage[["source_path", "member"]], rejected])
    assert not keys.duplicated().any(), "an input unit was recorded twice"
    assert set(keys["source_path"]) == files, "an input unit was lost"
    assert len(catalog) + len(rejected) == len(files)
    counts = manifest["counts"]
    assert counts["files_seen"] == len(files) == counts["units"]
    assert (counts["cataloged"], counts["rejected"]) == (len(catalog), len(rejected))
    assert not (out / "_staging").exists()
    return manifest


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One small cohort in 4 folders: ~2,200 files, 3/4 of them duplicate SOP instances."""
    base = tmp_path_factory.mktemp("scale")
    cohort = synthesize_cohort(base / "cohort", num_patients=2, seed=21, image_size=48)
    folders = []
    for index in range(4):
        folder = base / "inputs" / f"copy{index}"
        shutil.copytree(cohort.dicom_dir, folder)
        folders.append(folder)
    return folders


# --- 1. an executor JVM killed while the parse stage runs -----------------------------------


@pytest.mark.slow
def test_executor_killed_mid_ingest_keeps_every_input_once(
    tmp_path: Path, copies: list[Path]
) -> None:
    out = tmp_path / "out"
    done = run_child(
        SCRIPTS / "ingest_executor_kill.py",
        str(out),
        *map(str, copies),
        cwd=tmp_path,
        env={
            **CHILD_ENV,
            "SPARK_HOME": str(linked_spark_home(tmp_path)),
            "SPARK_LOCAL_DIRS": str(tmp_path),
        },
        timeout=480,
    )
    report = done.result
    print(f"executor kill: {report}")

    # Not vacuous: a live executor JVM of this application was killed while tasks ran, Spark
    # saw it lost, and the standalone worker started a replacement that finished the job.
    killed = report["killed"]
    assert killed is not None and killed["gone"], report
    assert killed["id"] in report["before"] and killed["id"] not in report["after"]
    assert set(report["after"]) - set(report["before"]), "no replacement executor was launched"
    assert re.search(rf"Lost executor {killed['id']}\b", done.stderr), done.stderr[-3000:]

    manifest = _check_invariant(out, _regular_files(copies))
    assert manifest["counts"]["cataloged"] > 0
    assert (
        manifest["rejected_by_reason"].get("duplicate_instance", 0)
        == 3 * manifest["counts"]["cataloged"]
    )  # 4 copies: one cataloged, three duplicates


# --- 2. the driver killed mid-run; the next run recovers by itself --------------------------


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


@pytest.mark.slow
def test_driver_killed_leaves_nothing_complete_and_next_run_recovers(
    spark: Any, deid_key: str, tmp_path: Path, copies: list[Path]
) -> None:
    source = copies[0]
    files = _regular_files([source])
    out = tmp_path / "out"

    # (a) killed during parsing, on a fresh output: the CLI driver, its JVM and Python workers.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sparkdl",
            "ingest",
            str(source),
            "--output",
            str(out),
            "--master",
            "local[2]",
        ],
        env=child_env(CHILD_ENV),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300
        while not list(out.glob("_staging/*/records")) and time.time() < deadline:
            assert proc.poll() is None, "ingest ended before it could be killed"
            time.sleep(0.1)
        assert list(out.glob("_staging/*/records")), "the parse stage never started"
    finally:
        _kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    assert (out / "_staging").exists() and not (out / "manifest.json").exists()
    assert not (out / "catalog").exists()

    first = ingest([str(source)], str(out), spark=spark)
    assert _check_invariant(out, files)["counts"] == first["counts"]

    # (b) killed in the middle of publishing over that complete dataset: the worst moment.
    killed = run_child(
        SCRIPTS / "ingest_killed_in_publish.py",
        str(out),
        str(source),
        env=CHILD_ENV,
        new_session=True,
        timeout=420,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (out / "catalog").exists() and (out / "volumes").exists()  # half published ...
    assert not (out / "manifest.json").exists()  # ... and it does not look complete
    assert list(out.glob("_staging/*/_commit.json"))  # the next run finishes this commit first

    again = ingest([str(source)], str(out), spark=spark)
    assert _check_invariant(out, files)["counts"] == first["counts"] == again["counts"]


# --- 3. size-balanced packing ---------------------------------------------------------------


def test_many_small_files_are_packed_into_balanced_partitions() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(50_000, 600_000, 9_990)  # loose instances
    small = [InputFile(f"/in/{i:05d}.dcm", int(s)) for i, s in enumerate(sizes)]
    sizes = rng.integers(2 * 1024**3, 5 * 1024**3, 10)  # whole-study archives
    huge = [InputFile(f"/in/archive{i}.tar", int(s)) for i, s in enumerate(sizes)]
    for files, parallelism in ((small, 2), (small + huge, 8)):
        num_partitions = choose_num_partitions(files, parallelism, 128 * MB)
        bins = pack_partitions(list(reversed(files)), num_partitions)
        packed = [f.path for b in bins for f in b]
        assert sorted(packed) == sorted(f.path for f in files) and len(set(packed)) == len(files)
        assert parallelism * 3 <= len(bins) <= num_partitions < len(files) / 10
        for b in bins:
            assert [f.path for f in b] == sorted(f.path for f in b)  # reproducible order
        totals = np.array([sum(f.size for f in b) for b in bins])
        shared = [t for b, t in zip(bins, totals) if len(b) > 1]
        assert max(len(b) for b in bins) > 1 and min(len(b) for b in bins if len(b) > 1) >= 10
        # Each bin holds one big file alone, or about its share of the rest.
        assert max(shared) <= 1.2 * np.mean(shared)
        for b in bins:
            if len(b) == 1:
                assert b[0].size >= max(shared)
        if files is not small:
            assert all([h] in bins for h in huge)


# --- 4. multi-GB archives streamed member by member with bounded memory ----------------------

#: Not DICOM: one random MiB repeated (its first bytes are no group 0002/0008 tag, so parse
#: rejects each member without trying the raw-dataset fallback).
_JUNK = np.random.default_rng(7).bytes(MB)


class _Junk(io.RawIOBase):
    """``size`` junk bytes as a stream, so a 100 MB member is never held by the test."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left, MB)
        buffer[:n] = _JUNK[:n]
        self.left -= n
        return n


def _write_archives(
    folder: Path, num_junk: int, junk_bytes: int, dicoms: list[bytes]
) -> list[Path]:
    names = [f"junk/blob{i:02d}.bin" for i in range(num_junk)]
    tar_path, zip_path = folder / "big.tar", folder / "big.zip"
    with tarfile.open(tar_path, "w") as archive:
        for index, name in enumerate(names):
            info = tarfile.TarInfo(name)
            info.size = junk_bytes
            archive.addfile(info, io.BufferedReader(_Junk(junk_bytes), 4 * MB))
            if index < len(dicoms):
                info = tarfile.TarInfo(f"dicom/{index:02d}.dcm")
                info.size = len(dicoms[index])
                archive.addfile(info, io.BytesIO(dicoms[index]))
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for index, name in enumerate(names):
            with archive.open(name, "w", force_zip64=True) as member:
                for _ in range(junk_bytes // MB):
                    member.write(_JUNK)
            if index < len(dicoms):
                archive.writestr(f"dicom/{index:02d}.dcm", dicoms[index])
    return [tar_path, zip_path]


@pytest.mark.slow
def test_multi_gb_archives_stream_with_bounded_memory(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    member_bytes = 100 * MB
    free = shutil.disk_usage(tmp_path).free
    # 2 GB per archive when the disk allows (both archives exist at once), never under 1 GB.
    num_junk = int(min(20, max(10, (free - 4 * 1024**3) // (2 * member_bytes))))
    assert 2 * num_junk * member_bytes < free, f"not enough disk in {tmp_path}: {free} bytes free"
    dicoms = [
        Path(get_testdata_file(name)).read_bytes() for name in ("CT_small.dcm", "MR_small.dcm")
    ]
    archives = _write_archives(tmp_path, num_junk, member_bytes, dicoms)
    try:
        for path in archives:
            size = path.stat().st_size
            assert size >= num_junk * member_bytes
            result = run_child(
                SCRIPTS / "stream_units.py", str(path), str(size), env=CHILD_ENV, timeout=300
            ).result
            units = dict(result["units"])
            # Every member, once.
            assert len(result["units"]) == len(units) == num_junk + len(dicoms)
            assert units["dicom/00.dcm"] == units["dicom/01.dcm"] == "accepted"
            assert all(units[f"junk/blob{i:02d}.bin"] == "rejected" for i in range(num_junk))
            # Memory follows the largest member, not the archive: a few copies of one member.
            growth = result["peak"] - result["baseline"]
            print(
                f"{path.name}: {size / MB:.0f} MB, peak RSS {result['peak'] / MB:.0f} MB "
                f"(+{growth / MB:.0f} MB over {result['baseline'] / MB:.0f} MB after imports)"
            )
            assert growth < 4 * member_bytes and result["peak"] < 600 * MB < size / 3
    finally:
        for path in archives:
            path.unlink(missing_ok=True)
