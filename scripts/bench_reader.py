"""Reader throughput: sparkdl.make_dataset vs Petastorm's reader vs the raw pyarrow limit.

One run: write a patches dataset (``patch_schema(32)``, >= 5,000 rows) with Spark
``local[2]``, stop Spark, then measure each way in a fresh subprocess (so its peak RSS is
its own and TF never shares a process with Spark):

* ``raw``: pyarrow reads this shard's row groups, the NdarrayCodec buffers are sliced into
  int16 arrays; no Petastorm, no TF: the limit.
* ``petastorm``: ``make_reader(cur_shard, shard_count)``, rows stacked into float32 batches in
  NumPy: Petastorm's own reader (one Python row at a time). Petastorm 0.13.1 cannot be imported
  on sparkdl's stack (pyarrow >= 16), so this way runs in the interop venv
  (``scripts/setup_interop.sh``: pyarrow 14, NumPy 1.26, no TensorFlow); before sparkdl owned
  the format it was measured with ``make_petastorm_dataset``, whose TF hand-over cost more.
* ``make_dataset``: :func:`sparkdl.make_dataset` (shuffle, lung window; no augmentation,
  as for ``split != "train"``), and once with augmentation.

Each way reads shard 0 of 1 and of 2 shards (the same row groups for every way), repeating
epochs; rows/s and CPU seconds (all threads of the process) over ``--rows`` rows after
``--warmup`` rows. The machine is shared, so wall rates are noisy: the ways run interleaved
for ``--rounds`` rounds and the table shows, per way, the best rows/s and the lowest CPU
cost of its rounds. Prints a markdown table.

    .venv/bin/python scripts/bench_reader.py [--patches 5000] [--rows 6000] [--rounds 3]
        [--data DIR]   (reuse the dataset in DIR, writing it there first if missing)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

SIZE = 32
BATCH_SIZE = 64


_GRID = np.mgrid[:SIZE, :SIZE, :SIZE].astype(np.float32) - SIZE / 2
_RADIUS2 = (_GRID**2).sum(axis=0)


def _patch(index: int) -> np.ndarray:
    """Lung-like HU: parenchyma with noise, a vessel, a nodule; compresses like CT does."""
    rng = np.random.default_rng(index)
    hu = rng.integers(-900, -800, (SIZE, SIZE, SIZE), dtype=np.int16)
    _, y, x = _GRID
    hu[(y - rng.uniform(-8, 8)) ** 2 + (x - rng.uniform(-8, 8)) ** 2 < rng.uniform(2, 9)] = 40
    hu[rng.uniform(2, 8) ** 2 > _RADIUS2] = int(rng.normal(30, 15))
    return hu


def _row(index: int) -> dict[str, Any]:
    return {
        "patch_id": f"p{index}",
        "series_uid": f"2.25.{index // 50}",
        "patient_id": f"pat{index // 50}",
        "patch": _patch(index),
        "label": np.int32(index % 3 == 0),
        "malignancy": np.int32(index % 3 - 1),
        "diameter_mm": np.float32(6.0),
        "center": np.zeros(3),
        "source": "candidate",
        "split": ("train", "train", "val", "test")[index % 4],
    }


def write_dataset(url: str, num_patches: int, row_group_mb: int) -> None:
    from pyspark import cloudpickle

    from sparkdl.spark import get_spark
    from sparkdl.store.tables import patch_schema
    from sparkdl.store.writer import rows_per_group
    from sparkdl.store.writer import write_dataset as write_petastorm

    if __name__ != "__main__":  # imported: Python workers cannot import this script
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spark = get_spark("local[2]", {"spark.driver.memory": "2g"})
    schema = patch_schema(SIZE)
    rows = spark.sparkContext.parallelize(range(num_patches), 8).map(
        lambda i: schema.encode_row(_row(i))
    )
    frame = spark.createDataFrame(rows, schema.as_spark_schema()).coalesce(4)
    write_petastorm(frame, schema, url, rows_per_group=rows_per_group(schema, row_group_mb))
    spark.stop()


def _raw_batches(url: str, shard: int, num_shards: int) -> Iterator[int]:
    """pyarrow only: this shard's row groups (Petastorm's i % n rule), cells decoded as a block
    by :func:`sparkdl.store.patch_batches.decode_ndarray_cells` and copied out of Arrow's buffer."""
    import glob

    import pyarrow.parquet as pq

    from sparkdl.store.patch_batches import decode_ndarray_cells

    files = sorted(glob.glob(os.path.join(url.removeprefix("file://"), "*.parquet")))
    pieces = [(f, g) for f in files for g in range(pq.ParquetFile(f).num_row_groups)]
    mine = [piece for index, piece in enumerate(pieces) if index % num_shards == shard]
    while True:
        for path, group in mine:
            table = pq.ParquetFile(path).read_row_group(group, columns=["patch", "label"])
            patches = np.ascontiguousarray(
                decode_ndarray_cells(table.column("patch"), (SIZE,) * 3, np.dtype(np.int16))
            )
            labels = table.column("label").to_numpy()
            assert patches.shape[1:] == (SIZE,) * 3
            assert len(patches) == len(labels) == table.num_rows
            yield table.num_rows


def _numpy_batches(reader: Any) -> Iterator[int]:
    """Petastorm rows stacked into float32 batches, as a user of make_reader would."""
    while True:
        rows = [next(reader) for _ in range(BATCH_SIZE)]
        x = np.stack([row.patch for row in rows]).astype(np.float32)[..., None]
        y = np.array([row.label for row in rows], dtype=np.float32)
        assert x.shape[0] == y.shape[0]
        yield len(rows)


def _tf_batches(dataset: Any) -> Iterator[int]:
    for x, _ in dataset:
        yield int(x.shape[0])


def measure(way: str, url: str, num_shards: int, warmup: int, rows: int) -> dict[str, float]:
    """Runs in a fresh subprocess: rows/s of one way on shard 0, and peak RSS."""
    if way == "raw":
        batches = _raw_batches(url, 0, num_shards)
    elif way == "petastorm":
        from petastorm import make_reader

        reader = make_reader(
            url,
            schema_fields=["patch", "label"],
            cur_shard=0,
            shard_count=num_shards,
            num_epochs=None,
            seed=1,
        )
        batches = _numpy_batches(reader)
    else:
        from sparkdl import ReadOptions, make_dataset

        options = ReadOptions(seed=1, augment=way == "make_dataset+augment")
        dataset = make_dataset(
            url.rsplit("/patches", 1)[0],
            batch_size=BATCH_SIZE,
            shard_index=0,
            num_shards=num_shards,
            num_epochs=None,
            options=options,
        )
        batches = _tf_batches(dataset)
    baseline_mb = _status_mb("VmRSS")
    seen = 0
    while seen < warmup:
        seen += next(batches)
    start, cpu_start, seen = time.perf_counter(), _cpu_seconds(), 0
    while seen < rows:
        seen += next(batches)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_start
    peak_mb = _status_mb("VmHWM")  # this process image's peak: ru_maxrss would survive exec
    return {
        "rows_per_s": seen / seconds,
        "rows_per_cpu_s": seen / cpu,
        "peak_rss_mb": peak_mb,
        "import_rss_mb": baseline_mb,
    }


def _interop_python() -> str:
    """The Petastorm venv's interpreter (built by scripts/setup_interop.sh if missing)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "setup_interop.sh")
    found = (
        subprocess.run(["bash", script], check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    if found.startswith("unavailable:"):
        sys.exit(f"bench_reader: the Petastorm way needs the interop venv: {found}")
    return found


def _status_mb(key: str) -> float:
    """A memory line of /proc/self/status (``VmRSS``: now, ``VmHWM``: peak) in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=5000)
    parser.add_argument("--row-group-mb", type=int, default=8)
    parser.add_argument("--rows", type=int, default=6000, help="rows timed per way")
    parser.add_argument("--warmup", type=int, default=640)
    parser.add_argument("--rounds", type=int, default=3, help="best of N runs per way")
    parser.add_argument("--data", help="directory of the dataset (kept; written if missing)")
    parser.add_argument("--way", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--shards", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.way:
        import warnings

        warnings.simplefilter("ignore", FutureWarning)  # Petastorm's legacy pyarrow calls
        print(
            json.dumps(measure(args.way, args.url, args.shards, args.warmup, args.rows)), flush=True
        )
        os._exit(0)  # reader threads are daemons still blocked on queues: do not join them

    with tempfile.TemporaryDirectory(prefix="bench_reader_") as scratch:
        workdir = args.data or scratch
        url = f"file://{workdir}/patches"
        start = time.perf_counter()
        if not os.path.exists(f"{workdir}/patches/_common_metadata"):
            write_dataset(url, args.patches, args.row_group_mb)
        import pyarrow.parquet as pq

        files = [f for f in sorted(os.listdir(f"{workdir}/patches")) if f.endswith(".parquet")]
        groups = sum(pq.ParquetFile(f"{workdir}/patches/{f}").num_row_groups for f in files)
        size_mb = sum(os.path.getsize(f"{workdir}/patches/{f}") for f in files) / 2**20
        num_rows = sum(pq.ParquetFile(f"{workdir}/patches/{f}").metadata.num_rows for f in files)
        print(
            f"{num_rows} patches of {SIZE}³ int16 ({time.perf_counter() - start:.0f} s):"
            f" {len(files)} files, {groups} row groups, {size_mb:.0f} MiB zstd"
        )
        results: dict[tuple[str, int], dict[str, float]] = {}
        petastorm_python = _interop_python()
        ways = [
            ("raw", 1),
            ("raw", 2),
            ("petastorm", 1),
            ("petastorm", 2),
            ("make_dataset", 1),
            ("make_dataset", 2),
            ("make_dataset+augment", 1),
            ("make_dataset+augment", 2),
        ]
        for _ in range(args.rounds):  # interleaved, so that load from others hits every way
            for way, shards in ways:
                python = petastorm_python if way == "petastorm" else sys.executable
                out = subprocess.run(
                    [
                        python,
                        __file__,
                        "--way",
                        way,
                        "--url",
                        url,
                        "--shards",
                        str(shards),
                        "--rows",
                        str(args.rows),
                        "--warmup",
                        str(args.warmup),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"  {way} shards={shards}: {result}", flush=True)
                best = results.setdefault((way, shards), dict(result))
                for key in result:  # best rates of the rounds, and their highest RSS
                    best[key] = max(best[key], result[key])

    print(
        f"\nshard 0 of N, batch {BATCH_SIZE}, {args.rows} rows timed after {args.warmup},"
        f" best rates of {args.rounds} rounds; highest RSS of a fresh process per way;"
        f" {os.cpu_count()} cores,"
        f" load average at the end {os.getloadavg()[0]:.1f}. CPU s/1k rows counts every"
        " thread of the process: the cost of a row, whatever else runs on the machine;"
        " 'vs' columns are rate ratios (higher is better).\n"
    )
    print(
        "| way | shards | rows/s | vs petastorm | vs raw | CPU s/1k rows | vs petastorm | vs raw "
        "| peak RSS MiB | after imports MiB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (way, shards), result in results.items():
        rate = result["rows_per_s"]
        cells = [
            way,
            str(shards),
            f"{rate:,.0f}",
            f"{rate / results['petastorm', shards]['rows_per_s']:.1f}×",
            f"{rate / results['raw', shards]['rows_per_s']:.0%}",
        ]
        per_cpu = result["rows_per_cpu_s"]
        cells += [
            f"{1000 / per_cpu:.2f}",
            f"{per_cpu / results['petastorm', shards]['rows_per_cpu_s']:.1f}×",
            f"{per_cpu / results['raw', shards]['rows_per_cpu_s']:.0%}",
        ]
        cells += [f"{result['peak_rss_mb']:,.0f}", f"{result['import_rss_mb']:,.0f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
