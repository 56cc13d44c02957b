"""Storage of 32³ int16 CT patches, chosen by measurement: codec × Parquet compression × row group.

One run:

1. Render a phantom chest (``sparkdl.synth.phantom``) at 1 mm isotropic, the spacing of
   ``patches/``, and save it as ``.npy``. Each patch is a 32³ block cut at a lung point (a
   third of them on a nodule), with its own Gaussian noise (σ 20 HU, as on a chest CT), so
   no two cells share bytes that Parquet's page compression could exploit.
2. Write the same rows with Spark ``local[2]`` (``NdarrayCodec`` ones as sparkdl's Petastorm
   datasets, with ``_common_metadata``) under each
   configuration: ``NdarrayCodec`` (``np.save`` bytes) with zstd / snappy / none, and
   ``CompressedNdarrayCodec`` (``np.savez_compressed``: zlib per cell) with none / zstd, at
   row-group sizes of 2, 8 and 32 MB for the main candidates. Each codec's rows are encoded
   once and cached, so a write measures Parquet, not encoding.
3. Stop Spark, then for each dataset: bytes on disk (Parquet files), and rows/s reading every
   row group with pyarrow and decoding every ``patch`` cell with the codec (one cell at a time,
   as Petastorm does), plus, for ``NdarrayCodec``, the whole-column decode of
   :func:`sparkdl.store.patch_batches.decode_ndarray_cells`; and rows/s through sparkdl's own
   reader (:class:`sparkdl.store.reader.RowGroupReader`, 2 threads, the path of ``make_dataset``)
   for the ``NdarrayCodec`` candidates. Petastorm's ``make_reader`` and its
   ``CompressedNdarrayCodec`` are not on sparkdl's stack any more (the compressed cells are
   ``np.savez_compressed`` bytes, written here as Petastorm's codec writes them). pyarrow reads
   are rows per CPU second of this process, best of 3 passes (the machine may be shared, and
   then the wall clock measures the neighbours); the reader runs once, wall and CPU.

Prints a markdown table and the pick. One run; no repetition, so small differences are noise.

    .venv/bin/python scripts/bench_storage.py [--patches 3000]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

SIZE = 32
NOISE_HU = 20.0


@dataclass(frozen=True)
class Config:
    codec: str  # "ndarray" | "compressed"
    compression: str  # Parquet compression
    row_group_mb: int
    reader: bool = False  # also measure sparkdl's reader

    @property
    def name(self) -> str:
        return f"{self.codec}-{self.compression}-{self.row_group_mb}mb"


CONFIGS = [
    Config("ndarray", "zstd", 2, reader=True),
    Config("ndarray", "zstd", 8, reader=True),
    Config("ndarray", "zstd", 32),
    Config("ndarray", "snappy", 8),
    Config("ndarray", "uncompressed", 8),
    Config("compressed", "uncompressed", 2),
    Config("compressed", "uncompressed", 8),
    Config("compressed", "zstd", 8),
]


def render_chest(path: str, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Render a 1 mm phantom chest to ``path`` (int16 HU, noise-free); return lung and nodule
    centres as voxel indices (z, y, x) where patches may be cut."""
    from sparkdl.synth.anatomy import make_phantom, sample_lung_point
    from sparkdl.synth.phantom import Grid, render_hu

    rng = np.random.default_rng(seed)
    phantom = make_phantom(rng, min_nodule_radius_mm=2.0, num_nodules=4)
    (cx, cy), (ax, ay) = phantom.center, phantom.body_axes
    z_lo, z_hi = phantom.lung_z_range
    shape = (int(z_hi - z_lo) + 2 * SIZE, int(2 * ay) + 20, int(2 * ax) + 20)
    origin = (cx - shape[2] / 2, cy - shape[1] / 2, z_lo - SIZE)
    grid = Grid(origin=origin, steps=((0, 0, 1.0), (0, 1.0, 0), (1.0, 0, 0)), shape=shape)
    hu = render_hu(phantom, grid)
    np.save(path, np.clip(np.rint(hu), -32768, 32767).astype(np.int16))
    to_index = lambda p: np.array([p[2] - origin[2], p[1] - origin[1], p[0] - origin[0]])  # noqa: E731
    lung = [to_index(sample_lung_point(rng, phantom, 3.0)) for _ in range(200)]
    nodules = [to_index(n.center) for n in phantom.nodules]
    return np.array(lung), np.array(nodules)


def make_patch(volume: np.ndarray, lung: np.ndarray, nodules: np.ndarray, index: int) -> np.ndarray:
    rng = np.random.default_rng(index)
    points = nodules if index % 3 == 0 else lung
    centre = points[index % len(points)] + rng.integers(-6, 7, size=3)
    low = np.clip(np.round(centre).astype(int) - SIZE // 2, 0, np.array(volume.shape) - SIZE)
    block = volume[low[0] : low[0] + SIZE, low[1] : low[1] + SIZE, low[2] : low[2] + SIZE].astype(
        np.float32
    )
    block += rng.standard_normal(block.shape, dtype=np.float32) * np.float32(NOISE_HU)
    return np.clip(np.rint(block), -32768, 32767).astype(np.int16)


def encode_patch(codec: str, patch: np.ndarray) -> bytes:
    """A ``patch`` cell: ``np.save`` bytes (NdarrayCodec) or ``np.savez_compressed`` bytes
    (Petastorm's CompressedNdarrayCodec: the array under the name ``arr``)."""
    buffer = io.BytesIO()
    if codec == "compressed":
        np.savez_compressed(buffer, arr=patch)
    else:
        np.save(buffer, patch)
    return buffer.getvalue()


def decode_patch(codec: str, cell: bytes) -> np.ndarray:
    loaded = np.load(io.BytesIO(cell))
    return loaded["arr"] if codec == "compressed" else loaded


def write_all(
    base: str, volume_path: str, lung: np.ndarray, nodules: np.ndarray, num_patches: int
) -> dict[str, float]:
    """Write every configuration; returns write seconds per configuration."""
    from pyspark import StorageLevel

    from sparkdl.spark import get_spark
    from sparkdl.store.metadata import write_metadata
    from sparkdl.store.tables import patch_schema

    spark = get_spark("local[2]", {"spark.driver.memory": "2g", "spark.ui.enabled": "false"})
    schema = patch_schema(SIZE)
    seconds: dict[str, float] = {}
    for codec in ("ndarray", "compressed"):

        def rows(indices: Any, codec: str = codec) -> Any:
            volume = np.load(volume_path, mmap_mode="r")
            for i in indices:
                row = schema.encode_row(
                    {
                        "patch_id": f"p{i}",
                        "series_uid": f"2.25.{i // 100}",
                        "patient_id": f"pat{i // 100}",
                        "patch": np.zeros((SIZE,) * 3, np.int16),
                        "label": np.int32(i % 3 == 0),
                        "malignancy": np.int32(-1),
                        "diameter_mm": np.float32(-1.0),
                        "center": np.zeros(3),
                        "source": "candidate",
                        "split": "train",
                    }
                )
                patch = encode_patch(codec, make_patch(volume, lung, nodules, i))
                yield (*row[:3], patch, *row[4:])

        t0 = time.perf_counter()
        frame = spark.createDataFrame(
            spark.sparkContext.parallelize(range(num_patches), 8).mapPartitions(rows),
            schema.as_spark_schema(),
        ).persist(StorageLevel.DISK_ONLY)
        frame.count()
        print(
            f"encoded {num_patches} rows with {codec}: {time.perf_counter() - t0:.1f} s", flush=True
        )
        for config in (c for c in CONFIGS if c.codec == codec):
            url = "file://" + os.path.join(base, config.name)
            t0 = time.perf_counter()
            frame.coalesce(2).write.mode("overwrite").option(
                "compression", config.compression
            ).option("parquet.block.size", config.row_group_mb * 2**20).option(
                "parquet.page.size.row.check.min", 1
            ).parquet(url)
            if codec == "ndarray":
                write_metadata(url, schema)
            seconds[config.name] = time.perf_counter() - t0
            print(f"wrote {config.name}: {seconds[config.name]:.1f} s", flush=True)
        frame.unpersist()
    spark.stop()
    return seconds


def parquet_files(folder: str) -> list[str]:
    return sorted(
        os.path.join(folder, n)
        for n in os.listdir(folder)
        if n.endswith(".parquet") and not n.startswith(("_", "."))
    )


def measure_pyarrow(folder: str, codec: str, passes: int = 3) -> dict[str, Any]:
    """Rows per CPU second reading every row group and decoding every cell, one cell at a time
    with the codec and (``NdarrayCodec``) the whole column at once.

    CPU time of this process (all its threads), best of ``passes``: on a shared machine the
    wall clock measures the other processes as much as this one."""
    import pyarrow.parquet as pq

    from sparkdl.store.patch_batches import decode_ndarray_cells

    def one_pass(batched: bool) -> tuple[int, int, int]:
        num_rows = num_groups = checksum = 0
        for path in parquet_files(folder):
            parquet = pq.ParquetFile(path)
            num_groups += parquet.metadata.num_row_groups
            for g in range(parquet.metadata.num_row_groups):
                table = parquet.read_row_group(g, columns=["patch", "label"])
                if batched:
                    patches = decode_ndarray_cells(
                        table.column("patch"), (SIZE,) * 3, np.dtype(np.int16)
                    )
                    checksum += int(
                        patches[:, SIZE // 2, SIZE // 2, SIZE // 2].astype(np.int64).sum()
                    )
                else:
                    for cell in table.column("patch").to_pylist():
                        checksum += int(decode_patch(codec, cell)[SIZE // 2, SIZE // 2, SIZE // 2])
                num_rows += table.num_rows
        return num_rows, num_groups, checksum

    def best(batched: bool) -> tuple[float, int, int, int]:
        rates = []
        for _ in range(passes):
            t0 = time.process_time()
            num_rows, num_groups, checksum = one_pass(batched)
            rates.append(num_rows / (time.process_time() - t0))
        return max(rates), num_rows, num_groups, checksum

    per_cell, num_rows, num_groups, checksum = best(False)
    batched = None
    if codec == "ndarray":
        batched, _, _, batch_checksum = best(True)
        assert batch_checksum == checksum, "batched decode disagrees with the codec"
    return {"rows": num_rows, "row_groups": num_groups, "per_cell": per_cell, "batched": batched}


def measure_reader(url: str) -> tuple[float, float]:
    """Rows/s through sparkdl's reader (2 threads): wall clock and per CPU second of the process."""
    from sparkdl.store.patch_batches import patch_chunk_reader
    from sparkdl.store.reader import RowGroupReader
    from sparkdl.training.sharding import shard_groups

    t0, c0 = time.perf_counter(), time.process_time()
    fs, groups = shard_groups(url, 0, 1)
    read = patch_chunk_reader(None, "label", (SIZE,) * 3, np.dtype(np.int16))
    num_rows = 0
    with RowGroupReader(
        fs, groups, read, num_epochs=1, shuffle=False, seed=0, workers_count=2, results_queue_size=4
    ) as reader:
        for patches, _ in reader:
            num_rows += int((patches[:, SIZE // 2, SIZE // 2, SIZE // 2] > -32768).sum())
    return num_rows / (time.perf_counter() - t0), num_rows / (time.process_time() - c0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=3000)
    parser.add_argument("--keep", action="store_true", help="keep the datasets (printed path)")
    args = parser.parse_args(argv)
    base = tempfile.mkdtemp(prefix="bench_storage_")
    try:
        t0 = time.perf_counter()
        volume_path = os.path.join(base, "chest.npy")
        lung, nodules = render_chest(volume_path)
        print(
            f"rendered phantom {np.load(volume_path, mmap_mode='r').shape}: "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        write_s = write_all(base, volume_path, lung, nodules, args.patches)
        raw = args.patches * SIZE**3 * 2
        results = []
        for config in CONFIGS:
            folder = os.path.join(base, config.name)
            size = sum(os.path.getsize(p) for p in parquet_files(folder))
            read = measure_pyarrow(folder, config.codec)
            reader = measure_reader("file://" + folder) if config.reader else None
            results.append((config, size, read, reader))
            print(f"measured {config.name}", flush=True)
        print(
            f"\n{args.patches} patches of {SIZE}³ int16 ({raw / 2**20:.0f} MiB raw), one run, "
            f"{os.cpu_count()} cores\n"
        )
        print(
            "| codec | Parquet | row group | MiB on disk | % of raw | row groups | write s "
            "| pyarrow + codec.decode rows/CPU-s | pyarrow + batch decode rows/CPU-s "
            "| sparkdl reader rows/CPU-s | sparkdl reader rows/s (wall) |"
        )
        print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for config, size, read, reader in results:
            codec = "NdarrayCodec" if config.codec == "ndarray" else "CompressedNdarrayCodec"
            fmt = lambda v: "n/a" if v is None else f"{v:,.0f}"  # noqa: E731
            print(
                f"| {codec} | {config.compression} | {config.row_group_mb} MB | {size / 2**20:.1f} "
                f"| {100 * size / raw:.0f}% | {read['row_groups']} | {write_s[config.name]:.1f} "
                f"| {fmt(read['per_cell'])} | {fmt(read['batched'])} "
                f"| {fmt(reader and reader[1])} | {fmt(reader and reader[0])} |"
            )
        print_pick(results)
        print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    finally:
        if args.keep:
            print(f"datasets kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def print_pick(results: list[tuple[Config, int, dict[str, Any], Any]]) -> None:
    """The rule, fixed before measuring: drop configurations whose best read path costs more
    than twice the CPU of the fastest (reading must not become the bottleneck: the TF input
    path runs at 1.5-3k rows/s, DESIGN.md); among the rest, the fewest bytes (I/O and storage
    are the cost on HDFS/S3); within 2% of those bytes, the most row groups (the reader shards
    and shuffles by row group)."""

    def best_read(read: dict[str, Any]) -> float:
        return max(v for v in (read["per_cell"], read["batched"]) if v is not None)

    read_of = {c.name: read for c, _, read, _ in results}
    fastest = max(best_read(read) for _, _, read, _ in results)
    fast = [
        (size, read["row_groups"], c)
        for c, size, read, _ in results
        if best_read(read) >= 0.5 * fastest
    ]
    smallest_fast = min(size for size, _, _ in fast)
    size, _, pick = max((t for t in fast if t[0] <= 1.02 * smallest_fast), key=lambda t: t[1])
    smallest = min(results, key=lambda r: r[1])
    print(
        f"\npick: {pick.name} ({size / 2**20:.1f} MiB, "
        f"best read {best_read(read_of[pick.name]):,.0f} rows/CPU-s); "
        f"smallest overall: {smallest[0].name} ({smallest[1] / 2**20:.1f} MiB); "
        f"fastest read {fastest:,.0f} rows/CPU-s"
    )


if __name__ == "__main__":
    main()
