"""Shared fixtures: one local[2] SparkSession and the de-identification key for the session.

Before each test, the helpers learn whether it is marked ``slow``: only slow tests may start
the CLI or a child script (``tests/helpers.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import RUNNING_TEST, TEST_KEY


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the test's fixtures: whether it may start child processes (it is ``slow``)."""
    RUNNING_TEST["slow"] = item.get_closest_marker("slow") is not None


@pytest.fixture(scope="session")
def spark() -> Iterator[pyspark.sql.SparkSession]:  # noqa: F821
    from sparkdl.spark import get_spark

    session = get_spark(
        "local[2]",
        {
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "2",
            # A barrier task left waiting for its peers fails the test instead of hanging CI.
            "spark.barrier.sync.timeout": "600s",
        },
    )
    yield session
    session.stop()


@pytest.fixture()
def deid_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Put a test key in SPARKDL_DEID_KEY for one test, restored afterwards."""
    monkeypatch.setenv("SPARKDL_DEID_KEY", TEST_KEY)
    return TEST_KEY


@pytest.fixture(autouse=True, scope="session")
def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv that sees this environment's site-packages but not sparkdl.

    A plain path line in a .pth adds the directory without running the .pth files inside it,
    so the editable install of sparkdl (a .pth import hook) is not active there.
    """
    import site

    env = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120
    )
    (purelib,) = (env / "lib").glob("python3*/site-packages")
    (purelib / "stack.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = env / "bin" / "python"
    imports = "import numpy, pydicom, pyspark, pyarrow; import sparkdl"
    probe = subprocess.run(
        [str(python), "-c", imports], capture_output=True, text=True, timeout=120, cwd=env
    )
    assert "No module named 'sparkdl'" in probe.stderr, probe.stderr  # the stack yes, sparkdl no
    return python
