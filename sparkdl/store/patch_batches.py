"""Whole-batch reading of the ``patches/`` dataset: vectorised decoding, windowed batches.

:class:`sparkdl.store.reader.RowGroupReader` hands out the row groups of a shard; each is read
here by :func:`patch_chunk_reader`: only the needed columns, with pyarrow, and the whole
``patch`` column decoded at once. A fixed-shape ``NdarrayCodec`` cell is ``np.save`` bytes
with the same header in every cell, so the column's value buffer is a
``[rows, header + payload]`` byte matrix: check the headers are equal, then view the payload
as the array dtype. No Python runs per row in decoding.

The row groups then become batches in :class:`BatchAssembler`: shuffled by index within
blocks of row groups, each row windowed (:class:`HuWindow`) straight from the decoded row
group into a reused, aligned float32 batch buffer (:class:`BatchBuffers`). Per row that is
one cache-resident pass of a few NumPy calls; nothing else copies the row.
"""

from __future__ import annotations

import io
import logging
import math
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sparkdl.errors import InputError
from sparkdl.store.metadata import RowGroup

logger = logging.getLogger(__name__)


#: One decoded row group: patches ``[n, D, H, W]`` (stored dtype) and labels int32 ``[n]``.
PatchChunk = tuple[npt.NDArray[np.integer[Any]], npt.NDArray[np.int32]]
#: ``(x, y)``: windowed patches float32 ``[n, *row_shape, 1]`` and labels float32 ``[n]``.
Batch = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
#: Rows held by :class:`BatchAssembler`: integer HU patches and their labels (int32 as read,
#: float32 once a remainder was carried over).
_Held = tuple[npt.NDArray[np.integer[Any]], npt.NDArray[np.number[Any]]]


def decode_ndarray_cells(
    cells: pa.Array | pa.ChunkedArray, shape: Sequence[int], dtype: np.dtype[Any]
) -> npt.NDArray[Any]:
    """Decode a column of fixed-shape ``NdarrayCodec`` cells into one ``[rows, *shape]`` array.

    Fast path: every cell has the same length and the same ``np.save`` header (checked on
    the whole column at once), so the payloads are strided views of the value buffer.
    Otherwise (cells written with another header version, Fortran order, another byte
    order) each cell goes through ``np.load`` and a warning names the reason.
    """
    if isinstance(cells, pa.ChunkedArray):
        # combine_chunks copies even a single chunk (pyarrow 14): decode chunk by chunk.
        if cells.num_chunks == 1:
            return decode_ndarray_cells(cells.chunk(0), shape, dtype)
        if cells.num_chunks > 1:
            return np.concatenate(
                [decode_ndarray_cells(chunk, shape, dtype) for chunk in cells.chunks]
            )
        return np.empty((0, *shape), dtype=dtype)
    array = cells
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
            "Expected a dataset written with sparkdl.store.tables.patch_schema."
        )
    payload = _strided_payload(array, shape, dtype)
    if not isinstance(payload, str):
        return payload
    warnings.warn(
        f"NdarrayCodec cells decoded one by one ({payload}); this is slower.",
        RuntimeWarning,
        stacklevel=2,
    )
    decoded = [np.load(io.BytesIO(cell)) for cell in array.to_pylist()]
    return np.stack(decoded).astype(dtype, copy=False).reshape(num_rows, *shape)


def _strided_payload(
    array: pa.Array, shape: Sequence[int], dtype: np.dtype[Any]
) -> npt.NDArray[Any] | str:
    """The cells' payloads as strided views of the value buffer, or why they cannot be."""
    num_rows = len(array)
    offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    _, offsets_buffer, values_buffer = array.buffers()
    offsets = np.frombuffer(
        offsets_buffer,
        dtype=offset_type,
        count=num_rows + 1,
        offset=array.offset * np.dtype(offset_type).itemsize,
    )
    values = np.frombuffer(values_buffer, dtype=np.uint8)
    lengths = np.diff(offsets)
    cell_bytes = int(lengths[0])
    payload_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    header_bytes = cell_bytes - payload_bytes
    if (lengths != cell_bytes).any():
        return "cells differ in length"
    if header_bytes <= 0:
        return f"cells of {cell_bytes} bytes cannot hold a {tuple(shape)} {np.dtype(dtype)}"
    matrix = values[offsets[0] : offsets[0] + num_rows * cell_bytes].reshape(num_rows, -1)
    headers = matrix[:, :header_bytes]
    if not (headers == headers[0]).all():
        return "cell headers differ"
    stored = _parse_npy_header(headers[0].tobytes())
    if stored != (tuple(shape), False, np.dtype(dtype).newbyteorder("<")):
        return f"cell header says (shape, fortran_order, dtype) = {stored}"
    if header_bytes % np.dtype(dtype).itemsize:
        return "payload is not aligned to the dtype"
    payload = matrix[:, header_bytes:].view(np.dtype(dtype).newbyteorder("<"))
    return payload.reshape(num_rows, *shape)


def _parse_npy_header(header: bytes) -> tuple[tuple[int, ...], bool, np.dtype[Any]] | None:
    stream = io.BytesIO(header)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read_header(stream)
    except ValueError:
        return None
    return tuple(shape), bool(fortran_order), dtype


def row_mask(table: pa.Table, split: str | None, label_field: str) -> npt.NDArray[np.bool_]:
    """Rows to keep: in ``split`` (all when None), and with a known label (-1 is unknown: a
    malignancy the readers left open, a candidate of a scan no label source covers)."""
    keep = np.ones(table.num_rows, dtype=bool)
    if split is not None:
        keep &= table.column("split").to_numpy(zero_copy_only=False) == split
    keep &= table.column(label_field).to_numpy() >= 0
    return keep


def selection_columns(split: str | None, label_field: str) -> list[str]:
    """The small columns that decide which rows are read (and the label)."""
    return [label_field] + (["split"] if split is not None else [])


def read_row_group(fs: pafs.FileSystem, group: RowGroup, columns: Sequence[str]) -> pa.Table:
    """Read ``columns`` of one row group (a native pyarrow file: no Python copy of the bytes)."""
    with fs.open_input_file(group.path) as handle:
        return pq.ParquetFile(handle).read_row_group(group.index, columns=list(columns))


def patch_chunk_reader(
    split: str | None, label_field: str, shape: Sequence[int], dtype: np.dtype[Any]
) -> Callable[[pafs.FileSystem, RowGroup], PatchChunk | None]:
    """Reads one row group into ``(patches int16 [n, D, H, W], labels int32 [n])``.

    Only the ``patch`` column and the small selection columns are read; the whole ``patch``
    column is decoded at once (:func:`decode_ndarray_cells`). None when no row is selected.
    """
    columns = ["patch", *selection_columns(split, label_field)]
    shape, dtype = tuple(shape), np.dtype(dtype)

    def read(fs: pafs.FileSystem, group: RowGroup) -> PatchChunk | None:
        table = read_row_group(fs, group, columns)
        keep = row_mask(table, split, label_field)
        if not keep.any():
            return None
        patches = decode_ndarray_cells(table.column("patch"), shape, dtype)
        labels = table.column(label_field).to_numpy().astype(np.int32)
        if not keep.all():  # copies only when rows are filtered out
            patches, labels = patches[keep], labels[keep]
        return patches, labels

    return read


class HuWindow:
    """Integer HU → float32 ``[0, 1]`` through the window ``(center, width)``, one row at a time.

    ``x = clip((hu - low) / width, 0, 1)`` with ``low = center - width / 2``, computed as
    ``(clip(hu, floor(low), ceil(high)) - floor(low) + (floor(low) - low)) × (1 / width)``:
    the clip and the subtraction are exact integer operations on the stored dtype, then one
    cast and one multiply in float32 (plus an add, and a float clip only when the window's
    ends are not integers). Training (:func:`sparkdl.training.tfdata.make_dataset`) and prediction
    (:mod:`sparkdl.evaluation.prediction`) both window through this class, so they see the same
    values.
    One row (128 KiB of float32 for 32³) at a time keeps the temporaries in cache; on the
    whole batch each pass would go to memory.
    """

    def __init__(
        self, center: float, width: float, row_shape: Sequence[int], dtype: np.dtype[Any]
    ) -> None:
        dtype = np.dtype(dtype)
        if dtype.kind not in "iu":
            raise InputError(
                f"Windowing expects integer HU patches. Received: dtype {dtype}. "
                "Expected int16 (sparkdl.store.tables.patch_schema)."
            )
        info = np.iinfo(dtype)
        low = center - width / 2.0
        lowest = min(max(math.floor(low), info.min), info.max)
        highest = min(max(math.ceil(low + width), lowest), info.max)
        self._low, self._high = dtype.type(lowest), dtype.type(highest)
        self._unsigned = np.dtype(f"u{dtype.itemsize}")  # hu - low fits, whatever the width
        self._shift = np.float32(lowest - low)  # in (-1, 0]: 0 for integer windows
        self._scale = np.float32(1.0 / width)
        ends = (np.array([0, highest - lowest], dtype=np.float32) + self._shift) * self._scale
        self._clip = bool(ends[0] < 0 or ends[1] > 1)
        self._scratch = np.empty(row_shape, dtype=dtype)
        # NumPy 1.26 has SIMD minimum/maximum for array operands only (4x faster than scalars).
        self._zeros = np.zeros(row_shape, dtype=np.float32)
        self._ones = np.ones(row_shape, dtype=np.float32)

    def __call__(self, hu: npt.NDArray[np.integer[Any]], out: npt.NDArray[np.float32]) -> None:
        """Window one row ``hu`` into ``out`` (float32, same shape)."""
        scratch = self._scratch
        np.clip(hu, self._low, self._high, out=scratch)
        np.subtract(scratch, self._low, out=scratch)
        np.copyto(out, scratch.view(self._unsigned), casting="unsafe")
        if self._shift:
            np.add(out, self._shift, out=out)
        np.multiply(out, self._scale, out=out)
        if self._clip:
            np.maximum(out, self._zeros, out=out)
            np.minimum(out, self._ones, out=out)


class BatchBuffers:
    """Reused, 64-byte aligned float32 batch buffers.

    :func:`sparkdl.training.tfdata.make_dataset` hands each batch to TF through DLPack without a
    copy, which needs data aligned for TF (64 bytes). A fresh batch array per batch would
    cost page faults (measured here: ~60 µs of CPU per 32³ float32 row on this VM, more
    than windowing it), so a buffer is reused once nothing refers to it any more: every
    view of a buffer (the batch, a DLPack capsule and so the TF tensor holding it) keeps a
    reference to its owner array, so an owner referenced by this pool alone is free.
    """

    ALIGNMENT = 64

    def __init__(self, row_shape: Sequence[int], batch_size: int, max_buffers: int) -> None:
        self._row_shape = tuple(row_shape)
        self._row_bytes = int(np.prod(row_shape)) * 4
        self._batch_size = batch_size
        self._max_buffers = max_buffers
        self._owners: list[npt.NDArray[np.uint8]] = []

    def get(self, num_rows: int) -> npt.NDArray[np.float32]:
        """An uninitialised float32 ``[num_rows, *row_shape, 1]`` array."""
        owner = self._free_owner()
        if owner is None:
            owner = np.empty(self._batch_size * self._row_bytes + self.ALIGNMENT, np.uint8)
            if len(self._owners) < self._max_buffers:
                self._owners.append(owner)
        start = -owner.ctypes.data % self.ALIGNMENT
        data = owner[start : start + num_rows * self._row_bytes]
        return data.view(np.float32).reshape(num_rows, *self._row_shape, 1)

    def _free_owner(self) -> npt.NDArray[np.uint8] | None:
        for owner in self._owners:
            # References: the list, the loop variable and getrefcount's argument.
            if sys.getrefcount(owner) == 3:
                return owner
        return None


class BatchAssembler:
    """Rows arrive in chunks (decoded row groups) and leave as windowed float32 batches.

    Shuffling is by blocks, so that rows are never copied into a buffer: chunks are held as
    they came until they hold at least ``block_rows`` rows; the block's rows are permuted and
    leave in full batches, each row windowed straight from its chunk into the batch; the
    remainder (fewer than ``batch_size`` rows) is copied into the next block. Holds at most
    ``block_rows + batch_size - 1`` rows plus one chunk. Unshuffled (``rng`` None), blocks
    are one batch and rows keep their order.

    Batches are ``x`` float32 ``[n, *row_shape, 1]`` (in :class:`BatchBuffers`, reused once
    no longer referenced) and ``y`` float32 ``[n]``; the last one of :meth:`drain` may be
    smaller than ``batch_size``.
    """

    def __init__(
        self,
        batch_size: int,
        block_rows: int,
        rng: np.random.Generator | None,
        window: HuWindow,
        row_shape: Sequence[int],
        max_buffers: int = 4,
    ) -> None:
        self.batch_size = batch_size
        self.block_rows = max(block_rows, batch_size) if rng is not None else batch_size
        self._rng = rng
        self._window = window
        self._buffers = BatchBuffers(row_shape, batch_size, max_buffers)
        self._chunks: list[_Held] = []
        self._rows = 0

    def add(
        self, patches: npt.NDArray[np.integer[Any]], labels: npt.NDArray[np.number[Any]]
    ) -> Iterator[Batch]:
        """Add a chunk of rows; yield the batches it completes."""
        if len(labels):
            self._chunks.append((patches, labels))
            self._rows += len(labels)
        if self._rows >= self.block_rows:
            yield from self._emit(final=False)

    def assemble(self, chunks: Iterable[_Held]) -> Iterator[Batch]:
        """Every batch of ``chunks`` (``(patches, labels)`` pairs), the rest drained at the end."""
        for patches, labels in chunks:
            yield from self.add(patches, labels)
        yield from self.drain()

    def drain(self) -> Iterator[Batch]:
        """Yield what is left, the last batch possibly smaller."""
        if self._rows:
            yield from self._emit(final=True)

    def _emit(self, final: bool) -> Iterator[Batch]:
        chunks, total = self._chunks, self._rows
        sizes = [len(labels) for _, labels in chunks]
        order = self._rng.permutation(total) if self._rng is not None else np.arange(total)
        owners = np.repeat(np.arange(len(chunks)), sizes)
        rows = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        labels = np.concatenate([labels for _, labels in chunks]).astype(np.float32)
        full = total if final else total - total % self.batch_size
        for start in range(0, full, self.batch_size):
            taken = order[start : start + self.batch_size]
            x = self._buffers.get(len(taken))
            rows_out = x[..., 0]
            for out, owner, row in zip(rows_out, owners[taken].tolist(), rows[taken].tolist()):
                self._window(chunks[owner][0][row], out)
            yield x, labels[taken]
        rest = order[full:]
        self._chunks = []
        if len(rest):  # a few rows, copied so that their row groups can be freed
            kept = np.stack(
                [
                    chunks[owner][0][row]
                    for owner, row in zip(owners[rest].tolist(), rows[rest].tolist())
                ]
            )
            self._chunks.append((kept, labels[rest]))
        self._rows = len(rest)
