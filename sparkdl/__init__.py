"""sparkdl: de-identified DICOM to deep learning on Apache Spark.

The public surface is small on purpose::

    import sparkdl
    data = sparkdl.Dataset("/data/out")          # or the plain path/URL, everywhere
    sparkdl.ingest(inputs, data)
    sparkdl.make_dataset(data, batch_size=32, split="train")
    sparkdl.train(data, "/models/m1", model_fn=my_model)
    sparkdl.evaluate(data, "/models/m1", "/reports/m1")

Stages take ``data`` first, then ``model_dir``, then the output, keyword-only after that.

Names load on first use (PEP 562), so ``import sparkdl`` costs nothing on executors, in
the CLI and in notebooks until a stage is actually used. Modules are named by what they
hold (``ingestion``, ``training``, ...), so no module shadows the function it exports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DeidKeyError, InputError, SparkdlError, TrainingError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Dataset",
    "DeidKeyError",
    "Geometry",
    "IngestConfig",
    "InputError",
    "Labels",
    "ReadOptions",
    "ShardPlan",
    "SparkdlError",
    "TrainConfig",
    "TrainingError",
    "TrainingRunner",
    "evaluate",
    "ingest",
    "inspect_dataset",
    "make_dataset",
    "plan_shards",
    "predict",
    "read_rows",
    "synthesize_cohort",
    "train",
]

_LAZY = {
    "IngestConfig": "sparkdl.ingestion",
    "ingest": "sparkdl.ingestion",
    "Dataset": "sparkdl.layout",
    "Geometry": "sparkdl.geometry",
    "Labels": "sparkdl.patch_stage",
    "make_dataset": "sparkdl.dataset",
    "ReadOptions": "sparkdl.dataset",
    "plan_shards": "sparkdl.sharding",
    "ShardPlan": "sparkdl.sharding",
    "TrainingRunner": "sparkdl.runner",
    "TrainConfig": "sparkdl.training",
    "train": "sparkdl.training",
    "inspect_dataset": "sparkdl.inspection",
    "evaluate": "sparkdl.evaluation",
    "predict": "sparkdl.prediction",
    "read_rows": "sparkdl.reader",
    "synthesize_cohort": "sparkdl.synth",
}

if TYPE_CHECKING:
    from .dataset import ReadOptions, make_dataset
    from .evaluation import evaluate
    from .geometry import Geometry
    from .ingestion import IngestConfig, ingest
    from .inspection import inspect_dataset
    from .layout import Dataset
    from .patch_stage import Labels
    from .prediction import predict
    from .reader import read_rows
    from .runner import TrainingRunner
    from .sharding import ShardPlan, plan_shards
    from .synth import synthesize_cohort
    from .training import TrainConfig, train


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sparkdl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
