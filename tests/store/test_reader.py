"""RowGroupReader: epochs, seeded order independent of thread timing, bounded read-ahead."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pyarrow.fs as pafs
import pytest

from sparkdl.store.metadata import RowGroup, shard
from sparkdl.store.reader import RowGroupReader

GROUPS = [RowGroup(f"part-{i // 4}", i % 4) for i in range(12)]


def _slow_read(fs: pafs.FileSystem, group: RowGroup) -> int:
    index = int(group.path[-1]) * 4 + group.index
    time.sleep(0.002 * ((index * 7) % 5))  # finish out of order
    return index


def _read_all(**options: Any) -> list[int]:
    defaults: dict[str, Any] = {
        "num_epochs": 1,
        "shuffle": True,
        "seed": 3,
        "workers_count": 1,
        "results_queue_size": 4,
    }
    with RowGroupReader(
        pafs.LocalFileSystem(), GROUPS, _slow_read, **{**defaults, **options}
    ) as reader:
        return list(reader)


def test_same_seed_same_order_with_any_number_of_threads() -> None:
    one = _read_all(workers_count=1)
    three = _read_all(workers_count=3)
    assert one == three and sorted(one) == list(range(12))
    assert _read_all(seed=4) != one


def test_epochs_reshuffle_and_unshuffled_keeps_stored_order() -> None:
    two = _read_all(num_epochs=2)
    assert sorted(two[:12]) == sorted(two[12:]) == list(range(12))
    assert two[:12] != two[12:]
    assert _read_all(shuffle=False, num_epochs=2) == list(range(12)) * 2


def test_forever_stops_when_closed() -> None:
    reader = RowGroupReader(
        pafs.LocalFileSystem(),
        GROUPS,
        _slow_read,
        num_epochs=None,
        shuffle=True,
        seed=1,
        workers_count=2,
        results_queue_size=3,
    )
    taken = list(itertools.islice(iter(reader), 30))
    reader.close()
    assert len(taken) == 30 and sorted(taken[:12]) == list(range(12))


def test_none_results_are_skipped_and_read_ahead_is_bounded() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def read(fs: pafs.FileSystem, group: RowGroup) -> int | None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.003)
        with lock:
            running[0] -= 1
        return None if group.index == 0 else group.index

    with RowGroupReader(
        pafs.LocalFileSystem(),
        GROUPS,
        read,
        num_epochs=1,
        shuffle=False,
        seed=0,
        workers_count=4,
        results_queue_size=2,
    ) as reader:
        results = list(reader)
    assert results == [1, 2, 3] * 3
    assert peak[0] <= 2


def test_shard_is_petastorms_modulo_rule_and_empty_groups_refused() -> None:
    assert shard(GROUPS, 1, 3) == GROUPS[1::3]
    assert sorted(g for s in range(3) for g in shard(GROUPS, s, 3)) == sorted(GROUPS)
    with pytest.raises(ValueError, match="at least one"):
        RowGroupReader(
            pafs.LocalFileSystem(),
            [],
            _slow_read,
            num_epochs=1,
            shuffle=False,
            seed=0,
            workers_count=1,
            results_queue_size=1,
        )
