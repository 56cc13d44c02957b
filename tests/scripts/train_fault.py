"""A training run whose rank-1 worker dies once at epoch 2 (tests/training/test_job.py).

Usage: ``python tests/scripts/train_fault.py DATA MODEL_DIR CONFIG_JSON``; prints
``RESULT <json>`` (every worker's summary) on success.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from sparkdl.spark import get_spark
from sparkdl.training.config import TrainConfig, TrainJob
from sparkdl.training.job import plan_job, zoo_model_fn
from sparkdl.training.runner import TrainingRunner
from sparkdl.training.worker import train_worker


def kill_once(model_dir: str) -> Any:
    import tf_keras

    class KillOnce(tf_keras.callbacks.Callback):  # type: ignore[misc]  # tf_keras is untyped
        """Log every epoch started; rank 1 dies at epoch 2 of the first attempt."""

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            rank = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
            with open(os.path.join(model_dir, f"epochs-rank{rank}.log"), "a") as log:
                log.write(f"{epoch}\n")
            marker = os.path.join(model_dir, "killed")
            if rank == 1 and epoch == 2 and not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)

    return KillOnce()


def main(data_dir: str, model_dir: str, config_json: str) -> None:
    # local[2,4]: two slots. A failed barrier stage is re-run whole (also under plain
    # local[2]): up to spark.stage.maxConsecutiveAttempts = 4 stage attempts.
    spark = get_spark("local[2,4]", {"spark.ui.enabled": "false"})
    config = TrainConfig(**json.loads(config_json))
    job = plan_job(
        data_dir,
        model_dir,
        config,
        model_fn=zoo_model_fn(config),
        num_workers=2,
        use_gpu=False,
        spark=spark,
    )

    def worker(job: TrainJob) -> dict[str, Any]:
        return train_worker(job, extra_callbacks=[lambda: kill_once(model_dir)])

    results = TrainingRunner(2, spark=spark).run(worker, job)
    print("RESULT " + json.dumps(results))
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:4])
