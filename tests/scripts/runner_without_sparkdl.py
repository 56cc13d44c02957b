"""TrainingRunner against executors whose Python cannot import sparkdl (tests/training/).

Run with ``PYSPARK_PYTHON`` naming such a Python; prints ``RESULT <json>``: ``refused`` (the
runner refused before its barrier stage, not the stage ran anyway), the ``seconds`` that took,
the Spark ``stages`` still active and the error's ``message``.
"""

from __future__ import annotations

import json
import time

from sparkdl.errors import TrainingError
from sparkdl.spark import get_spark
from sparkdl.training.runner import TrainingRunner


def main() -> None:
    spark = get_spark("local[2]", {"spark.ui.enabled": "false"})
    started = time.monotonic()
    outcome: dict[str, object] = {"refused": False, "message": None}
    try:
        TrainingRunner(2, spark=spark).run(abs, -1)
    except TrainingError as error:
        outcome = {"refused": True, "message": str(error)}
    finally:
        outcome["seconds"] = round(time.monotonic() - started, 1)
        outcome["stages"] = list(spark.sparkContext.statusTracker().getActiveStageIds())
        spark.stop()
    print("RESULT " + json.dumps(outcome))


if __name__ == "__main__":
    main()
