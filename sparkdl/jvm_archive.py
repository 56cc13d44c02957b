"""A class-data-sharing archive of the Spark driver JVM: sessions start seconds sooner.

A Spark driver JVM loads and verifies some ten thousand classes before its first job runs;
on two cores that is about half of a ``sparkdl`` command's fixed cost. The JDK's dynamic
class-data sharing (JEP 350, Java 13+) writes the classes a run loaded to an archive at exit
(``-XX:ArchiveClassesAtExit``) and maps them at the next start (``-XX:SharedArchiveFile``).
:func:`build` makes one from a short representative run (a Python RDD, a ``mapInArrow``,
Parquet written and read) in a child process; ``scripts/setup.sh`` calls it once per virtual
environment. :func:`driver_options` gives the option that uses it to the sessions
:func:`sparkdl.spark.get_spark` builds itself (never under ``spark-submit``).

The JVM checks the archive against itself and its class path (JDK build, jar sizes and
times) and runs without it when they differ; its CDS messages are turned off, so a stale or
foreign archive costs nothing but the time it would have saved. The archive is named by the
pyspark version and the ``java`` that runs it, and written under a temporary name then
renamed, so a reader never maps a partial file. ``SPARKDL_JVM_ARCHIVE=0`` turns it off.

    python -m sparkdl.jvm_archive          # build the archive of this environment if missing
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["archive_path", "build", "driver_options", "driver_options_for"]

ENV_VAR = "SPARKDL_JVM_ARCHIVE"
#: No CDS messages on the console (a mismatched archive is then skipped silently).
_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"
#: What the archive is made from: the classes a small ingest-like run loads.
_TRAINING_RUN = """
import sys, tempfile
from sparkdl.spark import get_spark
spark = get_spark("local[2]", {"spark.driver.extraJavaOptions": sys.argv[1]})
sc = spark.sparkContext
sc.parallelize(range(8), 2).map(lambda x: x * x).collect()
def body(batches):
    for batch in batches:
        yield batch
with tempfile.TemporaryDirectory() as folder:
    frame = spark.range(1000).selectExpr("id", "cast(id as string) as name", "unhex('00ff') as b")
    frame.mapInArrow(body, frame.schema).write.parquet(folder + "/t")
    read = spark.read.parquet(folder + "/t")
    read.groupBy("name").count().join(read, "name").collect()
    read.repartition(2, "id").groupBy("id").applyInArrow(lambda t: t, read.schema).collect()
spark.stop()
# The JVM writes the archive as it exits: end it (stdin closed) and wait for it.
gateway = sc._gateway
gateway.shutdown()
gateway.proc.stdin.close()
gateway.proc.wait(timeout=300)
"""


def _java() -> Path | None:
    """The ``java`` that pyspark launches (``JAVA_HOME`` first, as ``spark-class`` does)."""
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else None
    if found is None or not found.exists():
        which = shutil.which("java")
        found = Path(which) if which else None
    return found.resolve() if found is not None else None


def archive_path() -> Path | None:
    """Where this environment's archive is (or would be), or None without a ``java``."""
    import pyspark

    java = _java()
    if java is None:
        return None
    stat = java.stat()
    key = hashlib.sha256(f"{java}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return Path(sys.prefix) / "share" / "sparkdl" / f"spark-{pyspark.__version__}-{key}.jsa"


def _enabled() -> bool:
    return os.environ.get(ENV_VAR, "").strip().lower() not in ("0", "false", "no", "off")


def driver_options() -> str:
    """The driver JVM options that map the archive, or "" when there is none (or it is off)."""
    path = archive_path() if _enabled() else None
    if path is None or not path.is_file():
        return ""
    return driver_options_for(path)


def driver_options_for(path: Path) -> str:
    """The options that map the archive at ``path``, without CDS messages."""
    return f"-XX:SharedArchiveFile={path} {_QUIET}"


def build(path: Path, timeout_s: float = 600) -> bool:
    """Write the archive to ``path`` from a training run in a child process; True on success.

    The child's JVM writes the archive when it exits; it is renamed into place only then.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    options = f"-XX:ArchiveClassesAtExit={partial} {_QUIET}"
    env = {**os.environ, ENV_VAR: "0"}  # the training run must not map an older archive
    try:
        subprocess.run(
            [sys.executable, "-c", _TRAINING_RUN, options],
            env=env,
            check=True,
            timeout=timeout_s,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except (subprocess.SubprocessError, OSError):
        partial.unlink(missing_ok=True)
        return False
    if not partial.is_file() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        return False
    os.replace(partial, path)
    return True


def main() -> int:
    path = archive_path()
    if path is None:
        print("[jvm archive] no java found: skipped")
        return 0
    if path.is_file():
        print(f"[jvm archive] up to date: {path.name}")
        return 0
    for stale in path.parent.glob("spark-*.jsa"):
        stale.unlink()  # archives of an earlier pyspark or java
    if build(path):
        print(f"[jvm archive] written: {path} ({path.stat().st_size / 1e6:.0f} MB)")
    else:
        print("[jvm archive] could not be written: Spark sessions start without it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
