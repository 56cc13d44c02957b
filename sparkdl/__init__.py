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

from sparkdl._version import __version__ as __version__
from sparkdl.errors import (
    ConfigError,
    DataError,
    DeidKeyError,
    InputError,
    SparkdlError,
    TrainingError,
)

__all__ = [
    "ConfigError",
    "DataError",
    "Dataset",
    "DeidKeyError",
    "DetectOptions",
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
    "detect",
    "evaluate",
    "get_spark",
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
    "IngestConfig": "sparkdl.ingestion.config",
    "ingest": "sparkdl.ingestion.job",
    "Dataset": "sparkdl.store.layout",
    "Geometry": "sparkdl.geometry",
    "Labels": "sparkdl.ingestion.patch_stage",
    "make_dataset": "sparkdl.training.tfdata",
    "ReadOptions": "sparkdl.training.tfdata",
    "plan_shards": "sparkdl.training.sharding",
    "ShardPlan": "sparkdl.training.sharding",
    "TrainingRunner": "sparkdl.training.runner",
    "TrainConfig": "sparkdl.training.config",
    "train": "sparkdl.training.job",
    "inspect_dataset": "sparkdl.inspection",
    "evaluate": "sparkdl.evaluation.report",
    "predict": "sparkdl.evaluation.prediction",
    "read_rows": "sparkdl.store.reader",
    "synthesize_cohort": "sparkdl.synth",
    "get_spark": "sparkdl.spark",
    "detect": "sparkdl.evaluation.detection",
    "DetectOptions": "sparkdl.evaluation.detection",
}

if TYPE_CHECKING:
    from sparkdl.evaluation.detection import DetectOptions, detect
    from sparkdl.evaluation.prediction import predict
    from sparkdl.evaluation.report import evaluate
    from sparkdl.geometry import Geometry
    from sparkdl.ingestion.config import IngestConfig
    from sparkdl.ingestion.job import ingest
    from sparkdl.ingestion.patch_stage import Labels
    from sparkdl.inspection import inspect_dataset
    from sparkdl.spark import get_spark
    from sparkdl.store.layout import Dataset
    from sparkdl.store.reader import read_rows
    from sparkdl.synth import synthesize_cohort
    from sparkdl.training.config import TrainConfig
    from sparkdl.training.job import train
    from sparkdl.training.runner import TrainingRunner
    from sparkdl.training.sharding import ShardPlan, plan_shards
    from sparkdl.training.tfdata import ReadOptions, make_dataset


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sparkdl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
