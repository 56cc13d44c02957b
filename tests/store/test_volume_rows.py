"""Volumes read by the task itself (no JVM): part files listed, row groups chosen in the task."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sparkdl.store.volume_rows import read_volume_batches, volume_files


def _part(path: Path, groups: list[list[str]]) -> None:
    """A part file with one row group per list of series (a payload column besides)."""
    schema = pa.schema([("series_uid", pa.string()), ("volume", pa.binary())])
    with pq.ParquetWriter(path, schema) as writer:
        for series in groups:
            payload = [s.encode() * 1000 for s in series]
            writer.write_table(pa.table({"series_uid": series, "volume": payload}, schema=schema))


def test_each_task_reads_its_files_and_only_the_row_groups_it_wants(tmp_path: Path) -> None:
    table = tmp_path / "volumes"
    table.mkdir()
    _part(table / "part-a.parquet", [["1.1"], ["1.2"]])
    _part(table / "part-b.parquet", [["2.1", "2.2"]])  # two volumes in one group (older data)
    (table / "_common_metadata").write_bytes(b"not a part")
    (table / "_attempts").mkdir()
    _part(table / "_attempts" / "part-c.parquet", [["9.9"]])  # a failed attempt: not a part

    files = volume_files(str(table))
    assert [Path(f).name for f in files] == ["part-a.parquet", "part-b.parquet"]
    batches = list(read_volume_batches(str(table), files))
    assert [b.num_rows for b in batches] == [1, 1, 2]  # a row group at a time
    rows = [r for b in batches for r in b.to_pylist()]
    assert [r["series_uid"] for r in rows] == ["1.1", "1.2", "2.1", "2.2"]
    assert rows[2]["volume"] == b"2.1" * 1000

    wanted = frozenset({"1.2", "2.2"})
    batches = list(read_volume_batches(str(table), files, wanted))
    assert [b.num_rows for b in batches] == [1, 1]  # the group of 1.1 is not read
    assert [r["series_uid"] for b in batches for r in b.to_pylist()] == ["1.2", "2.2"]


def test_no_volumes_folder_has_no_files(tmp_path: Path) -> None:
    assert volume_files(str(tmp_path / "volumes")) == []
