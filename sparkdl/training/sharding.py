"""How the patches of a dataset deal out over training workers: the one shard planner.

Petastorm's rule gives row group ``i`` of the sorted part files to shard
``i % num_shards`` (:func:`sparkdl.store.metadata.shard`), so shards hold different numbers
of rows. :func:`shard_row_counts` counts them from the Parquet footers (and the small
``split``/label columns when rows are selected); :func:`plan_shards` turns the counts into
what ``train`` runs: how many shards and how many steps per epoch, the same on every worker,
so that no worker waits in a collective for a batch that never comes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sparkdl.errors import ConfigError, InputError
from sparkdl.store.layout import Dataset
from sparkdl.store.metadata import RowGroup, row_groups, shard
from sparkdl.store.patch_batches import row_mask, selection_columns
from sparkdl.store.tables import LABEL_FIELDS, PATCHES, SPLITS

logger = logging.getLogger(__name__)

#: Shards whose smallest holds less than this fraction of an even share are too uneven to
#: train on: its worker would repeat a few rows for half of every global batch.
MIN_SHARD_BALANCE = 0.5


@dataclass(frozen=True)
class ShardPlan:
    """What every worker of a training run reads.

    ``num_shards`` is the number of workers (worker ``rank`` reads shard ``rank``) or 1 (the
    shards were too uneven: every worker reads the whole split in its own order);
    ``steps_per_epoch`` is the same for all; ``shard_rows`` are the selected rows per shard
    of ``num_workers`` shards, as counted.
    """

    num_shards: int
    steps_per_epoch: int
    shard_rows: tuple[int, ...]


def plan_shards(
    data: Dataset | str,
    *,
    batch_size: int,
    num_workers: int,
    split: str | None = "train",
    label_field: str = "label",
    min_steps: int = 1,
) -> ShardPlan:
    """The plan ``sparkdl.train`` runs for ``num_workers`` workers on ``data``'s patches.

    ``batch_size`` is the global batch, split evenly over the workers. Balanced shards: each
    worker reads its own, and an epoch is the steps the smallest shard gives. When the
    smallest holds less than ``MIN_SHARD_BALANCE`` of an even share (or there are fewer row
    groups than workers), one shard: each worker reads the whole split (its own seed) and an
    epoch is the split's rows over the global batch. At least ``min_steps`` (and one) either
    way: shards are read with no end, so a short one repeats within the epoch.
    """
    if not isinstance(num_workers, int) or num_workers < 1:
        raise ConfigError(f"num_workers must be an integer >= 1. Received: {num_workers!r}.")
    if batch_size < num_workers or batch_size % num_workers:
        raise ConfigError(
            f"batch_size must be a multiple of num_workers (every worker takes an equal part "
            f"of the global batch). Received: batch_size={batch_size}, "
            f"num_workers={num_workers}."
        )
    url = Dataset.of(data).url(PATCHES)
    try:
        rows = shard_row_counts(url, num_workers, split=split, label_field=label_field)
    except InputError:  # fewer row groups than workers: one shard
        if num_workers == 1:
            raise
        rows = shard_row_counts(url, 1, split=split, label_field=label_field)
    if not sum(rows):
        raise InputError(
            f"The {split or 'whole'} split of {url} holds no rows with a known "
            f"{label_field}. Expected some: check the split fractions of the ingest "
            "config and the annotations/candidates given to it."
        )
    plan = plan_from_rows(rows, batch_size, min_steps)
    if plan.num_shards < num_workers:
        logger.warning(
            "the %s split's row groups (rows per shard %s) cannot give %d workers a fair shard "
            "each (shards are row groups): every worker reads the whole split in its own "
            "order. Write the patches in more, equal row groups to shard them.",
            split,
            list(rows),
            num_workers,
        )
    return plan


def plan_from_rows(shard_rows: Sequence[int], batch_size: int, min_steps: int = 1) -> ShardPlan:
    """:func:`plan_shards` for shards already counted (one count per worker)."""
    if not shard_rows or batch_size < len(shard_rows):
        raise ConfigError(
            f"plan_shards needs one row count per shard and batch_size >= the "
            f"number of shards. Received: batch_size={batch_size}, "
            f"shard_rows={list(shard_rows)}"
        )
    num_shards, total = len(shard_rows), sum(shard_rows)
    if num_shards > 1 and min(shard_rows) >= MIN_SHARD_BALANCE * total / num_shards:
        steps = min(shard_rows) // (batch_size // num_shards)
    else:
        num_shards, steps = 1, total // batch_size
    if steps < min_steps:
        logger.info(
            "train: %d steps per pass over the split; an epoch repeats it up to %d steps",
            steps,
            min_steps,
        )
    return ShardPlan(num_shards, max(1, min_steps, steps), tuple(int(r) for r in shard_rows))


def shard_groups(
    url: str, shard_index: int, num_shards: int
) -> tuple[pafs.FileSystem, list[RowGroup]]:
    """The row groups of one shard of the Petastorm dataset at ``url``; never empty."""
    fs, groups = row_groups(url)
    _check_enough_groups(url, len(groups), num_shards)
    return fs, shard(groups, shard_index, num_shards)


def shard_row_counts(
    url: str, num_shards: int, *, split: str | None = None, label_field: str = "label"
) -> list[int]:
    """Rows each of ``num_shards`` shards of the dataset at ``url`` yields per epoch.

    Counts the rows of ``split`` (all when None) with a known ``label_field`` (malignancy
    -1 is unknown); reads Parquet footers only, plus those small columns when rows are
    selected, each file opened once.
    """
    check_selection(split, label_field)
    if not isinstance(num_shards, int) or num_shards < 1:
        raise ConfigError(f"num_shards must be an integer >= 1. Received: {num_shards!r}.")
    fs, groups = row_groups(url)
    _check_enough_groups(url, len(groups), num_shards)
    selected = split is not None or label_field == "malignancy"
    columns = selection_columns(split, label_field)
    by_file: dict[str, list[tuple[int, int]]] = {}
    for index, group in enumerate(groups):
        by_file.setdefault(group.path, []).append((index, group.index))
    counts = [0] * num_shards
    for path, in_file in by_file.items():
        with fs.open_input_file(path) as stream:
            parquet_file = pq.ParquetFile(stream)
            for index, group_index in in_file:
                if selected:
                    table = parquet_file.read_row_group(group_index, columns=columns)
                    rows = int(row_mask(table, split, label_field).sum())
                else:
                    rows = parquet_file.metadata.row_group(group_index).num_rows
                counts[index % num_shards] += rows
    return counts


def check_selection(split: str | None, label_field: str) -> None:
    if split is not None and split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS} or None. Received: split={split!r}.")
    if label_field not in LABEL_FIELDS.values():
        raise ConfigError(
            f"label_field must be one of {tuple(LABEL_FIELDS.values())}. "
            f"Received: label_field={label_field!r}."
        )


def _check_enough_groups(url: str, num_groups: int, num_shards: int) -> None:
    if num_groups < num_shards:
        raise InputError(
            f"{url} has {num_groups} row groups, fewer than num_shards={num_shards}: some "
            "shards would be empty. Use fewer shards, or write the dataset with smaller row "
            "groups."
        )
