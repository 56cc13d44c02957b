"""Training throughput with 1 and 2 workers on CPU, same data: samples/s and scaling efficiency.

    python scripts/bench_train.py [--data OUT] [--patches 1024] [--size 32] [--epochs 3]
                                  [--per-worker-batch 32]

Without ``--data``, writes a synthetic ``patches/`` dataset (``--patches`` rows of
``--size``³; bright spheres vs noise) into a temporary folder. Weak scaling: every worker
keeps ``--per-worker-batch``, so the global batch grows with the workers. samples/s is
``steps_per_epoch × global batch / median epoch seconds``, the first (tracing) epoch left
out. Efficiency = samples/s(N) / (N × samples/s(1)). Each run is its own Spark session with
Python worker reuse off, so no training starts in a process where TF already ran.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rows(part: tuple[int, int], size: int) -> Iterator[dict[str, Any]]:
    start, count = part
    grid = np.mgrid[:size, :size, :size] - (size - 1) / 2
    r2 = (grid**2).sum(0)
    for i in range(start, start + count):
        rng = np.random.default_rng(i)
        patch = rng.normal(-850, 70, (size,) * 3)
        label = i % 4 == 0
        if label:
            patch[r2 < (size / 6) ** 2] = 40
        yield {
            "patch_id": f"p{i}",
            "series_uid": f"s{i // 8}",
            "patient_id": f"pat{i // 8}",
            "patch": patch.astype(np.int16),
            "label": np.int32(label),
            "malignancy": np.int32(-1),
            "diameter_mm": np.float32(0),
            "center": np.zeros(3),
            "source": "sampled",
            "split": "train" if i % 10 < 8 else "val",
        }


def write_data(out: str, num_patches: int, size: int) -> None:
    from pyspark import cloudpickle

    from sparkdl.spark import get_spark
    from sparkdl.store.storage import to_url
    from sparkdl.store.tables import patch_schema
    from sparkdl.store.writer import rows_per_group, write_dataset

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spark = get_spark("local[2]")
    schema = patch_schema(size)
    parts = [(i, min(64, num_patches - i)) for i in range(0, num_patches, 64)]
    url = to_url(os.path.join(out, "patches"))
    rdd = (
        spark.sparkContext.parallelize(parts, len(parts))
        .flatMap(lambda p: _rows(p, size))
        .map(schema.encode_row)
    )
    frame = spark.createDataFrame(rdd, schema.as_spark_schema())
    write_dataset(frame, schema, url, rows_per_group=rows_per_group(schema, 1))
    spark.stop()


def run_one(data: str, num_workers: int, epochs: int, per_worker_batch: int) -> dict:
    """In this process: one training run on a fresh local session; the chief's summary."""
    from sparkdl.spark import get_spark
    from sparkdl.training.config import TrainConfig
    from sparkdl.training.job import train

    spark = get_spark(
        f"local[{max(2, num_workers)}]",
        {"spark.python.worker.reuse": "false", "spark.ui.enabled": "false"},
    )
    config = TrainConfig(epochs=epochs, batch_size=per_worker_batch * num_workers, augment=False)
    with tempfile.TemporaryDirectory() as model_dir:
        result = train(data, model_dir, config=config, num_workers=num_workers, spark=spark)
    spark.stop()
    return {k: result[k] for k in ("samples_per_second", "train_seconds", "final_loss")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="ingest output folder (with patches/); default: synthetic")
    parser.add_argument("--patches", type=int, default=1024)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-worker-batch", type=int, default=32)
    parser.add_argument("--run-one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.run_one:
        print(
            "RESULT "
            + json.dumps(run_one(args.data, args.run_one, args.epochs, args.per_worker_batch))
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = tmp
            write_data(tmp, args.patches, args.size)
        rows = {}
        for workers in (1, 2):
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--data",
                    data,
                    "--run-one",
                    str(workers),
                    "--epochs",
                    str(args.epochs),
                    "--per-worker-batch",
                    str(args.per_worker_batch),
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            if done.returncode:
                sys.exit(f"{workers} worker(s) failed:\n{done.stderr[-3000:]}")
            rows[workers] = json.loads(done.stdout.split("RESULT ", 1)[1].splitlines()[0])
    base = rows[1]["samples_per_second"]
    data = args.data or f"{args.patches} synthetic {args.size}³ patches"
    print(
        f"\ncores: {os.cpu_count()}, data: {data}, "
        f"epochs: {args.epochs}, per-worker batch: {args.per_worker_batch}"
    )
    print(f"{'workers':>7} | {'samples/s':>9} | {'fit s':>7} | {'efficiency':>10}")
    print("-" * 44)
    for workers, row in rows.items():
        sps = row["samples_per_second"]
        efficiency = sps / (workers * base)
        print(f"{workers:>7} | {sps:>9.1f} | {row['train_seconds']:>7.1f} | {efficiency:>10.0%}")


if __name__ == "__main__":
    main()
