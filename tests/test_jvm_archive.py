"""The driver JVM's class-data-sharing archive: used when present, harmless when not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparkdl import jvm_archive

#: A session on the given driver options; prints the JVM's own arguments.
_SESSION = """
import sys
from pyspark.sql import SparkSession
builder = SparkSession.builder.master("local[1]")
builder = builder.config("spark.driver.extraJavaOptions", sys.argv[1])
if len(sys.argv) > 2:  # a class path the archive was not made with
    builder = builder.config("spark.driver.extraClassPath", sys.argv[2])
spark = builder.getOrCreate()
print(list(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()))
print(spark.range(3).count())
spark.stop()
"""


def test_no_archive_no_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jvm_archive, "archive_path", lambda: tmp_path / "missing.jsa")
    assert jvm_archive.driver_options() == ""
    (tmp_path / "missing.jsa").write_bytes(b"x")
    assert f"-XX:SharedArchiveFile={tmp_path / 'missing.jsa'}" in jvm_archive.driver_options()
    monkeypatch.setenv(jvm_archive.ENV_VAR, "0")
    assert jvm_archive.driver_options() == ""


def _archive(tmp_path: Path) -> Path:
    """This environment's archive (scripts/setup.sh builds it), or one built here."""
    path = jvm_archive.archive_path()
    assert path is not None  # Spark needs a java
    if not path.is_file():
        path = tmp_path / "spark.jsa"
        assert jvm_archive.build(path)
    return path


def _session(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, jvm_archive.ENV_VAR: "0"}  # only the options given here
    return subprocess.run(
        [sys.executable, "-c", _SESSION, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_session_maps_the_archive(tmp_path: Path) -> None:
    """-Xshare:on makes the JVM refuse to start unless it maps the archive: a session that
    starts with it proves the archive fits this java and Spark's class path."""
    run = _session(f"-XX:SharedArchiveFile={_archive(tmp_path)} -Xshare:on")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "-Xshare:on" in run.stdout and run.stdout.strip().endswith("3")


@pytest.mark.slow
def test_an_archive_that_does_not_fit_is_skipped_quietly(tmp_path: Path) -> None:
    """With another class path (here a user's extra class path) the JVM cannot use the
    archive; the session starts without it and, with sparkdl's options, prints nothing of it
    (without them the JVM warns "Unable to use shared archive" on the console)."""
    archive = _archive(tmp_path)
    options = jvm_archive.driver_options_for(archive)
    run = _session(options, str(tmp_path))
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("3")
    printed = run.stderr + run.stdout.split("\n", 1)[1]  # the first line is the JVM's arguments
    assert "archive" not in printed.lower() and "cds" not in printed.lower()
    noisy = _session(f"-XX:SharedArchiveFile={archive}", str(tmp_path))
    assert "Unable to use shared archive" in noisy.stdout + noisy.stderr  # what was silenced


def test_fast_start_options_keep_the_users(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparkdl.spark import fast_start_options

    monkeypatch.setenv(jvm_archive.ENV_VAR, "0")
    key = "spark.driver.extraJavaOptions"
    assert fast_start_options({}) == {key: "-XX:TieredStopAtLevel=1"}
    assert fast_start_options({key: "-Dx=1"}) == {key: "-Dx=1 -XX:TieredStopAtLevel=1"}
    assert fast_start_options({key: "-XX:+TieredCompilation -Dx=1"}) == {}  # theirs wins
    monkeypatch.setattr(jvm_archive, "driver_options", lambda: "-XX:SharedArchiveFile=a.jsa")
    options = fast_start_options({key: "-Dx=1"})[key]
    assert options.split() == ["-Dx=1", "-XX:SharedArchiveFile=a.jsa", "-XX:TieredStopAtLevel=1"]
    # local-cluster executors are JVMs on the same cores: they get the client compiler too.
    cluster = fast_start_options({}, "local-cluster[2,1,1024]")
    assert cluster["spark.executor.extraJavaOptions"] == "-XX:TieredStopAtLevel=1"
    assert "spark.executor.extraJavaOptions" not in fast_start_options({}, "local[2]")
