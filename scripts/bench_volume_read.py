"""Stored volumes reaching a Python task: through Spark's reader vs read by the task itself.

``spark``: ``spark.read.parquet(volumes).mapInArrow(...)``, one volume per Arrow batch, as the
patch stage read volumes until issue 27; ``task``: the driver lists the part files
(:func:`sparkdl.store.volume_rows.volume_files`) and each task reads its own with pyarrow
(:func:`~sparkdl.store.volume_rows.map_volumes`), as the patch stage does now. Both tasks
decode every volume (``VolumeSchema.decode_row``) and return its voxel sum, which must agree.

The volumes: ``--volumes`` synthetic 512² series of ``--slices`` slices each, assembled and
written by the volume stage's own task body (``volume_stage._assemble``). Spark ``local[2]``;
each way runs ``--repeat`` times, alternating, after one warm-up run of each; wall seconds
(the JVM's and the workers' CPU are not this process's), the median.

    .venv/bin/python scripts/bench_volume_read.py [--volumes 4] [--slices 260] [--repeat 3]

Measured on 2 shared cores (load average ~1.5), Python 3.11, pyspark 4.3, defaults:

4 volumes of 260 × 512², 364 MB of Parquet

| way | wall s (median) | s per volume | task ÷ spark |
|---|---|---|---|
| through Spark's reader | 3.96 | 0.99 | |
| read by the task | 1.00 | 0.25 | 0.25 |

(A second run, after the driver stopped reading footers: 0.77 and 0.24 s a volume, 0.32×.)

In whole ingests (CLI, ``--export-dicom``, ``local[2]``, one run each way, same machine):
``patches_s`` of the real LIDC series 7.0–7.4 → 5.0 s, of 1,035 files of 512² 15.0 → 6.6 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import pyarrow as pa  # noqa: E402
from bench_assembly import synthetic_series  # noqa: E402

from sparkdl.assembly.options import VolumeOptions  # noqa: E402
from sparkdl.ingestion import volume_stage  # noqa: E402
from sparkdl.spark import ARROW_BATCH_CONF, get_spark, session_conf  # noqa: E402
from sparkdl.store.tables import VolumeSchema  # noqa: E402
from sparkdl.store.volume_rows import map_volumes, volume_files  # noqa: E402

RESULT = "total LONG, volumes LONG"


def _sums(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    total = count = 0
    for batch in batches:
        for row in batch.to_pylist():
            total += int(VolumeSchema.decode_row(row)["volume"].sum(dtype="int64"))
            count += 1
    yield pa.RecordBatch.from_pylist([{"total": total, "volumes": count}])


def through_spark(spark: Any, url: str) -> tuple[int, int]:
    with session_conf(spark, ARROW_BATCH_CONF, "1"):
        rows = spark.read.parquet(url).mapInArrow(_sums, RESULT).collect()
    return sum(r.total for r in rows), sum(r.volumes for r in rows)


def by_the_task(spark: Any, url: str) -> tuple[int, int]:
    rows = map_volumes(spark, url, volume_files(url), _sums, RESULT).collect()
    return sum(r.total for r in rows), sum(r.volumes for r in rows)


def write_volumes(folder: Path, count: int, slices: int) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    table = synthetic_series(slices)
    for number in range(count):
        uid = f"2.25.77{number}"
        series = table.set_column(
            table.schema.get_field_index("series_uid"), "series_uid", pa.array([uid] * len(table))
        )
        volume_stage._assemble(series, VolumeOptions(), None, folder.as_uri(), f"v{number}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, default=4)
    parser.add_argument("--slices", type=int, default=260)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_volume_read"))
    args = parser.parse_args()
    folder = args.work / "volumes"
    write_volumes(folder, args.volumes, args.slices)
    size = sum(f.stat().st_size for f in folder.glob("part-*.parquet")) / 1024**2
    spark = get_spark("local[2]")
    ways = {"spark": through_spark, "task": by_the_task}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    answers = {}
    for run in range(args.repeat + 1):
        for name, way in ways.items():
            start = time.perf_counter()
            answers[name] = way(spark, folder.as_uri())
            if run:  # the first round warms up the workers
                seconds[name].append(time.perf_counter() - start)
    spark.stop()
    if answers["spark"] != answers["task"]:
        raise AssertionError(f"the two ways read different volumes: {answers}")
    before, after = (statistics.median(seconds[name]) for name in ways)
    print(f"{args.volumes} volumes of {args.slices} × 512², {size:.0f} MB of Parquet\n")
    print("| way | wall s (median) | s per volume | task ÷ spark |")
    print("|---|---|---|---|")
    print(f"| through Spark's reader | {before:.2f} | {before / args.volumes:.2f} | |")
    print(f"| read by the task | {after:.2f} | {after / args.volumes:.2f} | {after / before:.2f} |")
    shutil.rmtree(args.work, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)  # pyarrow's threads may abort an ordinary interpreter exit here


if __name__ == "__main__":
    main()
