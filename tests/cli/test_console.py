"""What a user sees on the console: progress of ingest and training, quiet by default.

Every command runs as a user runs it (``python -m sparkdl``), its output captured (not a
terminal, as in a log or CI): progress comes as plain lines, Spark's start-up warnings and
TensorFlow's GPU probing on a CPU machine do not show, ``--quiet`` and ``--verbose`` do what
they say.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sparkdl import synthesize_cohort
from tests.helpers import SCRIPTS, run_child, run_sparkdl

pytestmark = pytest.mark.slow

#: Lines Spark prints at start-up that are not problems, and TF's GPU probing.
SPARK_START_NOISE = (
    "resolves to a loopback address",
    "Set SPARK_LOCAL_IP",
    "native-hadoop",
    "Truncated the string representation",
    "Setting default log level",
    "jdk.incubator.vector",
)
TF_GPU_NOISE = ("E0000", "cuInit", "cuda_platform", "Could not find cuda drivers")
#: What every multi-worker epoch printed, and is not a problem.
TF_EPOCH_NOISE = ("GetNextFromShard", "has passed with status", "M_TRIM_THRESHOLD")


def _sparkdl(*args: str) -> subprocess.CompletedProcess[str]:
    """The command with a user's defaults, stdout and stderr in one stream as a console shows."""
    unset: dict[str, str | None] = dict.fromkeys(
        ("SPARKDL_PROGRESS", "SPARKDL_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")
    )
    return run_sparkdl(*args, env=unset, merge_stderr=True, timeout=900)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console")
    synthesize_cohort(root / "cohort", num_patients=10, seed=5, image_size=64)  # has a val split
    return root


@pytest.fixture(scope="module")
def ingested(cohort: Path) -> tuple[Path, str]:
    out = cohort / "data"
    done = _sparkdl(
        "ingest",
        str(cohort / "cohort" / "dicom"),
        "--output",
        str(out),
        "--annotations",
        str(cohort / "cohort" / "annotations.csv"),
        "--master",
        "local[2]",
    )
    return out, done.stdout


def _tiny_input(cohort: Path) -> Path:
    """A few slices of one series: enough to start Spark and run every stage."""
    tiny = cohort / "tiny"
    if not tiny.exists():
        folders = sorted({p.parent for p in (cohort / "cohort" / "dicom").rglob("*.dcm")})
        series = next(f for f in folders if len(list(f.glob("*.dcm"))) >= 4)
        tiny.mkdir()
        for path in sorted(series.glob("*.dcm"))[:4]:
            shutil.copy(path, tiny / path.name)
    return tiny


def test_ingest_prints_each_stage_with_counts_reaching_the_totals(
    ingested: tuple[Path, str],
) -> None:
    out, console = ingested
    manifest = json.loads((out / "manifest.json").read_text())
    files = manifest["counts"]["files_seen"]
    lines = console.splitlines()
    assert f"ingest: listing: {files:,} input files, {files:,} to read" in console
    reading = [line for line in lines if line.startswith("ingest: reading and de-identifying:")]
    assert reading and reading[-1].startswith(
        f"ingest: reading and de-identifying: {files:,}/{files:,} files (100%) in "
    )
    series = [line for line in lines if line.startswith("ingest: series assembly:")]
    volumes = manifest["counts"]["volumes"]
    assert series and re.match(r"ingest: series assembly: \d+ series in ", series[-1])
    assert int(series[-1].split()[3].replace(",", "")) >= volumes > 0
    for stage in ("patches", "writing the tables", "publishing"):
        assert any(line.startswith(f"ingest: {stage}:") for line in lines), stage


def test_ingest_summary_comes_last_and_spark_start_up_is_quiet(
    ingested: tuple[Path, str],
) -> None:
    _, console = ingested
    for noise in SPARK_START_NOISE:
        assert noise not in console, noise
    data, _ = ingested
    counts = json.loads((data / "manifest.json").read_text())["counts"]
    lines = console.splitlines()
    # The summary comes last: every stage line before it, then the counts that matter.
    summary_start = next(
        i for i, line in enumerate(lines) if re.match(r"ingest: [\d,]+ files,", line)
    )
    assert all(not line.startswith("ingest: publishing") for line in lines[summary_start:])
    summary = "\n".join(lines[summary_start:])
    assert f"{counts['cataloged']:,} cataloged" in summary
    assert f"{counts['volumes']:,} volumes" in summary
    assert f"{counts['nodules']:,} nodules → {counts['patches']:,} patches" in summary
    assert " INFO " not in console and not re.search(r"^\d{4}-\d\d-\d\d ", console, re.M)


def test_quiet_prints_the_summary_only(cohort: Path) -> None:
    console = _sparkdl(
        "ingest", str(_tiny_input(cohort)), "--output", str(cohort / "quiet"), "--quiet"
    ).stdout
    progress = [line for line in console.splitlines() if re.match(r"ingest: [a-z ]+: ", line)]
    assert not progress and " INFO " not in console
    assert "ingest: 4 files, 4 units: 4 cataloged, 0 rejected" in console


def test_verbose_restores_sparks_own_logging(cohort: Path) -> None:
    console = _sparkdl(
        "--verbose", "ingest", str(_tiny_input(cohort)), "--output", str(cohort / "verbose")
    ).stdout
    assert "Using Spark's default log4j profile" in console  # not sparkdl's quiet one
    assert " DEBUG sparkdl." in console
    assert "ingest: reading and de-identifying: 4/4 files (100%)" in console


EPOCHS = 2


@pytest.fixture(scope="module")
def trained(ingested: tuple[Path, str], cohort: Path) -> tuple[Path, str]:
    """A 2-worker CPU training from the CLI: its model folder and console."""
    data, _ = ingested
    model = cohort / "model"
    console = _sparkdl(
        "train",
        "--data",
        str(data),
        "--model-dir",
        str(model),
        "--num-workers",
        "2",
        "--epochs",
        str(EPOCHS),
        "--master",
        "local[2]",
    ).stdout
    return model, console


def test_training_prints_one_line_per_epoch_and_no_gpu_probing(
    trained: tuple[Path, str],
) -> None:
    _, console = trained
    lines = [line for line in console.splitlines() if line.startswith("train: epoch ")]
    assert [line.split()[2] for line in lines] == [f"{k}/{EPOCHS}" for k in range(1, EPOCHS + 1)]
    for line in lines:
        for metric in ("loss: ", "auc: ", "val_loss: ", "val_auc: ", " s - ", "samples/s"):
            assert metric in line, (metric, line)
    for noise in TF_GPU_NOISE + TF_EPOCH_NOISE:
        assert noise not in console, noise


def test_evaluate_on_the_driver_prints_no_gpu_probing(
    ingested: tuple[Path, str], trained: tuple[Path, str], cohort: Path
) -> None:
    data, _ = ingested
    model, _ = trained
    console = _sparkdl(
        "evaluate",
        "--model-dir",
        str(model),
        "--data",
        str(data),
        "--report",
        str(cohort / "report"),
    ).stdout
    assert "AUC: " in console
    for noise in TF_GPU_NOISE:
        assert noise not in console, noise


def test_the_python_api_in_a_fresh_process_is_as_quiet(
    ingested: tuple[Path, str], trained: tuple[Path, str], cohort: Path
) -> None:
    """``sparkdl.evaluate`` and ``predict`` from a script with no TF_CPP_MIN_LOG_LEVEL: neither
    TensorFlow's C++ lines nor Spark's start-up reach stderr."""
    data, _ = ingested
    model, _ = trained
    env: dict[str, str | None] = {"TF_CPP_MIN_LOG_LEVEL": None, "SPARKDL_VERBOSE": None}
    done = run_child(SCRIPTS / "api_console.py", str(data), str(model), str(cohort / "api"),
                     env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.result["rows"] > 0
    for noise in TF_GPU_NOISE + TF_EPOCH_NOISE + SPARK_START_NOISE:
        assert noise not in done.stderr, (noise, done.stderr[-2000:])
