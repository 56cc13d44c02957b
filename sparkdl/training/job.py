"""Distributed training: one Spark barrier task per worker, ``MultiWorkerMirroredStrategy``.

``train(data, model_dir, model_fn=...)`` runs on the driver: it reads what every worker
must agree on from the data (patch shape, train label counts → class weights, how the train
split deals out over shards → steps per epoch, :func:`sparkdl.plan_shards`) into a plain,
picklable :class:`TrainJob`, then runs :func:`~sparkdl.training.worker.train_worker` in
``num_workers`` barrier tasks through :class:`sparkdl.training.runner.TrainingRunner` (which sets
``TF_CONFIG`` and the GPUs). The model is the user's ``model_fn`` or the zoo's
(:mod:`sparkdl.training.models`); sparkdl compiles it.

Each worker reads its own shard of the train split (``shard_index=rank``, tf.data
auto-sharding OFF, repeated forever, the same ``steps_per_epoch`` everywhere so no worker
waits in a collective for a batch that never comes) and the whole val split. Petastorm
shards by row group, so a dataset of few, unequal row groups can give one shard most rows
(e.g. ``[257, 5]``); then (:func:`sparkdl.plan_shards`) every worker reads the whole train split
in its own shuffled order instead, which samples the same data per step. ``BackupAndRestore``
writes ``M/backup`` at every epoch end: when a worker dies, Spark retries the barrier stage
and the new attempt resumes after the last finished epoch.

Writes are the chief's (rank 0): ``M/model.keras``, ``M/history.json``, ``M/config.json``,
``M/tensorboard/``. Saving is collective under this strategy (DESIGN.md), so the other
workers save too, into temporary folders they remove.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from typing import Any

import pyarrow.fs as pafs

from sparkdl import progress
from sparkdl.errors import TrainingError
from sparkdl.store.layout import Dataset
from sparkdl.store.storage import arrow_filesystem, join, open_input
from sparkdl.store.tables import PATCHES, patch_shape
from sparkdl.training.artifact import BACKUP_DIR, MODEL_FILE, PROGRESS_FILE
from sparkdl.training.config import ModelFn, TrainConfig, TrainJob, class_weights

logger = logging.getLogger(__name__)


def _label_counts(spark: Any, url: str, label_field: str) -> dict[str, dict[int, int]]:
    """Rows per label of the train and val splits (rows with an unknown malignancy left out)."""
    from pyspark.sql import functions as F

    frame = spark.read.parquet(url).where(F.col("split").isin("train", "val"))
    frame = frame.where(F.col(label_field) >= 0)  # -1: unknown
    counts: dict[str, dict[int, int]] = {"train": {}, "val": {}}
    for split, label, count in frame.groupBy("split", label_field).count().collect():
        counts[split][int(label)] = int(count)
    return counts


def plan_job(
    data: Dataset | str,
    model_dir: str,
    config: TrainConfig,
    *,
    model_fn: ModelFn,
    num_workers: int,
    use_gpu: bool,
    spark: Any,
) -> TrainJob:
    """Read the data's shape, label counts and shard sizes; decide steps and class weights."""
    from sparkdl.training.sharding import plan_shards

    dataset = Dataset.of(data)
    url = dataset.url(PATCHES)
    shape, _ = patch_shape(url)
    plan = plan_shards(
        dataset,
        batch_size=config.batch_size,
        num_workers=num_workers,
        split="train",
        label_field=config.label_field,
        min_steps=config.min_steps_per_epoch,
    )
    counts = _label_counts(spark, url, config.label_field)
    weights = class_weights(counts["train"]) if config.class_weight == "balanced" else None
    per_worker = config.batch_size // num_workers
    return TrainJob(
        data=dataset.root,
        model_dir=str(model_dir),
        config=config,
        model_fn=model_fn,
        num_workers=num_workers,
        use_gpu=use_gpu,
        input_shape=(shape[0], shape[1], shape[2], 1),
        num_shards=plan.num_shards,
        steps_per_epoch=plan.steps_per_epoch,
        validation_steps=math.ceil(sum(counts["val"].values()) / per_worker),
        class_weight=weights,
        train_counts=counts["train"],
    )


def zoo_model_fn(config: TrainConfig) -> ModelFn:
    """The zoo's model ``config.model`` (``cnn3d``, ``resnet3d``) with the config's sizes."""
    from sparkdl.training.models import build_model

    return functools.partial(
        build_model,
        config.model,
        task=config.task,
        base_filters=config.base_filters,
        num_stages=config.num_stages,
        dropout=config.dropout,
    )


def train(
    data: Dataset | str,
    model_dir: str,
    *,
    config: TrainConfig | None = None,
    model_fn: ModelFn | None = None,
    num_workers: int = 1,
    use_gpu: bool = False,
    spark: Any = None,
) -> dict[str, Any]:
    """Train a model on ``data``'s patches with ``num_workers`` Spark barrier tasks.

    ``model_fn(input_shape)`` returns the uncompiled ``tf_keras.Model`` to train (input
    ``(D, H, W, 1)`` patches windowed to [0, 1], output one sigmoid probability per patch);
    default the zoo's ``config.model``. sparkdl compiles it and keeps the sharding, the equal
    steps per worker, ``BackupAndRestore`` and the collective save.

    Returns the chief's summary plus ``workers`` (every worker's summary, rank order) and
    ``model_path``. A previous ``M/backup`` left by an interrupted run is resumed from.
    """
    from sparkdl.spark import get_spark
    from sparkdl.training.capacity import check_capacity
    from sparkdl.training.runner import TrainingRunner
    from sparkdl.training.worker import train_worker

    config = config or TrainConfig()
    spark = spark or get_spark()
    check_capacity(spark, num_workers, use_gpu=use_gpu)  # the first error that matters
    job = plan_job(
        data,
        model_dir,
        config,
        model_fn=model_fn or zoo_model_fn(config),
        num_workers=num_workers,
        use_gpu=use_gpu,
        spark=spark,
    )
    if job.class_weight:
        weights = ", ".join(f"{c}: {w:.2f}" for c, w in sorted(job.class_weight.items()))
        counts = ", ".join(f"{c}: {n}" for c, n in sorted(job.train_counts.items()))
        logger.info("train: class weights %s (train patches per class %s)", weights, counts)
    logger.info(
        "train: %d worker(s) on %s, %d steps/epoch of %d patches, %d epochs",
        num_workers,
        "GPU" if use_gpu else "CPU",
        job.steps_per_epoch,
        config.batch_size,
        config.epochs,
    )
    progress_path = join(model_dir, PROGRESS_FILE)
    if not _exists(join(model_dir, BACKUP_DIR)):
        _remove(progress_path)  # an earlier, finished run's epochs are not this run's
    with progress.follow(lambda: _read_lines(progress_path), _epoch_line):
        results = TrainingRunner(num_workers, use_gpu=use_gpu, spark=spark).run(train_worker, job)
    digests = {r["weights_sha256"] for r in results}
    if len(digests) != 1:
        raise TrainingError(
            f"Workers finished with different weights ({len(digests)} distinct). "
            "Expected identical replicas under MultiWorkerMirroredStrategy."
        )
    return {**results[0], "workers": results, "model_path": join(model_dir, MODEL_FILE)}


def _epoch_line(line: str) -> str:
    """One epoch of ``M/progress.jsonl`` as Keras prints it, on one console line."""
    entry = json.loads(line)
    metrics = " - ".join(
        f"{key}: {value:.4f}"
        for key, value in entry.items()
        if key not in ("epoch", "epochs", "seconds", "samples_per_s") and value is not None
    )
    rate = entry.get("samples_per_s")
    pace = f" - {rate:,.0f} samples/s" if rate else ""
    return (
        f"train: epoch {entry['epoch']}/{entry['epochs']} - {entry['seconds']:.1f} s{pace}"
        f" - {metrics}"
    )


def _read_lines(uri: str) -> list[str]:
    with open_input(uri) as handle:
        return [line for line in handle.read().decode("utf-8").splitlines() if line.strip()]


def _exists(uri: str) -> bool:
    fs, path = arrow_filesystem(uri)
    return bool(fs.get_file_info(path).type != pafs.FileType.NotFound)


def _remove(uri: str) -> None:
    fs, path = arrow_filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)
