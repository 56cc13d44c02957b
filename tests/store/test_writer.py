"""Parquet parts written by Python tasks: a failed attempt leaves nothing readers see."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from sparkdl.store.writer import ATTEMPTS, clean, part_name, write_part

SCHEMA = pa.schema([pa.field("id", pa.int64(), False), pa.field("pixels", pa.binary())])


def _batches(ids: range, fail_after: int | None = None) -> Iterator[pa.RecordBatch]:
    for i in ids:
        if fail_after is not None and i >= fail_after:
            raise RuntimeError("executor lost")
        yield pa.RecordBatch.from_pydict({"id": [i], "pixels": [bytes(1000) + bytes([i])]}, SCHEMA)


def test_a_failed_attempt_is_replaced_by_its_retry(tmp_path: Path) -> None:
    folder = str(tmp_path / "records")
    first, second = part_name("r", "00000"), part_name("r", "00001")
    assert write_part(_batches(range(0, 3)), folder, first, SCHEMA, ["pixels"]) == 3
    with pytest.raises(RuntimeError):
        write_part(_batches(range(3, 8), 5), folder, second, SCHEMA, ["pixels"])
    # The failed attempt left a partial file where readers do not look.
    assert len(list((tmp_path / "records" / ATTEMPTS).iterdir())) == 1
    assert write_part(_batches(range(3, 8)), folder, second, SCHEMA, ["pixels"]) == 5
    # A second finished attempt of a task replaces the first, it is not added to it.
    assert write_part(_batches(range(3, 8)), folder, second, SCHEMA, ["pixels"]) == 5

    table = ds.dataset(folder, format="parquet").to_table()
    assert sorted(table["id"].to_pylist()) == list(range(8))
    assert sorted(p.name for p in (tmp_path / "records").glob("*.parquet")) == [first, second]
    clean(folder)
    assert not (tmp_path / "records" / ATTEMPTS).exists()
    assert ds.dataset(folder, format="parquet").count_rows() == 8


def test_image_columns_have_no_dictionary_and_no_statistics(tmp_path: Path) -> None:
    folder = str(tmp_path / "t")
    write_part(_batches(range(4)), folder, "part-t.parquet", SCHEMA, ["pixels"])
    meta = pq.ParquetFile(tmp_path / "t" / "part-t.parquet").metadata
    assert meta.num_row_groups == 4  # a row group per batch (a volume per group)
    column = {
        meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(2)
    }
    assert column["id"].statistics is not None and column["id"].statistics.has_min_max
    assert column["pixels"].statistics is None or not column["pixels"].statistics.has_min_max
    assert "PLAIN_DICTIONARY" not in column["pixels"].encodings
    assert "RLE_DICTIONARY" not in column["pixels"].encodings
    assert column["pixels"].compression == "ZSTD"


def test_a_frame_written_by_its_tasks_reads_back(spark, tmp_path: Path) -> None:
    """write_frame (an append run's kept volumes): one part per partition, a row group per
    Arrow batch, and Spark reads back every row."""
    from sparkdl.spark import ARROW_BATCH_CONF, session_conf
    from sparkdl.store.writer import write_frame

    frame = spark.createDataFrame(
        [(i, bytes([i]) * 100) for i in range(6)], "id LONG, pixels BINARY"
    ).repartition(2)
    folder = str(tmp_path / "kept")
    with session_conf(spark, ARROW_BATCH_CONF, "1"):
        assert write_frame(frame, folder, "run-kept", ["pixels"]) == 6
    clean(folder)
    parts = sorted((tmp_path / "kept").glob("part-run-kept-*.parquet"))
    assert len(parts) == 2
    assert sum(pq.ParquetFile(p).metadata.num_row_groups for p in parts) == 6
    back = spark.read.parquet(folder).orderBy("id").collect()
    assert [(row.id, bytes(row.pixels)) for row in back] == [
        (i, bytes([i]) * 100) for i in range(6)
    ]
