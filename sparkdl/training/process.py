"""Child-process entry of a training worker: ``python -m sparkdl.training.process IN OUT``.

The barrier task (see :mod:`sparkdl.training.runner`) pickles ``(fn, args)`` to IN, starts this
module in a fresh interpreter with ``TF_CONFIG``/``CUDA_VISIBLE_DEVICES`` set, and reads OUT: either
``("ok", result)`` or ``("error", type name, message, traceback)``. A fresh process per run
means TF state never leaks into the next job of a reused Spark Python worker.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

#: Set by :func:`sparkdl.training.runner._run_isolated` to its own pid.
PARENT_PID_ENV = "SPARKDL_WORKER_PARENT_PID"


def _exit_when_orphaned(parent: int, every_s: float = 1.0) -> None:
    """End this process once the Spark task that started it is gone.

    Spark cancels the other ranks of a barrier stage when one fails by killing their Python
    workers; the training process each had started would otherwise run on as an orphan,
    waiting forever in a collective op for the failed peer and holding its GPU.
    """
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(3)

    threading.Thread(target=watch, name="sparkdl-orphan-watch", daemon=True).start()


def main(path_in: str, path_out: str) -> int:
    import os

    from pyspark import cloudpickle

    # The parent's pid as the parent saw it: if it died while this interpreter started,
    # os.getppid() would already name the process that adopted this one.
    _exit_when_orphaned(int(os.environ.get(PARENT_PID_ENV) or os.getppid()))

    with open(path_in, "rb") as handle:
        fn, args = cloudpickle.load(handle)
    outcome: tuple[Any, ...]  # ("ok", result) or ("error", type name, message, traceback)
    try:
        outcome = ("ok", fn(*args))
    except BaseException as exc:  # noqa: BLE001 - reported to the driver with the rank
        outcome = ("error", type(exc).__name__, str(exc), traceback.format_exc())
    with open(path_out, "wb") as handle:
        cloudpickle.dump(outcome, handle)
    return 0 if outcome[0] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
