"""What a training run is told: the train config (``conf/train.yaml``) and the planned job.

:class:`TrainConfig` is what a user chooses; :class:`TrainJob` is what the driver decided
from it and the data (:func:`sparkdl.training.job.plan_job`), handed as it is to every
worker: plain frozen values, pickled into the barrier tasks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sparkdl.config import check_ranges, from_mapping, read_yaml
from sparkdl.errors import ConfigError, InputError
from sparkdl.store.tables import LABEL_FIELDS, LUNG_WINDOW

#: Builds the uncompiled ``tf_keras.Model`` for an input shape ``(D, H, W, 1)``.
ModelFn = Callable[[tuple[int, int, int, int]], Any]


@dataclass(frozen=True)
class TrainConfig:
    """``conf/train.yaml``: the model, the optimisation and the data view. Validates itself."""

    model: str = "cnn3d"
    task: Literal["nodule", "malignancy"] = "nodule"
    base_filters: int = 16
    num_stages: int = 3
    dropout: float = 0.3
    epochs: int = 20
    #: Least optimizer steps per epoch. A small train split gives few steps per pass
    #: (epochs × rows ÷ batch), too few to learn from; its epochs then repeat the split
    #: (it is read with no end) up to this many steps. 0 or 1: an epoch is one pass.
    min_steps_per_epoch: int = 8
    #: Global batch, split evenly over the workers.
    batch_size: int = 32
    #: Initial rate of a cosine decay to zero over all epochs.
    learning_rate: float = 2e-3
    class_weight: Literal["balanced", "none"] = "balanced"
    augment: bool = False
    #: HU window (level, width) mapped to [0, 1].
    window: tuple[float, float] = LUNG_WINDOW
    #: Probability above which ``evaluate`` calls a patch positive.
    threshold: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        from sparkdl.training.models import MODELS

        check_ranges(
            self,
            [
                ("model", self.model in MODELS, f"one of {sorted(MODELS)}"),
                ("base_filters", self.base_filters >= 1, "an integer >= 1"),
                ("num_stages", 1 <= self.num_stages <= 5, "an integer in [1, 5]"),
                ("dropout", 0.0 <= self.dropout < 1.0, "a number in [0, 1)"),
                ("epochs", self.epochs >= 1, "an integer >= 1"),
                ("min_steps_per_epoch", self.min_steps_per_epoch >= 0, "an integer >= 0"),
                ("batch_size", self.batch_size >= 1, "an integer >= 1"),
                ("learning_rate", self.learning_rate > 0, "a number > 0"),
                ("window", self.window[1] > 0, "[level, width] with width > 0"),
                ("threshold", 0.0 < self.threshold < 1.0, "a number in (0, 1)"),
            ],
        )

    @property
    def label_field(self) -> str:
        return LABEL_FIELDS[self.task]

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> TrainConfig:
        """Read ``path`` (YAML; defaults when None); ``overrides`` (CLI flags, None ignored) win.

        A bad value is reported where it came from: the config file's key, or the flag.
        """
        config = from_mapping(cls, read_yaml(path), where=str(path or "train config"))
        flags = {key: value for key, value in overrides.items() if value is not None}
        try:
            return dataclasses.replace(config, **flags)
        except ConfigError as err:
            given = ", ".join(f"--{key.replace('_', '-')} {value}" for key, value in flags.items())
            raise ConfigError(f"{given}: {err}") from None


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs, decided once on the driver: plain values, picklable."""

    data: str
    model_dir: str
    config: TrainConfig
    #: Builds the uncompiled model for ``input_shape`` (pickled to the workers by value
    #: when it is the user's own, e.g. defined in a notebook).
    model_fn: ModelFn
    num_workers: int
    use_gpu: bool
    input_shape: tuple[int, int, int, int]
    #: ``num_workers`` (worker ``rank`` reads shard ``rank``) or 1 (each reads the whole split).
    num_shards: int
    steps_per_epoch: int
    validation_steps: int
    class_weight: dict[int, float] | None
    train_counts: dict[int, int]


def class_weights(counts: dict[int, int]) -> dict[int, float]:
    """Balanced weights ``n / (2 * n_c)`` from per-class counts of a binary task."""
    total = sum(counts.values())
    missing = [c for c in (0, 1) if counts.get(c, 0) == 0]
    if missing:
        raise InputError(
            f"The train split has no rows of class {missing}. Received counts: {counts}. "
            "Expected both classes: check the annotations/candidates given to ingest."
        )
    return {c: total / (2.0 * counts[c]) for c in (0, 1)}
