"""TrainingRunner against executors whose Python cannot import sparkdl (tests/test_runner.py).

Run with ``PYSPARK_PYTHON`` naming such a Python; prints ``REFUSED <seconds> <message>`` when
the runner refuses before its barrier stage, ``RAN`` if the stage ran anyway.
"""

from __future__ import annotations

import time

from sparkdl.errors import TrainingError
from sparkdl.spark import get_spark
from sparkdl.training.runner import TrainingRunner


def main() -> None:
    spark = get_spark("local[2]", {"spark.ui.enabled": "false"})
    started = time.monotonic()
    try:
        TrainingRunner(2, spark=spark).run(abs, -1)
        print("RAN")
    except TrainingError as error:
        stages = spark.sparkContext.statusTracker().getActiveStageIds()
        print(f"REFUSED {time.monotonic() - started:.1f} stages={list(stages)} {error}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
