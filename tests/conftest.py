"""Shared fixtures: one local[2] SparkSession and the de-identification key for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

TEST_KEY = "test-key-0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="session")
def spark() -> Iterator["pyspark.sql.SparkSession"]:  # noqa: F821
    from sparkdl.spark import get_spark

    session = get_spark("local[2]", {"spark.sql.shuffle.partitions": "4",
                                     "spark.default.parallelism": "2"})
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
