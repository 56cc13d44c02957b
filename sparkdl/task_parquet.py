"""Python tasks write their own Parquet parts: record batches go to disk without the JVM.

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

from .schemas import PARQUET_COMPRESSION
from .storage import arrow_filesystem, join

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

__all__ = ["ATTEMPTS", "clean", "part_name", "write_frame", "write_part", "write_task_part"]

#: The folder of attempts in progress (or failed) under the dataset folder.
ATTEMPTS = "_attempts"


def part_name(prefix: str, key: str) -> str:
    return f"part-{prefix}-{key}.parquet"


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
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    name = part_name(prefix, f"{partition:05d}")
    rows = write_part(batches, folder, name, schema, image_columns)
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
