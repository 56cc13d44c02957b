"""Reading one shard of a Petastorm dataset, row group by row group, in a bounded thread pool.

The part of Petastorm's ``Reader`` that sparkdl needs, on ``pyarrow.fs``: the row groups of
a shard (:func:`sparkdl.store.metadata.shard`), epochs (a number, or forever), a seeded
row-group order per epoch, and a pool of ``workers_count`` threads reading and decoding
ahead (pyarrow and NumPy release the GIL), at most ``results_queue_size`` row groups ahead.
Results come back in the order the row groups were handed out, whatever finishes first, so
the same seed gives the same order with any number of threads.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sparkdl.errors import InputError
from sparkdl.store.metadata import RowGroup, read_schema, row_groups

T = TypeVar("T")

#: Reads and decodes one row group; None when none of its rows are wanted.
ReadFn = Callable[[pafs.FileSystem, RowGroup], "T | None"]


class RowGroupReader(Generic[T]):
    """Iterates ``read(fs, group)`` over ``groups``, epoch after epoch; close it when done.

    Args:
        fs: the file system of the row groups' paths.
        groups: the shard's row groups in stored order (not empty).
        read: reads and decodes one row group in a pool thread.
        num_epochs: passes over ``groups``; None repeats forever.
        seed: with ``shuffle``, epoch ``k`` reads the groups in the ``k``-th permutation of a
            generator seeded with ``seed``.
        workers_count: pool threads.
        results_queue_size: row groups read ahead of the consumer at most.
    """

    def __init__(
        self,
        fs: pafs.FileSystem,
        groups: list[RowGroup],
        read: ReadFn[T],
        *,
        num_epochs: int | None,
        shuffle: bool,
        seed: int,
        workers_count: int,
        results_queue_size: int,
    ) -> None:
        """Eight parameters: the reader options of Petastorm's that sparkdl keeps, each a
        separate choice."""
        if not groups:
            raise ValueError("RowGroupReader needs at least one row group.")
        self._fs, self._groups, self._read = fs, list(groups), read
        self._num_epochs, self._shuffle, self._seed = num_epochs, shuffle, seed
        self._ahead = max(1, results_queue_size)
        self._pool = ThreadPoolExecutor(workers_count, thread_name_prefix="sparkdl-reader")

    def __iter__(self) -> Iterator[T]:
        pending: collections.deque[Future[T | None]] = collections.deque()
        try:
            for group in self._order():
                pending.append(self._pool.submit(self._read, self._fs, group))
                if len(pending) >= self._ahead:
                    result = pending.popleft().result()
                    if result is not None:
                        yield result
            while pending:
                result = pending.popleft().result()
                if result is not None:
                    yield result
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        """Stop the threads; row groups being read are finished and dropped."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> RowGroupReader[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _order(self) -> Iterator[RowGroup]:
        rng = np.random.default_rng(self._seed)
        epoch = 0
        while self._num_epochs is None or epoch < self._num_epochs:
            if self._shuffle:
                yield from (self._groups[i] for i in rng.permutation(len(self._groups)))
            else:
                yield from self._groups
            epoch += 1


def read_rows(
    url: str,
    columns: Sequence[str] | None = None,
    *,
    where: Mapping[str, Collection[Any]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every row of the Petastorm dataset at ``url`` as a dict of decoded values, in stored order.

    For looking at a dataset (tests, notebooks, small tables); training reads through
    :func:`sparkdl.make_dataset`. ``columns`` limits what is decoded; ``where`` keeps the rows
    whose field holds one of the given values (``{"series_uid": {uid}}``), tested on the
    stored column before any array is decoded.
    """
    schema = read_schema(url)
    fs, groups = row_groups(url)
    names = list(columns) if columns is not None else list(schema.fields)
    tested = dict(where or {})
    unknown = [name for name in [*names, *tested] if name not in schema.fields]
    if unknown:
        raise InputError(f"{url} has no fields {unknown}. Its fields: {sorted(schema.fields)}.")
    read = list(dict.fromkeys([*names, *tested]))
    for group in groups:
        table = read_group(fs, group, read, where=tested)
        for row in table.select(names).to_pylist():
            yield schema.decode_row(row)


def read_group(
    fs: pafs.FileSystem,
    group: RowGroup,
    columns: Sequence[str] | None = None,
    *,
    where: Mapping[str, Collection[Any]] | None = None,
) -> pa.Table:
    """One row group's stored ``columns`` (all when None); with ``where``, only the rows whose
    field holds one of the given values."""
    import pyarrow.compute as pc

    with fs.open_input_file(group.path) as handle:
        table = pq.ParquetFile(handle).read_row_group(group.index, columns=columns)
    for name, values in (where or {}).items():
        column = table.column(name)
        wanted = pa.array(list(values), type=column.type)  # typed: an empty set too
        table = table.filter(pc.is_in(column, value_set=wanted))
    return table
