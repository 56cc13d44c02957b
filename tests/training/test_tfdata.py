"""make_dataset, ReadOptions, shard_row_counts and plan_shards on a small patches dataset.

The dataset (tests/patch_data.py) has 60 rows of 8³ patches in 7 row groups of uneven size
across 3 Parquet files; each row's id is readable from the windowed voxel (0, 0, 0).
Spark writes it before TF is imported in this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from sparkdl import Dataset, ReadOptions, make_dataset, plan_shards
from sparkdl.errors import ConfigError, InputError
from sparkdl.training.sharding import shard_row_counts
from tests.patch_data import (
    label_of,
    malignancy_of,
    patch_of,
    row_id_from_window,
    split_of,
    write_patches,
)

NUM_ROWS = 60
SIZE = 8


_OPTIONS = {"shuffle", "seed", "label_field", "window", "augment"}


@pytest.fixture(scope="module")
def data(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """A dataset root holding only ``patches/`` (all make_dataset needs)."""
    root = Dataset(str(tmp_path_factory.mktemp("dataset")))
    assert write_patches(spark, root.url("patches"), size=SIZE) == NUM_ROWS
    return root


@pytest.fixture(scope="module")
def patches_url(data: Dataset) -> str:
    return data.url("patches")


def _make(data: Dataset | str, **kwargs: Any) -> Any:
    """make_dataset with ReadOptions fields given as keywords too."""
    options = ReadOptions(**{k: v for k, v in kwargs.items() if k in _OPTIONS})
    return make_dataset(
        data,
        options=options,
        **{"batch_size": 8, **{k: v for k, v in kwargs.items() if k not in _OPTIONS}},
    )


def _read(data: Dataset, **kwargs: Any) -> tuple[list[int], list[float], list[np.ndarray]]:
    """Row ids, labels and x batches of one make_dataset pass."""
    ids: list[int] = []
    labels: list[float] = []
    xs: list[np.ndarray] = []
    for x, y in _make(data, **kwargs):
        xs.append(x.numpy())
        ids += row_id_from_window(xs[-1]).tolist()
        labels += y.numpy().tolist()
    return ids, labels, xs


@pytest.mark.parametrize("num_shards", [1, 2, 3])
def test_every_row_once_per_epoch_across_uneven_shards(
    data: Dataset, patches_url: str, num_shards: int
) -> None:
    counts = shard_row_counts(patches_url, num_shards)
    assert sum(counts) == NUM_ROWS
    if num_shards > 1:
        assert len(set(counts)) > 1, f"test data should give uneven shards, got {counts}"
    seen: list[int] = []
    for shard in range(num_shards):
        ids, labels, _ = _read(data, shard_index=shard, num_shards=num_shards, seed=5)
        assert len(ids) == len(set(ids)) == counts[shard]
        assert labels == [label_of(i) for i in ids]
        seen += ids
    assert sorted(seen) == list(range(NUM_ROWS))  # union is the dataset, shards disjoint


def test_shard_row_counts_follow_petastorms_row_group_rule(patches_url: str) -> None:
    """Row group ``i`` of the part files sorted by path goes to shard ``i % n`` (Petastorm's
    rule; tests/interop checks it against Petastorm 0.13.1 itself)."""
    folder = Path(patches_url.removeprefix("file://"))
    sizes = []
    for path in sorted(str(p) for p in folder.glob("part-*")):
        metadata = pq.read_metadata(path)
        sizes += [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert len(sizes) > 3
    for num_shards in (2, 3):
        expected = [sum(sizes[shard::num_shards]) for shard in range(num_shards)]
        assert shard_row_counts(patches_url, num_shards) == expected


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_split_selects_its_rows_only(data: Dataset, patches_url: str, split: str) -> None:
    ids, _, _ = _read(data, split=split, seed=1, augment=False)
    assert sorted(ids) == [i for i in range(NUM_ROWS) if split_of(i) == split]
    assert shard_row_counts(patches_url, 1, split=split) == [len(ids)]


def test_malignancy_label_skips_unknown(data: Dataset, patches_url: str) -> None:
    ids, labels, _ = _read(data, label_field="malignancy", num_shards=2, shard_index=1)
    counts = shard_row_counts(patches_url, 2, label_field="malignancy")
    assert len(ids) == counts[1]
    assert all(malignancy_of(i) >= 0 for i in ids)
    assert labels == [float(malignancy_of(i)) for i in ids]


def test_same_seed_same_order_different_seed_different_order(data: Dataset) -> None:
    first, _, _ = _read(data, seed=11)
    again, _, _ = _read(data, seed=11)
    other, _, _ = _read(data, seed=12)
    assert first == again
    assert first != other and sorted(first) == sorted(other)
    unshuffled, _, _ = _read(data, shuffle=False)
    assert unshuffled == list(range(NUM_ROWS))  # stored order: files, then row groups


def test_shapes_dtypes_and_window(data: Dataset) -> None:
    dataset = make_dataset(data.root, batch_size=16, options=ReadOptions(shuffle=False))
    x_spec, y_spec = dataset.element_spec
    assert x_spec.shape.as_list() == [None, SIZE, SIZE, SIZE, 1] and x_spec.dtype.name == "float32"
    assert y_spec.shape.as_list() == [None] and y_spec.dtype.name == "float32"
    x, _ = next(iter(dataset))
    x = x.numpy()
    assert x.shape == (16, SIZE, SIZE, SIZE, 1)
    assert x.min() == 0.0 and x.max() == 1.0  # voxels (0,0,1), (0,0,2) are clipped
    expected = np.clip((patch_of(5, SIZE).astype(np.float32) + 1350.0) / 1500.0, 0.0, 1.0)
    np.testing.assert_allclose(x[5, ..., 0], expected, atol=1e-6)
    _, _, narrow = _read(data, batch_size=16, shuffle=False, window=(40.0, 400.0))
    expected = np.clip((patch_of(0, SIZE).astype(np.float32) + 160.0) / 400.0, 0.0, 1.0)
    np.testing.assert_allclose(narrow[0][0, ..., 0], expected, atol=1e-6)


def test_augmentation_only_for_training_and_seeded(data: Dataset) -> None:
    for split in ("val", "test", None):  # default: no augmentation outside train
        _, _, xs = _read(data, split=split, seed=3)
        x = np.concatenate(xs)
        for row_id, row in zip(row_id_from_window(x), x):
            expected = np.clip((patch_of(row_id, SIZE) + 1350.0) / 1500.0, 0.0, 1.0)
            np.testing.assert_allclose(row[..., 0], expected, atol=1e-6)
    plain = _make(data, batch_size=60, split="train", seed=3, augment=False)
    default = _make(data, batch_size=60, split="train", seed=3)
    again = _make(data, batch_size=60, split="train", seed=3)
    x_plain = next(iter(plain))[0].numpy()
    x_aug, x_again = (next(iter(d))[0].numpy() for d in (default, again))
    assert x_aug.shape == x_plain.shape and x_aug.min() >= 0.0 and x_aug.max() <= 1.0
    np.testing.assert_array_equal(x_aug, x_again)
    assert not np.allclose(x_aug, x_plain)


def test_plan_shards_and_infinite_epochs_give_equal_steps(data: Dataset, patches_url: str) -> None:
    counts = shard_row_counts(patches_url, 2, split="train")
    plan = plan_shards(data, batch_size=8, num_workers=2, split="train")
    assert plan.shard_rows == tuple(counts)
    assert plan.num_shards == 2 and plan.steps_per_epoch == min(counts) // 4 >= 1
    for shard in range(2):
        dataset = _make(
            data,
            batch_size=4,
            split="train",
            shard_index=shard,
            num_shards=2,
            num_epochs=None,
            seed=0,
        )
        sizes = [int(x.shape[0]) for x, _ in dataset.take(3 * plan.steps_per_epoch)]
        assert sizes == [4] * (3 * plan.steps_per_epoch)  # the small shard repeats
    assert plan_shards(data, batch_size=1000, num_workers=2, split=None).steps_per_epoch == 1
    assert plan_shards(data, batch_size=8, num_workers=2, min_steps=50).steps_per_epoch == 50
    with pytest.raises(ConfigError, match="multiple of num_workers"):
        plan_shards(data, batch_size=9, num_workers=2)


def test_empty_shard_and_too_many_shards_are_errors(data: Dataset, patches_url: str) -> None:
    with pytest.raises(InputError, match="fewer shards"):
        shard_row_counts(patches_url, 8)  # 7 row groups
    counts = shard_row_counts(patches_url, 7, split="val")
    assert 0 in counts, f"test data should leave a row group without val rows: {counts}"
    plan = plan_shards(data, batch_size=7, num_workers=7, split="val")
    assert plan.num_shards == 1  # an empty shard: every worker reads the whole split
    plan = plan_shards(data, batch_size=8, num_workers=8, split="val")
    assert plan.num_shards == 1 and len(plan.shard_rows) == 1  # fewer row groups than workers


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 0},
        {"shard_index": 2, "num_shards": 2},
        {"split": "training"},
        {"label_field": "diameter_mm"},
        {"window": (-600.0, 0.0)},
        {"num_epochs": 0},
    ],
)
def test_invalid_arguments_say_what_was_received(data: Dataset, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="Received"):
        _make(data, **{"batch_size": 4, **kwargs})


def test_not_a_petastorm_dataset(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="has no patches/: its ingest cut no patch"):
        make_dataset(f"file://{tmp_path}", batch_size=4)
    (tmp_path / "patches").mkdir()
    with pytest.raises(InputError, match="No Petastorm dataset"):
        make_dataset(f"file://{tmp_path}", batch_size=4)
    with pytest.raises(ConfigError, match=r"sparkdl\.ReadOptions"):
        make_dataset(str(tmp_path), batch_size=4, options={"shuffle": False})  # type: ignore[arg-type]  # the error under test
