"""sparkdl: de-identified DICOM to deep learning on Apache Spark.

The public surface is small on purpose::

    from sparkdl import ingest, make_dataset, TrainingRunner

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
    "DeidKeyError",
    "IngestConfig",
    "InputError",
    "SparkdlError",
    "TrainingError",
    "TrainingRunner",
    "evaluate",
    "ingest",
    "make_dataset",
    "predict",
    "read_rows",
    "steps_per_epoch",
    "synthesize_cohort",
    "train",
]

_LAZY = {
    "IngestConfig": "sparkdl.ingestion",
    "ingest": "sparkdl.ingestion",
    "make_dataset": "sparkdl.dataset",
    "steps_per_epoch": "sparkdl.dataset",
    "TrainingRunner": "sparkdl.runner",
    "train": "sparkdl.training",
    "evaluate": "sparkdl.evaluation",
    "predict": "sparkdl.prediction",
    "read_rows": "sparkdl.reader",
    "synthesize_cohort": "sparkdl.synth",
}

if TYPE_CHECKING:
    from .dataset import make_dataset, steps_per_epoch
    from .evaluation import evaluate
    from .ingestion import IngestConfig, ingest
    from .prediction import predict
    from .reader import read_rows
    from .runner import TrainingRunner
    from .synth import synthesize_cohort
    from .training import train


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sparkdl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
