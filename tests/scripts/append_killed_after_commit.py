"""An append run killed halfway through applying its commit journal (tests/ingestion/).

Usage: ``python tests/scripts/append_killed_after_commit.py ANNOTATIONS OUT INPUT...``, in a
session of its own (the whole process group is killed). The run reaches its commit point,
applies the first half of the journal's steps, then gets SIGKILL: ``OUT`` has no
``manifest.json`` and a journal for the next run to finish.
"""

from __future__ import annotations

import os
import signal
import sys

from sparkdl import Labels
from sparkdl.ingestion import publish
from sparkdl.ingestion.job import ingest
from sparkdl.ingestion.publish import Journal
from sparkdl.spark import get_spark
from sparkdl.store.storage import HadoopFS


def die_halfway_through_apply() -> None:
    """Patch publish.apply: apply the first half of the steps, then SIGKILL the process group."""
    original = publish.apply

    def apply_half_then_die(fs: HadoopFS, output: str, journal: Journal) -> None:
        steps = journal.steps
        original(fs, output, type(journal)(steps[: len(steps) // 2], journal.manifest))
        os.killpg(os.getpgid(0), signal.SIGKILL)

    publish.apply = apply_half_then_die


def main(annotations: str, out: str, inputs: list[str]) -> None:
    die_halfway_through_apply()
    spark = get_spark("local[2]", {"spark.sql.shuffle.partitions": "4"})
    ingest(inputs, out, spark=spark, labels=Labels(annotations=annotations), mode="append")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
