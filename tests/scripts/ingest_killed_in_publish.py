"""An ingest whose driver dies in the middle of publishing (tests/ingestion/test_scale.py).

Usage: ``python tests/scripts/ingest_killed_in_publish.py OUT INPUT``, in a session of its
own (the whole process group is killed). The third rename of the run puts the commit
journal, then ``catalog`` and ``volumes`` in place; right after it the process group gets
SIGKILL, so ``OUT`` is half published and has no ``manifest.json``.
"""

from __future__ import annotations

import os
import signal
import sys

from sparkdl.ingestion.job import ingest
from sparkdl.spark import get_spark
from sparkdl.store import storage


def die_after_renames(count: int) -> None:
    """Patch HadoopFS.rename: after ``count`` renames, SIGKILL this process group."""
    renames: list[str] = []
    original = storage.HadoopFS.rename

    def rename_then_die(self: storage.HadoopFS, src: str, dst: str) -> None:
        original(self, src, dst)
        renames.append(dst)
        if len(renames) == count:
            os.killpg(os.getpgid(0), signal.SIGKILL)

    storage.HadoopFS.rename = rename_then_die  # type: ignore[method-assign]  # the fault


def main(out: str, source: str) -> None:
    die_after_renames(3)  # the journal (commit point), catalog and volumes are in place
    spark = get_spark("local[2]", {"spark.sql.shuffle.partitions": "4"})
    ingest([source], out, spark=spark)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
