"""``make_dataset``: a dataset's patches as a ``tf.data.Dataset`` of ``(x, y)`` batches.

Petastorm's own TF path (``make_petastorm_dataset``) runs a Python generator per row; here
one Python call hands over a whole batch (:mod:`sparkdl.store.patch_batches` decodes row groups
vectorised in :class:`~sparkdl.store.reader.RowGroupReader`'s threads, then windows rows in NumPy
straight into the batch, which TF receives without a copy); augmentation is tf ops on the
batch. ``scripts/bench_reader.py`` compares it with the raw pyarrow limit.

Equal work per shard: row group ``i`` belongs to shard ``i % num_shards``, so shards hold
different numbers of rows; :func:`sparkdl.plan_shards` plans steps that every shard can give
(:mod:`sparkdl.training.sharding`), and training reads each shard with ``num_epochs=None`` for that
many steps per epoch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from sparkdl.errors import ConfigError
from sparkdl.store.layout import Dataset
from sparkdl.store.patch_batches import BatchAssembler, HuWindow, patch_chunk_reader
from sparkdl.store.reader import RowGroupReader
from sparkdl.store.tables import LUNG_WINDOW, PATCHES, patch_shape
from sparkdl.training.sharding import check_selection, shard_groups

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger(__name__)

#: Lung window (center, width) in HU: [-1350, 150] HU maps onto [0, 1].
#: Largest random shift of a training patch, in voxels per axis.
MAX_SHIFT_VOXELS = 2
#: Intensity jitter of a training patch: scale in 1 ± j and offset in ± j (window units).
INTENSITY_JITTER = 0.05


@dataclass(frozen=True)
class ReadOptions:
    """How :func:`make_dataset` reads: order, labels, HU window, augmentation, memory bounds.

    Attributes:
        shuffle: shuffle the row-group order (every epoch) and the rows within blocks of at
            least ``shuffle_buffer_rows`` rows (whole row groups).
        seed: same seed, same order and augmentation, with any ``workers_count`` (row groups
            come back in the order they were handed out); ``None`` draws one.
        label_field: ``"label"`` (nodule or not) or ``"malignancy"`` (rows with -1, unknown,
            are skipped).
        window: ``(center, width)`` in HU; ``[center - width/2, center + width/2]`` maps
            linearly onto ``[0, 1]``, clipped. Default: the lung window.
        augment: random flips of each axis, 90° rotations and transposes in the axial (y, x)
            plane, shifts of up to ``MAX_SHIFT_VOXELS`` (mirrored edges), intensity jitter.
            Default (None): only for ``split="train"``.
        shuffle_buffer_rows, workers_count, results_queue_size, prefetch_batches: the memory
            bounds in :func:`make_dataset`'s docstring.
    """

    shuffle: bool = True
    seed: int | None = None
    label_field: str = "label"
    window: tuple[float, float] = LUNG_WINDOW
    augment: bool | None = None
    shuffle_buffer_rows: int = 1024
    workers_count: int = 1
    results_queue_size: int = 10
    prefetch_batches: int = 2

    def __post_init__(self) -> None:
        for name in (
            "shuffle_buffer_rows",
            "workers_count",
            "results_queue_size",
            "prefetch_batches",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(
                    f"ReadOptions.{name} must be an integer >= 1. Received: {name}={value!r}."
                )
        check_selection(None, self.label_field)
        if len(self.window) != 2 or not self.window[1] > 0:
            raise ConfigError(
                f"ReadOptions.window must be (center, width) in HU with width > 0. "
                f"Received: window={self.window!r}."
            )


def make_dataset(
    data: Dataset | str,
    *,
    batch_size: int,
    split: str | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
    num_epochs: int | None = 1,
    options: ReadOptions | None = None,
) -> tf.data.Dataset:
    """Batches ``(x, y)`` of one shard of a dataset's ``patches/``.

    Args:
        data: the ingest output (a :class:`sparkdl.Dataset`, or its root as a local path or
            a ``file://``, ``hdfs://``, ``s3://`` ... URL).
        batch_size: rows per batch; the last batch of a finite read may be smaller.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` for every row.
        shard_index, num_shards: this reader's shard; row group ``i`` belongs to shard
            ``i % num_shards`` (Petastorm's rule). See :func:`sparkdl.plan_shards`.
        num_epochs: passes over the shard; ``None`` repeats forever (for training with a
            fixed number of steps per epoch).
        options: order, labels, window, augmentation and memory (:class:`ReadOptions`).

    Returns:
        ``x`` float32 ``[B, D, H, W, 1]`` in ``[0, 1]``, ``y`` float32 ``[B]``. tf.data
        auto-sharding is off: the shard is already this reader's own.

    Memory, with ``P`` the bytes of one int16 patch (64 KiB for 32³) and ``G`` the rows of
    a row group (the dataset's; the Parquet footer tells)::

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

    (One long function on purpose: tf.data calls the batch generator without arguments,
    so it is nested here and closes over this call's checked, plain values.)

    Long: the argument checks and the memory a configuration uses are here, where a user
    reads them.
    """
    import tensorflow as tf

    options = options or ReadOptions()
    _check_arguments(batch_size, split, shard_index, num_shards, num_epochs, options)
    url = Dataset.of(data).url(PATCHES)
    shape, dtype = patch_shape(url)
    augment = split == "train" if options.augment is None else options.augment
    window, shuffle, label_field = options.window, options.shuffle, options.label_field
    if augment and shape[1] != shape[2]:
        raise ConfigError(
            f"augment=True rotates the axial plane and needs square patches. "
            f"Received: patch shape {shape}. Use augment=False."
        )
    if options.seed is None:
        entropy = cast(int, np.random.SeedSequence().entropy)  # fresh from the OS: an int
        seed = int(entropy % 2**31)
    else:
        seed = int(options.seed)
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
        assembler = BatchAssembler(
            batch_size,
            options.shuffle_buffer_rows,
            rng,
            HuWindow(*window_args),
            shape,
            max_buffers=options.prefetch_batches + 4,
        )
        with RowGroupReader(
            fs,
            groups,
            read_chunk,
            num_epochs=num_epochs,
            shuffle=shuffle,
            seed=seed + shard_index,
            workers_count=options.workers_count,
            results_queue_size=options.results_queue_size,
        ) as reader:
            for x, y in assembler.assemble(reader):
                yield tf.experimental.dlpack.from_dlpack(x.__dlpack__()), y

    dataset = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec((None, *shape, 1), tf.float32),
            tf.TensorSpec((None,), tf.float32),
        ),
    )
    if augment:
        augment_seed = int(np.random.SeedSequence(rng_seed).generate_state(1)[0])

        def augment_indexed(index: tf.Tensor, batch: tuple[tf.Tensor, tf.Tensor]) -> Any:
            seed_pair = tf.stack([tf.constant(augment_seed, tf.int64), index])
            return augment_batch(batch[0], seed_pair), batch[1]

        dataset = dataset.enumerate().map(augment_indexed, num_parallel_calls=2, deterministic=True)
    tf_options = tf.data.Options()
    tf_options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.prefetch(options.prefetch_batches).with_options(tf_options)


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
    starts = tf.random.stateless_uniform(
        [batch, 3], seeds[4], minval=0, maxval=2 * s + 1, dtype=tf.int32
    )
    for axis in (1, 2, 3):
        index = starts[:, axis - 1 : axis] + tf.range(tf.shape(x)[axis])[tf.newaxis, :]
        padded = tf.gather(padded, index, axis=axis, batch_dims=1)
    jitter = tf.random.stateless_uniform([2, batch], seeds[5], -INTENSITY_JITTER, INTENSITY_JITTER)
    scale = (1.0 + jitter[0])[:, None, None, None, None]
    offset = jitter[1][:, None, None, None, None]
    return tf.clip_by_value(padded * scale + offset, 0.0, 1.0)


def _check_arguments(
    batch_size: int,
    split: str | None,
    shard_index: int,
    num_shards: int,
    num_epochs: int | None,
    options: ReadOptions,
) -> None:
    for name, value in (("batch_size", batch_size), ("num_shards", num_shards)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1. Received: {name}={value!r}.")
    if not 0 <= shard_index < num_shards:
        raise ConfigError(
            f"shard_index must be in [0, num_shards). Received: "
            f"shard_index={shard_index}, num_shards={num_shards}."
        )
    if num_epochs is not None and num_epochs < 1:
        raise ConfigError(
            f"num_epochs must be >= 1 or None (forever). Received: num_epochs={num_epochs!r}."
        )
    if not isinstance(options, ReadOptions):
        raise ConfigError(
            f"options must be a sparkdl.ReadOptions. Received: {type(options).__name__}."
        )
    check_selection(split, options.label_field)
