"""Getting a SparkSession the way each kind of user expects.

* Under ``spark-submit`` (or in a notebook that already has ``spark``) the existing session is
  used as it is: the cluster manager and the user's ``--conf`` decide.
* From the CLI or a script, a new session is built with ``--master`` (default ``local[*]``)
  and the repeatable ``--conf key=value`` pairs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from pyspark.sql import SparkSession

from sparkdl import jvm_archive, noise
from sparkdl.errors import ConfigError
from sparkdl.noise import verbose

logger = logging.getLogger(__name__)

DEFAULT_MASTER = "local[*]"
LOG4J2_CONFIG = Path(__file__).parent / "conf" / "log4j2.properties"

#: Defaults for sessions sparkdl builds itself; any user ``--conf`` wins.
_DEFAULT_CONF = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.parquet.compression.codec": "zstd",
    # Spark's 1g default is too small to write CT volumes (tens of MB per Parquet row) from
    # two tasks at once; in local mode the driver JVM is the executor.
    "spark.driver.memory": "4g",
}


def _quiet_java_options(settings: Mapping[str, str]) -> dict[str, str]:
    """``-Dlog4j2.configurationFile`` of sparkdl's quiet logging (``conf/log4j2.properties``)
    added to the driver's and executors' Java options, unless the user names their own."""
    option = f"-Dlog4j2.configurationFile={LOG4J2_CONFIG.as_uri()}"
    updated = {}
    for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
        current = settings.get(key, "")
        if "log4j2.configurationFile" not in current and "log4j.configuration" not in current:
            updated[key] = f"{option} {current}".strip()
    return updated


def fast_start_options(settings: Mapping[str, str], master: str = DEFAULT_MASTER) -> dict[str, str]:
    """The JVM options for a short-lived session on few cores, added to the user's.

    * The class-data-sharing archive, when there is one (:mod:`sparkdl.jvm_archive`): about
      3 s less to start.
    * ``-XX:TieredStopAtLevel=1``, the client compiler only: sparkdl's heavy work runs in
      Python workers, and in local mode the JVM's optimising compiler threads took cores
      from them. Measured with ``sparkdl ingest --export-dicom --master local[2]`` (one run
      each): 5,058 files of 128² 22.9 → 18.7 s, 1,035 of 512² 24.6 → 21.7 s, the real LIDC
      series 17.9 → 15.2 s. ``local-cluster`` executors, JVMs on the same cores, get it too.
      Not added where the user's options choose a compiler setting.
    """
    updated = {}
    keys = ["spark.driver.extraJavaOptions"]
    if master.startswith("local-cluster"):
        keys.append("spark.executor.extraJavaOptions")
    for key in keys:
        current = settings.get(key, "")
        added = [jvm_archive.driver_options()] if key.startswith("spark.driver") else []
        if "TieredStopAtLevel" not in current and "TieredCompilation" not in current:
            added.append("-XX:TieredStopAtLevel=1")
        options = " ".join(option for option in [current, *added] if option)
        if options != current:
            updated[key] = options
    return updated


def parse_conf(pairs: Sequence[str]) -> dict[str, str]:
    """Parse repeatable ``key=value`` CLI arguments into a dict."""
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--conf expects key=value. Received: {pair!r}. "
                "Example: --conf spark.driver.memory=4g"
            )
        conf[key.strip()] = value
    return conf


def in_spark_submit() -> bool:
    """True when this Python process was started by ``spark-submit`` (a JVM gateway exists)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
    app_name: str = "sparkdl",
) -> SparkSession:
    """Return the active session, or build one on ``master`` with ``conf``.

    Local Python workers run the same interpreter as the driver (``PYSPARK_PYTHON`` defaults to
    ``sys.executable``), so a virtualenv's packages are seen by the tasks.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if in_spark_submit():
        if master or conf:
            logger.warning(
                "under spark-submit, --master and --conf of sparkdl are ignored: "
                "pass them to spark-submit"
            )
        return SparkSession.builder.getOrCreate()  # keeps spark-submit's --name and conf
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).master(master or DEFAULT_MASTER)
    settings = {**_DEFAULT_CONF, **dict(conf or {})}
    if not verbose():
        settings.update(_quiet_java_options(settings))
    settings.update(fast_start_options(settings, master or DEFAULT_MASTER))
    for key, value in settings.items():
        builder = builder.config(key, value)
    with noise.jvm_stderr_filtered():
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("INFO" if verbose() else "WARN")
    logger.debug("Spark %s on %s", spark.version, spark.sparkContext.master)
    return spark


#: Rows per Arrow batch between the JVM and Python workers (Spark's default 10,000).
ARROW_BATCH_CONF = "spark.sql.execution.arrow.maxRecordsPerBatch"


@contextlib.contextmanager
def session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """``key`` set to ``value`` on ``spark`` for the jobs run inside, then put back."""
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)
