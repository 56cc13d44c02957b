"""``make_dataset``: the ``patches/`` dataset as a ``tf.data.Dataset`` of ``(x, y)`` batches.

Petastorm's own TF path (``make_petastorm_dataset``) runs a Python generator per row; here
one Python call hands over a whole batch (:mod:`sparkdl.patch_reader` decodes row groups
vectorised in :class:`~sparkdl.reader.RowGroupReader`'s threads, then windows rows in NumPy
straight into the batch, which TF receives without a copy); augmentation is tf ops on the
batch. ``scripts/bench_reader.py`` compares it with the raw pyarrow limit.

Equal work per shard: Petastorm gives row group ``i`` to shard ``i % num_shards``, so shards
hold different numbers of rows. :func:`shard_row_counts` computes them from the Parquet
footers (and the small ``split``/label columns when rows are filtered);
:func:`steps_per_epoch` is the smallest shard's batch count. Training
(:func:`sparkdl.training.plan_shards`) reads each shard with ``num_epochs=None`` and runs the
same number of steps per epoch on every worker, so no worker waits in a collective for one
that has run out of data (and reads the whole split per worker when shards are too uneven).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .dataset_metadata import RowGroup, read_schema, row_groups, shard
from .errors import ConfigError, InputError
from .patch_reader import (
    LABEL_FIELDS,
    SPLITS,
    BatchAssembler,
    HuWindow,
    patch_chunk_reader,
    row_mask,
    selection_columns,
)
from .reader import RowGroupReader

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger(__name__)

#: Lung window (center, width) in HU: [-1350, 150] HU maps onto [0, 1].
LUNG_WINDOW = (-600.0, 1500.0)
#: Largest random shift of a training patch, in voxels per axis.
MAX_SHIFT_VOXELS = 2
#: Intensity jitter of a training patch: scale in 1 ± j and offset in ± j (window units).
INTENSITY_JITTER = 0.05


def make_dataset(
    url: str,
    *,
    batch_size: int,
    shard_index: int = 0,
    num_shards: int = 1,
    num_epochs: int | None = 1,
    shuffle: bool = True,
    seed: int | None = None,
    split: str | None = None,
    label_field: str = "label",
    window: tuple[float, float] = LUNG_WINDOW,
    augment: bool | None = None,
    shuffle_buffer_rows: int = 1024,
    workers_count: int = 1,
    results_queue_size: int = 10,
    prefetch_batches: int = 2,
) -> tf.data.Dataset:
    """Batches ``(x, y)`` of one shard of a ``patches/`` dataset.

    Args:
        url: the dataset (a local path, ``file://``, ``hdfs://``, ``s3://`` ...).
        batch_size: rows per batch; the last batch of a finite read may be smaller.
        shard_index, num_shards: this reader's shard; row group ``i`` belongs to shard
            ``i % num_shards`` (Petastorm's rule). See :func:`steps_per_epoch`.
        num_epochs: passes over the shard; ``None`` repeats forever (for training with a
            fixed ``steps_per_epoch``).
        shuffle: shuffle the row-group order (every epoch) and the rows within blocks of
            at least ``shuffle_buffer_rows`` rows (whole row groups).
        seed: same seed, same order and augmentation, with any ``workers_count`` (row
            groups are handed back in the order they were handed out); ``None`` draws one.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` for every row.
        label_field: ``"label"`` (nodule or not) or ``"malignancy"`` (rows with -1, unknown,
            are skipped).
        window: ``(center, width)`` in HU; ``[center - width/2, center + width/2]`` maps
            linearly onto ``[0, 1]``, clipped. Default: the lung window.
        augment: random flips of each axis, 90° rotations and transposes in the axial
            (y, x) plane, shifts of up to ``MAX_SHIFT_VOXELS`` (mirrored edges), intensity
            jitter. Default: only when ``split == "train"``.
        shuffle_buffer_rows, workers_count, results_queue_size, prefetch_batches: the
            memory bounds below.

    Returns:
        ``x`` float32 ``[B, D, H, W, 1]`` in ``[0, 1]``, ``y`` float32 ``[B]``. tf.data
        auto-sharding is off: the shard is already this reader's own.

    Memory, with ``P`` the bytes of one int16 patch (64 KiB for 32³) and ``G`` the rows of
    a row group (the dataset's; ``parquet-tools`` or the Parquet footer tells)::

        reader   ≈ (results_queue_size + 1) × G × P   (read ahead + being handed over)
        shuffle  ≤ (max(shuffle_buffer_rows, batch_size) + G + batch_size) × P
                                                      (whole row groups, held as read)
        tf.data  ≈ (prefetch_batches + 4) × batch_size × 2 × P   (float32 batch buffers,
                                                      reused; augmentation adds its own)

    For example 32³ patches, row groups of 256 rows, the defaults and ``batch_size=32``:
    11 × 16 MiB + 82 MiB + 6 × 4 MiB ≈ 280 MiB. Smaller row groups or fewer
    queued row groups lower the first term, which dominates.

    Speed: windowing is done in NumPy one row at a time (in cache), straight from the
    decoded row group into a reused batch buffer that TF receives through DLPack, so a row
    is decompressed by pyarrow, windowed once and never copied otherwise.
    ``scripts/bench_reader.py`` measures it against raw pyarrow.
    """
    import tensorflow as tf

    _check_arguments(batch_size, shard_index, num_shards, num_epochs, split, label_field,
                     window, shuffle_buffer_rows, workers_count, results_queue_size,
                     prefetch_batches)
    shape, dtype = patch_shape(url)
    augment = split == "train" if augment is None else augment
    if augment and shape[1] != shape[2]:
        raise ConfigError(f"augment=True rotates the axial plane and needs square patches. "
                          f"Received: patch shape {shape}. Use augment=False.")
    seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
    fs, groups = shard_groups(url, shard_index, num_shards)
    read_chunk = patch_chunk_reader(split, label_field, shape, dtype)
    rng_seed = [seed, shard_index]
    window_args = (float(window[0]), float(window[1]), shape, dtype)
    HuWindow(*window_args)  # checks the dtype now rather than in a tf.data thread

    def batches() -> Any:
        # Runs in a tf.data thread; the reader's threads read the next row groups
        # meanwhile (pyarrow releases the GIL). x reaches TF through DLPack, without a copy:
        # from_generator would copy each NumPy batch into a newly allocated tensor (on this
        # VM ~40 µs per 32³ row, mostly page faults). The buffer is 64-byte aligned (TF
        # requires it) and reused by BatchBuffers only once TF has let go of it.
        rng = np.random.default_rng(rng_seed) if shuffle else None
        # One HuWindow and one set of buffers per iterator: never shared between threads.
        assembler = BatchAssembler(batch_size, shuffle_buffer_rows, rng,
                                   HuWindow(*window_args), shape,
                                   max_buffers=prefetch_batches + 4)
        with RowGroupReader(fs, groups, read_chunk, num_epochs=num_epochs, shuffle=shuffle,
                            seed=seed + shard_index, workers_count=workers_count,
                            results_queue_size=results_queue_size) as reader:
            for x, y in assembler.assemble(reader):
                yield tf.experimental.dlpack.from_dlpack(x.__dlpack__()), y

    dataset = tf.data.Dataset.from_generator(
        batches,
        output_signature=(tf.TensorSpec((None, *shape, 1), tf.float32),
                          tf.TensorSpec((None,), tf.float32)),
    )
    if augment:
        augment_seed = int(np.random.SeedSequence(rng_seed).generate_state(1)[0])

        def augment_indexed(index: tf.Tensor, batch: tuple[tf.Tensor, tf.Tensor]) -> Any:
            seed_pair = tf.stack([tf.constant(augment_seed, tf.int64), index])
            return augment_batch(batch[0], seed_pair), batch[1]

        dataset = dataset.enumerate().map(augment_indexed, num_parallel_calls=2,
                                          deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.prefetch(prefetch_batches).with_options(options)


def augment_batch(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Per-sample random flips, axial 90° rotations, shifts and intensity jitter of ``x``.

    ``x`` is ``[B, D, H, W, 1]`` in ``[0, 1]`` with ``H == W``; ``seed`` a stateless seed
    (shape ``[2]``): the same seed gives the same augmentation. Flips of y and x combined
    with a y/x transpose give all eight rotations and reflections of the axial plane; z is
    flipped but never swapped with y or x.
    """
    import tensorflow as tf

    batch = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(seed, num=6)

    def per_sample(mask_seed: tf.Tensor, transformed: tf.Tensor, current: tf.Tensor) -> Any:
        coin = tf.random.stateless_uniform([batch], mask_seed) < 0.5
        return tf.where(coin[:, None, None, None, None], transformed, current)

    for axis in (1, 2, 3):
        x = per_sample(seeds[axis - 1], tf.reverse(x, [axis]), x)
    x = per_sample(seeds[3], tf.transpose(x, [0, 1, 3, 2, 4]), x)

    s = MAX_SHIFT_VOXELS
    padded = tf.pad(x, [[0, 0], [s, s], [s, s], [s, s], [0, 0]], mode="SYMMETRIC")
    starts = tf.random.stateless_uniform([batch, 3], seeds[4], minval=0, maxval=2 * s + 1,
                                         dtype=tf.int32)
    for axis in (1, 2, 3):
        index = starts[:, axis - 1: axis] + tf.range(tf.shape(x)[axis])[tf.newaxis, :]
        padded = tf.gather(padded, index, axis=axis, batch_dims=1)
    jitter = tf.random.stateless_uniform([2, batch], seeds[5], -INTENSITY_JITTER,
                                         INTENSITY_JITTER)
    scale = (1.0 + jitter[0])[:, None, None, None, None]
    offset = jitter[1][:, None, None, None, None]
    return tf.clip_by_value(padded * scale + offset, 0.0, 1.0)


def patch_shape(url: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the ``patch`` field, from the Unischema stored in the dataset."""
    schema = read_schema(url)
    field = schema.fields.get("patch")
    if field is None or None in field.shape or len(field.shape) != 3:
        raise InputError(
            f"{url} has no fixed-shape 3-D `patch` field. Received fields: "
            f"{sorted(schema.fields)}. Expected sparkdl.schemas.patch_schema(size)."
        )
    return tuple(int(n) for n in field.shape if n is not None), np.dtype(field.numpy_dtype)


def shard_groups(url: str, shard_index: int, num_shards: int) -> tuple[pafs.FileSystem, list[RowGroup]]:
    """The row groups of one shard (row group ``i`` → shard ``i % num_shards``), not empty."""
    fs, groups = row_groups(url)
    _check_enough_groups(url, len(groups), num_shards)
    return fs, shard(groups, shard_index, num_shards)


def _check_enough_groups(url: str, num_groups: int, num_shards: int) -> None:
    if num_groups < num_shards:
        raise InputError(
            f"{url} has {num_groups} row groups, fewer than num_shards={num_shards}: some "
            "shards would be empty. Use fewer shards, or write the dataset with smaller row "
            "groups."
        )


def shard_row_counts(url: str, num_shards: int, *, split: str | None = None,
                     label_field: str = "label") -> list[int]:
    """Rows each of ``num_shards`` shards yields per epoch with this ``split``/label selection.

    Uses Petastorm's row-group list and assignment (row group ``i`` → shard
    ``i % num_shards``, :mod:`sparkdl.dataset_metadata`); reads Parquet footers only, plus
    the ``split``/label columns when rows are filtered.
    """
    _check_selection(split, label_field)
    if not isinstance(num_shards, int) or num_shards < 1:
        raise ConfigError(f"num_shards must be an integer >= 1. Received: {num_shards!r}.")
    filesystem, pieces = row_groups(url)
    _check_enough_groups(url, len(pieces), num_shards)
    filtered = split is not None or label_field == "malignancy"
    columns = selection_columns(split, label_field)
    by_file: dict[str, list[tuple[int, int]]] = {}
    for index, piece in enumerate(pieces):
        by_file.setdefault(piece.path, []).append((index, piece.index))
    counts = [0] * num_shards
    for file_path, in_file in by_file.items():  # each file opened and its footer read once
        with filesystem.open_input_file(file_path) as stream:
            parquet_file = pq.ParquetFile(stream)
            for index, row_group in in_file:
                if filtered:
                    table = parquet_file.read_row_group(row_group, columns=columns)
                    rows = int(row_mask(table, split, label_field).sum())
                else:
                    rows = parquet_file.metadata.row_group(row_group).num_rows
                counts[index % num_shards] += rows
    return counts


def steps_per_epoch(url: str, *, batch_size: int, num_shards: int, split: str | None = None,
                    label_field: str = "label") -> int:
    """Batches every shard can give per epoch: the smallest shard's ``rows // batch_size``.

    At least 1 (a shard smaller than a batch still gives one batch when read with
    ``num_epochs=None``). Raises :class:`InputError` when a shard has no rows at all.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1. Received: batch_size={batch_size}.")
    counts = shard_row_counts(url, num_shards, split=split, label_field=label_field)
    empty = [index for index, count in enumerate(counts) if count == 0]
    if empty:
        raise InputError(
            f"Shards {empty} of {num_shards} hold no rows of split={split!r} with a known "
            f"{label_field} (rows per shard: {counts}). Use fewer shards, or write the "
            "dataset with smaller row groups so every shard gets some."
        )
    steps = max(1, min(counts) // batch_size)
    logger.info("rows per shard %s, batch_size %d: %d steps per epoch", counts, batch_size,
                steps)
    return steps


def _check_arguments(batch_size: int, shard_index: int, num_shards: int,
                     num_epochs: int | None, split: str | None, label_field: str,
                     window: tuple[float, float], shuffle_buffer_rows: int, workers_count: int,
                     results_queue_size: int, prefetch_batches: int) -> None:
    positive = dict(batch_size=batch_size, num_shards=num_shards,
                    shuffle_buffer_rows=shuffle_buffer_rows, workers_count=workers_count,
                    results_queue_size=results_queue_size, prefetch_batches=prefetch_batches)
    for name, value in positive.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1. Received: {name}={value!r}.")
    if not 0 <= shard_index < num_shards:
        raise ConfigError(f"shard_index must be in [0, num_shards). Received: "
                          f"shard_index={shard_index}, num_shards={num_shards}.")
    if num_epochs is not None and num_epochs < 1:
        raise ConfigError(f"num_epochs must be >= 1 or None (forever). "
                          f"Received: num_epochs={num_epochs!r}.")
    _check_selection(split, label_field)
    if len(window) != 2 or not window[1] > 0:
        raise ConfigError(f"window must be (center, width) in HU with width > 0. "
                          f"Received: window={window!r}.")


def _check_selection(split: str | None, label_field: str) -> None:
    if split is not None and split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS} or None. Received: split={split!r}.")
    if label_field not in LABEL_FIELDS:
        raise ConfigError(f"label_field must be one of {LABEL_FIELDS}. "
                          f"Received: label_field={label_field!r}.")
