"""Volume row groups planned on the driver and read by the task itself (no JVM)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sparkdl.store.volume_rows import plan_volume_groups, read_volume_batches


def _part(path: Path, groups: list[list[str]]) -> None:
    """A part file with one row group per list of series (a payload column besides)."""
    schema = pa.schema([("series_uid", pa.string()), ("volume", pa.binary())])
    with pq.ParquetWriter(path, schema) as writer:
        for series in groups:
            payload = [s.encode() * 1000 for s in series]
            writer.write_table(pa.table({"series_uid": series, "volume": payload}, schema=schema))


def test_row_groups_are_planned_with_their_series_and_read_back(tmp_path: Path) -> None:
    table = tmp_path / "volumes"
    table.mkdir()
    _part(table / "part-a.parquet", [["1.1"], ["1.2"]])
    _part(table / "part-b.parquet", [["2.1", "2.2"]])  # two volumes in one group (older data)
    (table / "_common_metadata").write_bytes(b"not a part")
    (table / "_attempts").mkdir()
    _part(table / "_attempts" / "part-c.parquet", [["9.9"]])  # a failed attempt: not a part

    groups = plan_volume_groups(str(table))
    assert [(Path(g.path).name, g.index, g.series) for g in groups] == [
        ("part-a.parquet", 0, ("1.1",)),
        ("part-a.parquet", 1, ("1.2",)),
        ("part-b.parquet", 0, ("2.1", "2.2")),
    ]
    rows = [r for b in read_volume_batches(str(table), groups) for r in b.to_pylist()]
    assert [r["series_uid"] for r in rows] == ["1.1", "1.2", "2.1", "2.2"]
    assert rows[2]["volume"] == b"2.1" * 1000

    wanted = frozenset({"1.2", "2.2"})
    chosen = [g for g in groups if wanted.intersection(g.series)]
    rows = [r for b in read_volume_batches(str(table), chosen, wanted) for r in b.to_pylist()]
    assert [r["series_uid"] for r in rows] == ["1.2", "2.2"]


def test_no_volumes_folder_plans_nothing(tmp_path: Path) -> None:
    assert plan_volume_groups(str(tmp_path / "volumes")) == []
