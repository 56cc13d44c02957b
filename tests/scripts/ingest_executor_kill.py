"""Ingest on ``local-cluster[2,1,1024]`` while an executor JVM is killed (tests/ingestion/).

Usage: ``python tests/scripts/ingest_executor_kill.py OUT INPUT...``, with ``SPARK_HOME``
naming a Spark home that can launch the cluster's JVMs. A thread waits until a stage runs
tasks on both executors, kills one of them (SIGKILL), and the ingest must still finish.
Prints ``RESULT <json>``: the executors before and after, the one killed, the stage it
was killed in, the seconds the run took and the manifest's counts.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from typing import Any

import psutil
from pyspark import SparkContext
from pyspark.sql import SparkSession

from sparkdl.ingestion.job import ingest


def executors() -> dict[str, int]:
    """``executor id → pid`` of this driver's own executor JVMs (the machine is shared)."""
    found = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if "--executor-id" in cmd and any("CoarseGrainedExecutorBackend" in c for c in cmd):
            found[cmd[cmd.index("--executor-id") + 1]] = proc.pid
    return found


def kill_one_when_busy(sc: SparkContext, report: dict[str, Any], done: threading.Event) -> None:
    """Kill the first executor (by id) once a stage has active tasks and both are alive."""
    while not done.is_set():
        tracker = sc.statusTracker()
        stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
        running = [s for s in stages if s is not None and s.numActiveTasks > 0]
        alive = executors()
        if running and len(alive) == 2:
            time.sleep(1.0)  # well inside the tasks
            victim = sorted(alive)[0]
            report["before"] = alive
            report["stage"] = running[0].name
            process = psutil.Process(alive[victim])
            process.send_signal(signal.SIGKILL)
            with contextlib.suppress(psutil.TimeoutExpired):
                process.wait(timeout=30)
            report["killed"] = {
                "id": victim,
                "pid": alive[victim],
                "gone": not process.is_running(),
            }
            return
        time.sleep(0.1)


def main(out: str, inputs: list[str]) -> None:
    spark = (
        SparkSession.builder.master("local-cluster[2,1,1024]")
        .config("spark.ui.enabled", "false")
        .config("spark.executor.cores", "1")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.scheduler.maxRegisteredResourcesWaitingTime", "180s")
        .config("spark.scheduler.minRegisteredResourcesRatio", "1.0")
        .getOrCreate()
    )
    report: dict[str, Any] = {"before": None, "killed": None}
    done = threading.Event()
    killer = threading.Thread(
        target=kill_one_when_busy, args=(spark.sparkContext, report, done), daemon=True
    )
    killer.start()
    started = time.time()
    try:
        manifest = ingest(inputs, out, spark=spark)
    finally:
        done.set()
    report["seconds"] = round(time.time() - started, 1)
    report["after"] = executors()
    report["counts"] = manifest["counts"]
    spark.stop()
    print("RESULT " + json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
