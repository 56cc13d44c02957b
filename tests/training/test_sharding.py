"""How many shards and steps per epoch a split's row counts give (no data read)."""

from __future__ import annotations

import pytest

from sparkdl.errors import ConfigError
from sparkdl.training.sharding import plan_from_rows


def test_plan_shards_balanced_or_whole_split() -> None:
    def plan(rows: list[int], batch: int, min_steps: int = 1) -> tuple[int, int]:
        found = plan_from_rows(rows, batch, min_steps)
        return found.num_shards, found.steps_per_epoch

    assert plan([103, 117], 32) == (2, 6)  # own shards: the smallest gives 6 × 16
    assert plan([60, 120], 32) == (2, 3)  # 60 >= half of an even 90
    # One shard holding most rows (row groups [100, 2, 100, 4, ...] dealt round-robin):
    # every worker reads the whole split; an epoch is its rows over the global batch.
    assert plan([257, 5], 32) == (1, 8)
    assert plan([0, 40], 32) == (1, 1)
    assert plan([70], 32) == (1, 2)
    assert plan([103, 117], 32, min_steps=8) == (2, 8)  # a short pass repeats
    assert plan([257, 5], 32, min_steps=8) == (1, 8)  # already 8 steps
    with pytest.raises(ConfigError, match="plan_shards"):
        plan([], 32)
    with pytest.raises(ConfigError, match="plan_shards"):
        plan([10, 10, 10], 2)  # fewer patches per step than shards
