"""Whole-batch reading of the ``patches/`` dataset: Petastorm's reader, vectorised decoding.

Petastorm's :class:`~petastorm.reader.Reader` does what it is good at: the row-group list of
the dataset (``load_row_groups``), sharding (``cur_shard``/``shard_count``: row group ``i``
goes to shard ``i % num_shards``), epochs, seeded row-group order and a bounded thread pool.
Its workers here are :class:`_PatchWorker`: each reads only the needed columns of one row
group with pyarrow and decodes the whole ``patch`` column at once. A fixed-shape
``NdarrayCodec`` cell is ``np.save`` bytes with the same header in every cell, so the
column's value buffer is a ``[rows, header + payload]`` byte matrix: check the headers are
equal, then view the payload as the array dtype. No Python runs per row.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .compat import legacy_pyarrow_warnings_filtered
from .errors import InputError

logger = logging.getLogger(__name__)

LABEL_FIELDS = ("label", "malignancy")
SPLITS = ("train", "val", "test")


def decode_ndarray_cells(
    cells: pa.Array | pa.ChunkedArray, shape: Sequence[int], dtype: np.dtype
) -> np.ndarray:
    """Decode a column of fixed-shape ``NdarrayCodec`` cells into one ``[rows, *shape]`` array.

    Fast path: every cell has the same length and the same ``np.save`` header (checked on
    the whole column at once), so the payloads are strided views of the value buffer.
    Otherwise (cells written with another header version, Fortran order, another byte
    order) each cell goes through ``np.load`` and a warning names the reason.
    """
    array = cells.combine_chunks() if isinstance(cells, pa.ChunkedArray) else cells
    num_rows = len(array)
    if num_rows == 0:
        return np.empty((0, *shape), dtype=dtype)
    if array.null_count:
        raise InputError(
            f"The NdarrayCodec column holds {array.null_count} null cells; expected none "
            "(patch_schema fields are not nullable). Rewrite the dataset with sparkdl ingest."
        )
    if not (pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)):
        raise InputError(
            f"An NdarrayCodec column should be binary. Received: {array.type}. "
            "Expected a dataset written with sparkdl.schemas.patch_schema."
        )
    offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    _, offsets_buffer, values_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type, count=num_rows + 1,
                            offset=array.offset * np.dtype(offset_type).itemsize)
    values = np.frombuffer(values_buffer, dtype=np.uint8)
    lengths = np.diff(offsets)
    cell_bytes = int(lengths[0])
    payload_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    header_bytes = cell_bytes - payload_bytes
    reason = None
    if (lengths != cell_bytes).any():
        reason = "cells differ in length"
    elif header_bytes <= 0:
        reason = f"cells of {cell_bytes} bytes cannot hold a {tuple(shape)} {np.dtype(dtype)}"
    else:
        matrix = values[offsets[0]: offsets[0] + num_rows * cell_bytes].reshape(num_rows, -1)
        headers = matrix[:, :header_bytes]
        if not (headers == headers[0]).all():
            reason = "cell headers differ"
        else:
            stored = _parse_npy_header(headers[0].tobytes())
            if stored != (tuple(shape), False, np.dtype(dtype).newbyteorder("<")):
                reason = f"cell header says (shape, fortran_order, dtype) = {stored}"
            elif header_bytes % np.dtype(dtype).itemsize:
                reason = "payload is not aligned to the dtype"
    if reason is None:
        payload = matrix[:, header_bytes:].view(np.dtype(dtype).newbyteorder("<"))
        return payload.reshape(num_rows, *shape)
    warnings.warn(f"NdarrayCodec cells decoded one by one ({reason}); this is slower.",
                  RuntimeWarning, stacklevel=2)
    decoded = [np.load(io.BytesIO(cell)) for cell in array.to_pylist()]
    return np.stack(decoded).astype(dtype, copy=False).reshape(num_rows, *shape)


def _parse_npy_header(header: bytes) -> tuple[tuple[int, ...], bool, np.dtype] | None:
    stream = io.BytesIO(header)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(stream)
    except ValueError:
        return None
    return tuple(shape), bool(fortran_order), dtype


def row_mask(table: pa.Table, split: str | None, label_field: str) -> np.ndarray:
    """Rows to keep: in ``split`` (all when None), and with a known label (malignancy -1 is not)."""
    keep = np.ones(table.num_rows, dtype=bool)
    if split is not None:
        keep &= table.column("split").to_numpy(zero_copy_only=False) == split
    if label_field == "malignancy":
        keep &= table.column("malignancy").to_numpy() >= 0
    return keep


def selection_columns(split: str | None, label_field: str) -> list[str]:
    """The small columns that decide which rows are read (and the label)."""
    return [label_field] + (["split"] if split is not None else [])


def read_row_group(filesystem: Any, piece: Any, columns: Sequence[str]) -> pa.Table:
    """Read ``columns`` of one Petastorm piece (a Parquet file and row-group number)."""
    with filesystem.open(piece.path, "rb") as stream:
        return pq.ParquetFile(stream).read_row_group(piece.row_group, columns=list(columns))


def _make_worker_class(split: str | None, label_field: str) -> type:
    """A Petastorm worker class for this selection (Petastorm instantiates it per thread)."""
    from petastorm.workers_pool import EmptyResultError
    from petastorm.workers_pool.worker_base import WorkerBase

    columns = ["patch", *selection_columns(split, label_field)]

    class _ResultsReader:
        batched_output = True

        def read_next(self, workers_pool: Any, schema: Any, ngram: Any) -> Any:
            while True:
                try:
                    return workers_pool.get_results()
                except EmptyResultError:
                    # ThreadPool.get_results checks "all workers done" before "ventilator
                    # completed": when the ventilator hands out every row group in between
                    # (a shard of <= 4 x workers_count row groups), it ends with the data
                    # still queued. Checked again now that the ventilator has completed.
                    if workers_pool.all_workers_done():
                        raise StopIteration from None

    class _PatchWorker(WorkerBase):  # type: ignore[misc]
        """Reads one row group, publishes ``(patches int16 [n, D, H, W], labels int32 [n])``."""

        def __init__(self, worker_id: int, publish_func: Any, args: Sequence[Any]) -> None:
            super().__init__(worker_id, publish_func, args)
            self._filesystem, self._pieces = args[0], args[4]
            field = args[2].fields["patch"]
            self._shape, self._dtype = tuple(field.shape), np.dtype(field.numpy_dtype)

        @staticmethod
        def new_results_queue_reader() -> _ResultsReader:
            return _ResultsReader()

        def process(self, piece_index: int, worker_predicate: Any,
                    shuffle_row_drop_partition: tuple[int, int]) -> None:
            table = read_row_group(self._filesystem, self._pieces[piece_index], columns)
            keep = row_mask(table, split, label_field)
            if not keep.any():
                return
            patches = decode_ndarray_cells(table.column("patch"), self._shape, self._dtype)
            labels = table.column(label_field).to_numpy().astype(np.int32)
            if not keep.all():  # copies only when rows are filtered out
                patches, labels = patches[keep], labels[keep]
            self.publish_func((patches, labels))

    return _PatchWorker


def open_reader(
    url: str,
    *,
    split: str | None,
    label_field: str,
    shard_index: int,
    num_shards: int,
    num_epochs: int | None,
    shuffle: bool,
    seed: int,
    workers_count: int,
    results_queue_size: int,
) -> Any:
    """A Petastorm ``Reader`` yielding ``(patches, labels)`` per row group of this shard."""
    from petastorm.errors import NoDataAvailableError
    from petastorm.fs_utils import get_filesystem_and_path_or_paths
    from petastorm.reader import Reader, normalize_dataset_url_or_urls
    from petastorm.workers_pool.thread_pool import ThreadPool

    with legacy_pyarrow_warnings_filtered():
        filesystem, path = get_filesystem_and_path_or_paths(normalize_dataset_url_or_urls(url))
        try:
            return Reader(
                filesystem, path,
                # The workers read their own column list; the full schema is only metadata.
                schema_fields=None,
                worker_class=_make_worker_class(split, label_field),
                reader_pool=ThreadPool(workers_count, results_queue_size),
                # Petastorm treats seed 0 as "unseeded"; None keeps the stored order.
                seed=(1 + seed % (2**31 - 1)) if shuffle else None,
                shuffle_row_groups=shuffle,
                num_epochs=num_epochs,
                cur_shard=shard_index if num_shards > 1 else None,
                shard_count=num_shards if num_shards > 1 else None,
                is_batched_reader=True,
            )
        except NoDataAvailableError as error:
            raise InputError(
                f"Cannot cut {url} into num_shards={num_shards}: {error} "
                "Use fewer shards, or write the dataset with smaller row groups."
            ) from error


class ShuffleBuffer:
    """A bounded pool of rows that hands out batches, in random order when seeded to.

    Holds at most ``capacity`` rows (``max(buffer_rows, batch_size)``); rows arrive in
    chunks (row groups) and leave in batches of ``batch_size``. Taking a batch copies the
    batch out and moves the last rows of the pool into the holes, all with numpy indexing.
    """

    def __init__(self, batch_size: int, buffer_rows: int, rng: np.random.Generator | None,
                 row_shape: Sequence[int], dtype: np.dtype) -> None:
        self.batch_size = batch_size
        self.capacity = max(buffer_rows, batch_size) if rng is not None else batch_size
        self._rng = rng
        self._x = np.empty((self.capacity, *row_shape), dtype=dtype)
        self._y = np.empty(self.capacity, dtype=np.int32)
        self._size = 0

    def add(self, x: np.ndarray, y: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Add a chunk of rows; yield every batch taken to make room for it."""
        start = 0
        while start < len(x):
            count = min(self.capacity - self._size, len(x) - start)
            self._x[self._size: self._size + count] = x[start: start + count]
            self._y[self._size: self._size + count] = y[start: start + count]
            self._size += count
            start += count
            if self._size == self.capacity:
                yield self._take(self.batch_size)

    def drain(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield what is left, the last batch possibly smaller."""
        while self._size:
            yield self._take(min(self.batch_size, self._size))

    def _take(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        size = self._size
        if self._rng is None:
            taken = np.arange(count)
        else:
            taken = np.sort(self._rng.choice(size, count, replace=False))
        batch = self._x[taken], self._y[taken]
        tail = np.arange(size - count, size)
        holes = taken[taken < size - count]
        movers = np.setdiff1d(tail, taken, assume_unique=True)
        self._x[holes] = self._x[movers]
        self._y[holes] = self._y[movers]
        self._size = size - count
        return batch
