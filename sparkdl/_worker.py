"""Child-process entry of a training worker: ``python -m sparkdl._worker IN OUT``.

The barrier task (see :mod:`sparkdl.runner`) pickles ``(fn, args)`` to IN, starts this module
in a fresh interpreter with ``TF_CONFIG``/``CUDA_VISIBLE_DEVICES`` set, and reads OUT: either
``("ok", result)`` or ``("error", type name, message, traceback)``. A fresh process per run
means TF state never leaks into the next job of a reused Spark Python worker.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any


def main(path_in: str, path_out: str) -> int:
    from pyspark import cloudpickle

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
