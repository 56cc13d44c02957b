"""The one writer of sparkdl's Parquet: Python tasks write their own parts, without the JVM.

Both Petastorm datasets (``volumes/``, ``patches/``) and the staged records are written
here: :func:`write_dataset` writes a DataFrame of stored rows from its own tasks, then
``_common_metadata`` (Petastorm's ``materialize_dataset``); a stage whose tasks already make
the rows (series assembly) writes its parts with :func:`write_part` and ends with
:func:`finish_dataset`.

The staged records hold every CT slice's pixels and de-identified DICOM bytes (about 1 MB a
512² slice), and a volume row holds a whole CT (about 140 MB at 512² × 260). Handed to the
JVM, each batch crossed the worker socket, was copied into Spark rows, and was encoded again
by parquet-mr (the volumes also went through a persisted copy first): about 12 ms of JVM CPU
per 512² slice, four times the Python work of parsing and de-identifying it
(``scripts/bench_ingest.py``). pyarrow's C++ writer takes about 2 ms for the same bytes, in
the task that made them.

Commit: a task writes ``_attempts/<name>-<random>.parquet`` and renames it to ``<name>`` once
its batches are all written, so a failed attempt leaves only a file under ``_attempts/``,
which readers skip (Spark and pyarrow ignore names starting with ``_``; :func:`clean`
removes the folder), and a retried task replaces its part as a whole. Part names are
deterministic per partition (or per series), and so is what a task writes, so two attempts
that both finish write the same rows. ``prefix`` keeps the names of one run apart from those
of other runs when parts are added to a published table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from sparkdl.spark import ARROW_BATCH_CONF, session_conf
from sparkdl.store.metadata import part_files, write_metadata
from sparkdl.store.storage import arrow_filesystem, join, to_url
from sparkdl.store.tables import PARQUET_COMPRESSION
from sparkdl.store.unischema import NdarrayCodec, Schema

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

__all__ = [
    "ATTEMPTS",
    "clean",
    "finish_dataset",
    "part_name",
    "rows_per_group",
    "task_part_name",
    "write_dataset",
    "write_frame",
    "write_part",
    "write_task_part",
]

#: The folder of attempts in progress (or failed) under the dataset folder.
ATTEMPTS = "_attempts"


def part_name(prefix: str, key: str) -> str:
    return f"part-{prefix}-{key}.parquet"


def task_part_name(prefix: str) -> str:
    """The part name of this task's partition (deterministic: a retry replaces the part)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    return part_name(prefix, f"{context.partitionId() if context is not None else 0:05d}")


def write_part(
    batches: Iterable[pa.RecordBatch],
    folder: str,
    name: str,
    schema: pa.Schema,
    image_columns: Sequence[str],
) -> int:
    """Write ``batches`` as the part file ``name`` in ``folder``; the rows written.

    Every batch becomes one row group (a volume row is a group of its own, as Petastorm
    readers want). ``image_columns`` (pixels, file bytes, volumes) get neither dictionary
    encoding nor min/max statistics: both cost a pass over every value and help no reader.
    """
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, root = arrow_filesystem(folder)
    fs.create_dir(join(root, ATTEMPTS), recursive=True)
    partial = join(root, ATTEMPTS, f"{name.removesuffix('.parquet')}-{uuid.uuid4().hex[:8]}")
    plain = [column for column in schema.names if column not in image_columns]
    rows = 0
    with (
        fs.open_output_stream(partial) as sink,
        pq.ParquetWriter(
            sink,
            schema,
            compression=PARQUET_COMPRESSION,
            use_dictionary=plain,
            write_statistics=plain,
        ) as writer,
    ):
        for batch in batches:
            writer.write_batch(batch, row_group_size=max(batch.num_rows, 1))
            rows += batch.num_rows
    final = join(root, name)
    if fs.get_file_info(final).type != pafs.FileType.NotFound:
        fs.delete_file(final)  # an earlier attempt of this task finished too
    fs.move(partial, final)
    return rows


def write_task_part(
    batches: Iterable[pa.RecordBatch],
    folder: str,
    prefix: str,
    schema: pa.Schema,
    image_columns: Sequence[str],
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: this task's ``batches`` written as the part of its partition;
    one batch out, ``rows``: how many were written."""
    import pyarrow as pa

    rows = write_part(batches, folder, task_part_name(prefix), schema, image_columns)
    yield pa.RecordBatch.from_pydict({"rows": [rows]})


def write_frame(frame: DataFrame, folder: str, prefix: str, image_columns: Sequence[str]) -> int:
    """Write ``frame`` into ``folder`` from its own tasks (one part per partition); the rows.

    Every Arrow batch Spark hands a task becomes a row group (set
    ``spark.sql.execution.arrow.maxRecordsPerBatch`` for rows of whole volumes)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(frame.schema)
    counts = frame.mapInArrow(
        lambda batches: write_task_part(batches, folder, prefix, schema, image_columns),
        "rows LONG",
    )
    return sum(row[0] for row in counts.collect())


def clean(folder: str) -> None:
    """Remove what failed attempts left in ``folder`` (after the job; driver side)."""
    import pyarrow.fs as pafs

    fs, root = arrow_filesystem(folder)
    attempts = join(root, ATTEMPTS)
    if fs.get_file_info(attempts).type == pafs.FileType.Directory:
        fs.delete_dir(attempts)


def rows_per_group(schema: Schema, target_mb: float) -> int:
    """Rows of ``schema`` in a row group of about ``target_mb`` (1 when a row's arrays have no
    fixed shape, e.g. whole volumes: a volume is a row group of its own)."""
    row_bytes = 64
    for field in schema.fields.values():
        if isinstance(field.codec, NdarrayCodec):
            if None in field.shape:
                return 1
            count = 1
            for n in field.shape:
                count *= int(n or 1)
            row_bytes += count * np.dtype(field.numpy_dtype).itemsize
    return max(1, int(target_mb * 1024 * 1024) // row_bytes)


def write_dataset(
    frame: DataFrame,
    schema: Schema,
    url: str,
    *,
    rows_per_group: int,
    num_files: int | None = None,
) -> int:
    """Write ``frame`` (rows as ``schema`` stores them, :meth:`Schema.encode_row`) as a
    Petastorm dataset at ``url``, replacing what was there; the rows written.

    One part file per partition (``num_files`` repartitions first), written by the frame's
    own tasks, each row group ``rows_per_group`` rows (shards are row groups); then
    ``_common_metadata``.
    """
    import pyarrow.fs as pafs

    folder = to_url(url)
    fs, root = arrow_filesystem(folder)
    if fs.get_file_info(root).type == pafs.FileType.Directory:
        fs.delete_dir(root)
    if num_files is not None:
        frame = frame.repartition(num_files)
    image = [f.name for f in frame.schema.fields if f.dataType.typeName() == "binary"]
    with session_conf(frame.sparkSession, ARROW_BATCH_CONF, str(rows_per_group)):
        rows = write_frame(frame, folder, uuid.uuid4().hex[:8], image)
    finish_dataset(folder, schema)
    return rows


def finish_dataset(url: str, schema: Schema) -> None:
    """After the tasks wrote their parts: failed attempts removed, ``_common_metadata``
    written (nothing when no task wrote a part)."""
    clean(url)
    fs, root = arrow_filesystem(url)
    if part_files(fs, root, missing_ok=True):
        write_metadata(url, schema)
