"""Peak memory of reading one (multi-GB) archive unit by unit (tests/ingestion/test_scale.py).

Usage: ``python tests/scripts/stream_units.py PATH SIZE``. Runs what each executor task
runs on one input file (:func:`sparkdl.ingestion.read_stage.file_records`) and prints
``RESULT <json>``:
the peak RSS after imports (``baseline``) and at the end (``peak``), in bytes, and
``units``, the ``[member, status]`` of every unit.

Peak RSS comes from VmHWM: it belongs to this process's memory map, which exec replaces
(getrusage's ru_maxrss survives exec and would report the size of the forking pytest).
"""

from __future__ import annotations

import json
import sys

from sparkdl.deid import DeidOptions
from sparkdl.units.archives import Limits
from sparkdl.units.records import InputFile, Task, file_records


def high_water_mark() -> int:
    """This process's peak resident set size so far, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(path: str, size: int) -> None:
    task = Task(b"k" * 32, DeidOptions(), Limits())
    baseline = high_water_mark()
    seen = [
        [record["member"], record["status"]] for record in file_records(InputFile(path, size), task)
    ]
    peak = high_water_mark()
    print("RESULT " + json.dumps({"baseline": baseline, "peak": peak, "units": seen}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
