"""Distributed training: one Spark barrier task per worker, ``MultiWorkerMirroredStrategy``.

``train(data_dir, model_dir, ...)`` runs on the driver: it reads what every worker must
agree on from the data (patch shape, train label counts → class weights, how the train
split deals out over shards → steps per epoch) into a plain, picklable :class:`TrainJob`,
then runs :func:`train_worker` in ``num_workers`` barrier tasks through
:class:`sparkdl.runner.TrainingRunner` (which sets ``TF_CONFIG`` and the GPUs).

Each worker reads its own shard of the train split (``shard_index=rank``, tf.data
auto-sharding OFF, repeated forever, the same ``steps_per_epoch`` everywhere so no worker
waits in a collective for a batch that never comes) and the whole val split. Petastorm
shards by row group, so a dataset of few, unequal row groups can give one shard most rows
(e.g. ``[257, 5]``); then (:func:`plan_shards`) every worker reads the whole train split
in its own shuffled order instead, which samples the same data per step. ``BackupAndRestore``
writes ``M/backup`` at every epoch end: when a worker dies, Spark retries the barrier stage
and the new attempt resumes after the last finished epoch.

Writes are the chief's (rank 0): ``M/model.keras``, ``M/history.json``, ``M/config.json``,
``M/tensorboard/``. Saving is collective under this strategy (DESIGN.md), so the other
workers save too, into temporary folders they remove.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from .config import check_ranges, from_mapping, read_yaml
from .errors import ConfigError, InputError, TrainingError
from .storage import join, to_url

logger = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
LABEL_FIELDS = {"nodule": "label", "malignancy": "malignancy"}
#: Shards whose smallest holds less than this fraction of an even share are too uneven to
#: train on: its worker would repeat a few rows for half of every global batch.
MIN_SHARD_BALANCE = 0.5


@dataclass(frozen=True)
class TrainConfig:
    """``conf/train.yaml``: the model, the optimisation and the data view. Validates itself."""

    model: str = "cnn3d"
    task: Literal["nodule", "malignancy"] = "nodule"
    base_filters: int = 16
    num_stages: int = 3
    dropout: float = 0.3
    epochs: int = 20
    #: Least optimizer steps per epoch. A small train split gives few steps per pass
    #: (epochs × rows ÷ batch), too few to learn from; its epochs then repeat the split
    #: (it is read with no end) up to this many steps. 0 or 1: an epoch is one pass.
    min_steps_per_epoch: int = 8
    #: Global batch, split evenly over the workers.
    batch_size: int = 32
    #: Initial rate of a cosine decay to zero over all epochs.
    learning_rate: float = 2e-3
    class_weight: Literal["balanced", "none"] = "balanced"
    augment: bool = False
    #: HU window (level, width) mapped to [0, 1].
    window: tuple[float, float] = (-600.0, 1500.0)
    #: Probability above which ``evaluate`` calls a patch positive.
    threshold: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        from .models import MODELS

        check_ranges(self, [
            ("model", self.model in MODELS, f"one of {sorted(MODELS)}"),
            ("base_filters", self.base_filters >= 1, "an integer >= 1"),
            ("num_stages", 1 <= self.num_stages <= 5, "an integer in [1, 5]"),
            ("dropout", 0.0 <= self.dropout < 1.0, "a number in [0, 1)"),
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("min_steps_per_epoch", self.min_steps_per_epoch >= 0, "an integer >= 0"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("learning_rate", self.learning_rate > 0, "a number > 0"),
            ("window", self.window[1] > 0, "[level, width] with width > 0"),
            ("threshold", 0.0 < self.threshold < 1.0, "a number in (0, 1)"),
        ])

    @property
    def label_field(self) -> str:
        return LABEL_FIELDS[self.task]

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> TrainConfig:
        """Read ``path`` (YAML; defaults when None); ``overrides`` (CLI flags, None ignored) win."""
        mapping = read_yaml(path)
        mapping.update({key: value for key, value in overrides.items() if value is not None})
        return from_mapping(cls, mapping, where=str(path or "train config"))


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs, decided once on the driver: plain values, picklable."""

    data_url: str
    model_dir: str
    config: dict[str, Any]
    num_workers: int
    use_gpu: bool
    input_shape: tuple[int, int, int, int]
    #: ``num_workers`` (worker ``rank`` reads shard ``rank``) or 1 (each reads the whole split).
    num_shards: int
    steps_per_epoch: int
    validation_steps: int
    class_weight: dict[int, float] | None
    train_counts: dict[int, int]


def class_weights(counts: dict[int, int]) -> dict[int, float]:
    """Balanced weights ``n / (2 * n_c)`` from per-class counts of a binary task."""
    total = sum(counts.values())
    missing = [c for c in (0, 1) if counts.get(c, 0) == 0]
    if missing:
        raise InputError(
            f"The train split has no rows of class {missing}. Received counts: {counts}. "
            "Expected both classes: check the annotations/candidates given to ingest."
        )
    return {c: total / (2.0 * counts[c]) for c in (0, 1)}


def plan_shards(shard_rows: Sequence[int], batch_size: int,
                min_steps: int = 1) -> tuple[int, int]:
    """``(num_shards, steps_per_epoch)`` for a train split whose shards hold ``shard_rows``.

    ``batch_size`` is the global batch, split evenly over the ``len(shard_rows)`` shards
    (one per worker). Balanced shards: every worker reads its own, and an epoch is the
    steps the smallest shard gives. When the smallest holds less than ``MIN_SHARD_BALANCE``
    of an even share, one shard: each worker reads the whole split (its own shuffle seed)
    and an epoch is the split's rows over the global batch. At least ``min_steps`` (and one)
    either way: shards are read with no end, so a short one repeats within the epoch.
    """
    if not shard_rows or batch_size < len(shard_rows):
        raise ConfigError(f"plan_shards needs one row count per shard and batch_size >= the "
                          f"number of shards. Received: batch_size={batch_size}, "
                          f"shard_rows={list(shard_rows)}")
    num_shards, total = len(shard_rows), sum(shard_rows)
    if num_shards > 1 and min(shard_rows) >= MIN_SHARD_BALANCE * total / num_shards:
        steps = min(shard_rows) // (batch_size // num_shards)
    else:
        num_shards, steps = 1, total // batch_size
    if steps < min_steps:
        logger.info("train: %d steps per pass over the train split; an epoch repeats it up to "
                    "%d steps", steps, min_steps)
    return num_shards, max(1, min_steps, steps)


def _label_counts(spark: Any, url: str, label_field: str) -> dict[str, dict[int, int]]:
    """Rows per label of the train and val splits (rows with an unknown malignancy left out)."""
    from pyspark.sql import functions as F

    frame = spark.read.parquet(url).where(F.col("split").isin("train", "val"))
    if label_field == "malignancy":
        frame = frame.where(F.col("malignancy") >= 0)
    counts: dict[str, dict[int, int]] = {"train": {}, "val": {}}
    for split, label, count in frame.groupBy("split", label_field).count().collect():
        counts[split][int(label)] = int(count)
    return counts


def plan_job(
    data_dir: str, model_dir: str, config: TrainConfig, *, num_workers: int, use_gpu: bool, spark: Any
) -> TrainJob:
    """Read the data's shape, label counts and shard sizes; decide steps and class weights."""
    from . import dataset

    if num_workers < 1:
        raise ConfigError(f"num_workers must be >= 1. Received: num_workers={num_workers}")
    if config.batch_size % num_workers:
        raise ConfigError(
            f"batch_size {config.batch_size} is not divisible by num_workers={num_workers}: every "
            "worker takes an equal part of the global batch. Change batch_size or --num-workers."
        )
    url = to_url(join(data_dir, "patches"))
    shape, _ = dataset.patch_shape(url)
    per_worker = config.batch_size // num_workers
    counts = _label_counts(spark, url, config.label_field)
    weights = class_weights(counts["train"]) if config.class_weight == "balanced" else None
    shard_rows = [sum(counts["train"].values())]  # one shard: the whole train split
    if num_workers > 1:
        with contextlib.suppress(InputError):  # fewer row groups than workers: one shard
            shard_rows = dataset.shard_row_counts(url, num_workers, split="train",
                                                  label_field=config.label_field)
    num_shards, steps = plan_shards(shard_rows, config.batch_size, config.min_steps_per_epoch)
    if num_shards < num_workers:
        logger.warning(
            "the train split's row groups (train rows per shard %s) cannot give %d workers a "
            "fair shard each (Petastorm shards by row group): every worker reads the whole "
            "train split in its own order. Write the patches in more, equal row groups to "
            "shard them.", shard_rows, num_workers)
    val_rows = sum(counts["val"].values())
    return TrainJob(
        data_url=url, model_dir=str(model_dir), config=asdict(config), num_workers=num_workers,
        use_gpu=use_gpu, input_shape=(*shape, 1), num_shards=num_shards,  # type: ignore[arg-type]
        steps_per_epoch=int(steps),
        validation_steps=math.ceil(val_rows / per_worker), class_weight=weights, train_counts=counts["train"],
    )


def train_worker(job: TrainJob, extra_callbacks: Sequence[Callable[[], Any]] = ()) -> dict[str, Any]:
    """Train on one worker (inside a barrier task); return this worker's summary.

    ``extra_callbacks`` are zero-argument factories of Keras callbacks, called after TF is
    imported (tests use one to kill a worker mid-training).
    """
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    from .dataset import make_dataset
    from .models import build_model

    cluster = json.loads(os.environ.get("TF_CONFIG", "{}"))
    rank = int(cluster.get("task", {}).get("index", 0))
    num_workers = len(cluster.get("cluster", {}).get("worker", [])) or 1
    if num_workers != job.num_workers:
        raise TrainingError(f"TF_CONFIG names {num_workers} workers; the job was planned for "
                            f"{job.num_workers}. Run train_worker through sparkdl.runner.TrainingRunner.")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    config = TrainConfig(**{**job.config, "window": tuple(job.config["window"])})
    gpus = tf.config.list_physical_devices("GPU")
    if job.use_gpu and gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(config.seed)
    per_worker = config.batch_size // job.num_workers
    no_autoshard = tf.data.Options()
    no_autoshard.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF

    def dataset(split: str, shard_index: int, num_shards: int, train: bool) -> Any:
        # The seed differs per worker: with one shard for all, each reads its own order.
        ds = make_dataset(job.data_url, batch_size=per_worker, shard_index=shard_index,
                          num_shards=num_shards, num_epochs=None, shuffle=train,
                          seed=config.seed + rank, split=split,
                          label_field=config.label_field,
                          augment=config.augment if train else False, window=config.window)
        return ds.map(lambda x, y: (x, tf.cast(tf.reshape(y, [-1, 1]), tf.float32))).with_options(no_autoshard)

    with strategy.scope():
        model = build_model(config.model, job.input_shape, task=config.task,
                            base_filters=config.base_filters, num_stages=config.num_stages,
                            dropout=config.dropout)
        # Cosine decay to zero over the whole run: the last epochs take small steps, so the
        # weights and the batch-norm statistics settle (measured on a 30-patient synthetic
        # cohort: validation AUC 0.97 stable vs 0.6-0.97 swinging at a constant rate).
        # BackupAndRestore restores the step counter, so a resumed run keeps the schedule.
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=max(1, config.epochs * job.steps_per_epoch))
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss=keras.losses.BinaryCrossentropy(),
            metrics=[keras.metrics.AUC(name="auc"), keras.metrics.Precision(name="precision"),
                     keras.metrics.Recall(name="recall")],
        )
    is_chief = rank == 0
    timer = _EpochTimer(keras)
    callbacks = [keras.callbacks.BackupAndRestore(join(job.model_dir, "backup")), timer]
    if is_chief:
        callbacks.append(_EpochScalars(tf, keras, join(job.model_dir, "tensorboard")))
    callbacks += [factory() for factory in extra_callbacks]
    validation = dataset("val", 0, 1, train=False) if job.validation_steps else None
    started = time.perf_counter()
    history = model.fit(
        dataset("train", rank % job.num_shards, job.num_shards, train=True), epochs=config.epochs,
        steps_per_epoch=job.steps_per_epoch, validation_data=validation,
        validation_steps=job.validation_steps or None,
        class_weight=job.class_weight, callbacks=callbacks, verbose=0,
    )
    seconds = time.perf_counter() - started
    # Collective: every worker saves; only the chief's copy is kept.
    target = job.model_dir if is_chief else tempfile.mkdtemp(prefix=f"sparkdl-worker{rank}-")
    model.save(join(target, MODEL_FILE))
    weights = model.get_weights()
    if not is_chief:
        shutil.rmtree(target, ignore_errors=True)
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in weights)).hexdigest()
    epochs_run = [int(e) for e in history.epoch]
    steady = timer.seconds[1:] or timer.seconds
    summary = {
        "rank": rank,
        "epochs_run": epochs_run,
        "initial_epoch": epochs_run[0] if epochs_run else config.epochs,
        "final_loss": float(history.history["loss"][-1]) if epochs_run else None,
        "weights_sha256": digest,
        "weights_sum": float(sum(float(np.sum(w, dtype=np.float64)) for w in weights)),
        "train_seconds": seconds,
        "samples_per_second": (job.steps_per_epoch * config.batch_size / float(np.median(steady))
                               if steady else None),
        "mixed_precision": bool(job.use_gpu and gpus),
    }
    if is_chief:
        _write_json(join(job.model_dir, "history.json"), {
            "epoch": epochs_run,
            "initial_epoch": summary["initial_epoch"],
            "metrics": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "epoch_seconds": timer.seconds,
        })
        _write_json(join(job.model_dir, "config.json"), {
            "config": job.config, "data_url": job.data_url, "num_workers": job.num_workers,
            "use_gpu": job.use_gpu, "mixed_precision": summary["mixed_precision"],
            "input_shape": list(job.input_shape), "num_shards": job.num_shards,
            "steps_per_epoch": job.steps_per_epoch,
            "validation_steps": job.validation_steps, "train_counts": job.train_counts,
            "class_weight": job.class_weight, "model_file": MODEL_FILE,
        })
    return summary


class _EpochTimer:
    """Wall seconds of every epoch run (the first one includes graph tracing)."""

    def __new__(cls, keras: Any) -> Any:  # a Keras Callback, built without importing TF here
        class EpochTimer(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.seconds: list[float] = []

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                self.seconds.append(time.perf_counter() - self._start)

        return EpochTimer()


class _EpochScalars:
    """TensorBoard scalars per epoch, in Keras' layout (``train/``, ``validation/``,
    ``epoch_<metric>``).

    ``tf_keras.callbacks.TensorBoard`` needs the ``tensorboard`` package for
    ``tf.summary.scalar``; TF 2.21 no longer installs it. ``tf.summary.write`` with the
    scalars plugin's metadata is in TF core and writes the same event records.
    """

    def __new__(cls, tf: Any, keras: Any, log_dir: str) -> Any:
        from tensorflow.core.framework import summary_pb2

        metadata = summary_pb2.SummaryMetadata()
        metadata.plugin_data.plugin_name = "scalars"
        metadata.data_class = summary_pb2.DATA_CLASS_SCALAR

        class EpochScalars(keras.callbacks.Callback):  # type: ignore[misc,name-defined]
            def on_train_begin(self, logs: Any = None) -> None:
                self._writers = {name: tf.summary.create_file_writer(join(log_dir, name))
                                 for name in ("train", "validation")}

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                for key, value in (logs or {}).items():
                    name, metric = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                    with self._writers[name].as_default():
                        tf.summary.write(f"epoch_{metric}", tf.constant(float(value), tf.float32),
                                         step=epoch, metadata=metadata)
                for writer in self._writers.values():
                    writer.flush()

            def on_train_end(self, logs: Any = None) -> None:
                for writer in self._writers.values():
                    writer.close()

        return EpochScalars()


def _write_json(path: str, data: dict[str, Any]) -> None:
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=True))


def train(
    data_dir: str,
    model_dir: str,
    *,
    config: TrainConfig | None = None,
    num_workers: int = 1,
    use_gpu: bool = False,
    spark: Any = None,
) -> dict[str, Any]:
    """Train a model on ``data_dir/patches`` with ``num_workers`` Spark barrier tasks.

    Returns the chief's summary plus ``workers`` (every worker's summary, rank order) and
    ``model_path``. A previous ``M/backup`` left by an interrupted run is resumed from.
    """
    from .runner import TrainingRunner
    from .spark import get_spark

    config = config or TrainConfig()
    spark = spark or get_spark()
    job = plan_job(data_dir, model_dir, config, num_workers=num_workers, use_gpu=use_gpu, spark=spark)
    if job.class_weight:
        logger.info("train: class weights %s from train counts %s", job.class_weight, job.train_counts)
    logger.info("train: %d worker(s), %d steps/epoch of %d patches, %d epochs", num_workers,
                job.steps_per_epoch, config.batch_size, config.epochs)
    results = TrainingRunner(num_workers, use_gpu=use_gpu, spark=spark).run(train_worker, job)
    digests = {r["weights_sha256"] for r in results}
    if len(digests) != 1:
        raise TrainingError(f"Workers finished with different weights ({len(digests)} distinct). "
                            "Expected identical replicas under MultiWorkerMirroredStrategy.")
    return {**results[0], "workers": results, "model_path": join(model_dir, MODEL_FILE)}
