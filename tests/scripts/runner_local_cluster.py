"""TrainingRunner on ``local-cluster[2,1,1024]`` with fake GPUs (tests/training/test_runner.py).

Usage: ``python tests/scripts/runner_local_cluster.py DISCOVERY_SCRIPT``, with ``SPARK_HOME``
naming a Spark home that can launch the cluster's JVMs. Each worker and executor gets one
GPU from ``DISCOVERY_SCRIPT``; prints ``RESULT <json>``: what each of the two workers saw.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from sparkdl.training.runner import TrainingRunner

ROOT = Path(__file__).resolve().parents[2]


def main(discovery_script: str) -> None:
    # The training fn is the tests' (nested there, so cloudpickle ships it by value).
    sys.path.insert(0, str(ROOT))
    from tests.helpers import worker_view_fn

    spark = (
        SparkSession.builder.master("local-cluster[2,1,1024]")
        .config("spark.ui.enabled", "false")
        .config("spark.executor.cores", "1")
        .config("spark.worker.resource.gpu.amount", "1")
        .config("spark.worker.resource.gpu.discoveryScript", discovery_script)
        .config("spark.executor.resource.gpu.amount", "1")
        .config("spark.executor.resource.gpu.discoveryScript", discovery_script)
        .config("spark.task.resource.gpu.amount", "1")
        .config("spark.scheduler.maxRegisteredResourcesWaitingTime", "180s")
        .getOrCreate()
    )
    try:
        views = TrainingRunner(2, use_gpu=True, spark=spark).run(worker_view_fn())
    finally:
        spark.stop()
    print("RESULT " + json.dumps(views))


if __name__ == "__main__":
    main(sys.argv[1])
