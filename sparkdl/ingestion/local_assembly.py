"""Series assembled by tasks that read their staged slices themselves: no shuffle of pixels.

Every read task writes its records as a staged Parquet part and says how many CT slices of
each series it holds (:class:`sparkdl.ingestion.read_stage.Staged`). A series is then
assembled by one task that reads, with pyarrow, only the row groups of those parts that
hold it, and only its rows. Through Spark (a shuffle by series), every slice's pixels were
read by the JVM, hashed into shuffle files, sorted and handed to Python as Arrow again: 6.7
of the 8.5 s of the volume stage on the real LIDC series (``scripts/bench_ingest.py --only
d``). Both ways call the same assembly (:mod:`sparkdl.ingestion.volume_stage`), so the
volumes are the same (``scripts/compare_datasets.py``).

Archives and PACS exports keep a series in one folder, and the read stage packs a folder
into one task when it is not larger than a task's share
(:func:`sparkdl.ingestion.discover.pack_partitions`), so most series lie in one part; a
large series is read by several tasks (its parse uses every core) and assembled by one task
reading those parts. The read stage writes a row group per folder, and a task reads only the
row groups that hold its series: a series whose row groups hold more than twice its own
slices and one batch besides (a flat folder of interleaved series) still goes through the
shuffle, where each row group is read once, not once per series.

Memory: a task reads a row group (at most 256 records) at a time and keeps only the slices
of its series not yet complete; a series is assembled and let go as soon as its last slice
is read.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from sparkdl.ingestion.read_stage import BATCH_RECORDS, Placed
from sparkdl.store.reader import read_group
from sparkdl.store.storage import arrow_filesystem
from sparkdl.store.volume_rows import groups_holding
from sparkdl.units.volume_file import VOLUME_CLASS_NAMES

__all__ = ["LocalPlan", "Unit", "plan_local", "read_series", "spread"]

#: ``(source_path, member or "")`` of a staged unit: how duplicate copies are named.
Key = tuple[str, str]

#: The staged columns read besides the slice columns: to select the rows.
_SELECT_COLUMNS = ["status", "sop_class_name", "header_json", "source_path", "member"]


@dataclass(frozen=True)
class Unit:
    """One task's work: the ``series`` (slices staged, copies included) it assembles from the
    staged ``parts``, less the ``copies`` duplicate resolution rejected."""

    parts: tuple[str, ...]
    series: dict[str, int] = field(default_factory=dict)
    copies: list[Key] = field(default_factory=list)

    @property
    def slices(self) -> int:
        return sum(self.series.values())


@dataclass(frozen=True)
class LocalPlan:
    """The units of series assembled where they are staged, largest first; ``complete`` when
    every series is among them (then no shuffle job runs at all)."""

    units: list[Unit]
    complete: bool = False

    @property
    def series(self) -> frozenset[str]:
        return frozenset(s for unit in self.units for s in unit.series)


def plan_local(
    parts_of: Iterable[Mapping[str, Mapping[str, Placed]]],
    copies: Mapping[str, Iterable[Key]] | None,
) -> LocalPlan:
    """The series of ``parts_of`` (``series → {part: Placed}``, one mapping per staged
    table) that a task can read without reading more than twice their slices and one batch
    besides, one unit per set of parts. ``copies``: the keys duplicate resolution rejected,
    by series (None: unknown, every series is shuffled).
    """
    merged: dict[str, dict[str, Placed]] = {}
    for table in parts_of:
        for series, parts in table.items():
            merged.setdefault(series, {}).update(parts)
    if copies is None:
        return LocalPlan([])
    units: dict[tuple[str, ...], Unit] = {}
    for series, parts in sorted(merged.items()):
        own = sum(placed.slices for placed in parts.values())
        if sum(placed.read for placed in parts.values()) > 2 * own + BATCH_RECORDS:
            continue
        key = tuple(sorted(parts))
        unit = units.setdefault(key, Unit(key))
        unit.series[series] = own
        unit.copies.extend(copies.get(series, ()))
    planned = sorted(units.values(), key=lambda u: (-u.slices, u.parts))
    local = sum(len(unit.series) for unit in planned)
    return LocalPlan(planned, complete=local == len(merged))


def spread(units: list[Unit], tasks: int) -> list[list[int]]:
    """The indexes of ``units`` (largest first) dealt into at most ``tasks`` lists of about
    equal slices, largest first into the lightest (LPT): a task per unit cost tens of ms
    of scheduling each, thousands of times for a hospital's cohort of small series."""
    heap = [(0, task) for task in range(max(1, min(tasks, len(units))))]
    dealt: list[list[int]] = [[] for _ in heap]
    for index, unit in sorted(enumerate(units), key=lambda item: -item[1].slices):
        load, task = heapq.heappop(heap)
        dealt[task].append(index)
        heapq.heappush(heap, (load + unit.slices, task))
    return [indexes for indexes in dealt if indexes]


def read_series(unit: Unit, columns: list[str]) -> Iterator[pa.Table]:
    """The CT slices of each series of ``unit`` as one table of ``columns`` and
    ``volume_file`` (as the shuffle path selects them), a series as soon as all its staged
    slices have been read; a series whose slices were all rejected copies yields nothing."""
    wanted = frozenset(unit.series)
    names = list(dict.fromkeys([*columns, "series_uid", *_SELECT_COLUMNS]))
    pending: dict[str, list[pa.Table]] = {}
    seen: dict[str, int] = {}
    for part in unit.parts:
        fs, path = arrow_filesystem(part)
        for group in groups_holding(fs, path, wanted):
            rows = _slices(read_group(fs, group, names, where={"series_uid": wanted}))
            for series, chunk in _split_by(rows, "series_uid"):
                seen[series] = seen.get(series, 0) + chunk.num_rows
                pending.setdefault(series, []).append(_without(chunk, unit.copies))
                if seen[series] == unit.series[series]:
                    table = pa.concat_tables(pending.pop(series))
                    if table.num_rows:
                        yield _as_slices(table, columns)
    if pending:  # the staged parts changed since they were counted: never expected
        raise RuntimeError(f"staged parts hold fewer slices than planned for {len(pending)} series")


def _slices(rows: pa.Table) -> pa.Table:
    """The CT slices among staged records: accepted, with pixels."""
    accepted = pc.equal(rows.column("status"), "accepted")
    return rows.filter(pc.and_(accepted, pc.is_valid(rows.column("pixels"))))


def _without(rows: pa.Table, copies: list[Key]) -> pa.Table:
    """``rows`` less the duplicate ``copies`` (by source path and member)."""
    if not copies:
        return rows
    member = pc.fill_null(rows.column("member"), "")
    keys = pc.binary_join_element_wise(rows.column("source_path"), member, "\x00")
    copied = pa.array(sorted(f"{path}\x00{member}" for path, member in copies), pa.string())
    return rows.filter(pc.invert(pc.is_in(keys, value_set=copied)))


def _as_slices(rows: pa.Table, columns: list[str]) -> pa.Table:
    """``columns`` and ``volume_file``: the geometry header of a volume file, else null."""
    is_file = pc.is_in(rows.column("sop_class_name"), value_set=_VOLUME_CLASSES)
    volume_file = pc.if_else(is_file, rows.column("header_json"), pa.scalar(None, pa.string()))
    return rows.select(columns).append_column("volume_file", volume_file)


def _split_by(table: pa.Table, column: str) -> Iterator[tuple[str, pa.Table]]:
    """``(value, rows)`` per distinct value of ``column``, in order of first appearance."""
    for value in dict.fromkeys(table.column(column).to_pylist()):
        yield value, table.filter(pc.equal(table.column(column), value))


_VOLUME_CLASSES = pa.array(sorted(VOLUME_CLASS_NAMES.values()), type=pa.string())
