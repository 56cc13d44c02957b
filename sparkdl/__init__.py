"""sparkdl: de-identified DICOM to deep learning on Apache Spark.

The public surface is small on purpose::

    from sparkdl import ingest, make_dataset, TrainingRunner

TensorFlow loads only inside the functions that train or predict, so ``import sparkdl``
stays light on executors and in notebooks. The functions named like their modules
(``ingest``, ``train``, ``evaluate``, ``predict``) are imported here, so that the name
``sparkdl.train`` is always the function, whichever submodule was imported first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .errors import ConfigError, DeidKeyError, InputError, SparkdlError, TrainingError  # noqa: E402
from .evaluate import evaluate
from .ingest import IngestConfig, ingest
from .predict import predict
from .train import train

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
    "steps_per_epoch",
    "synthesize_cohort",
    "train",
]

_LAZY = {
    "make_dataset": "sparkdl.dataset",
    "steps_per_epoch": "sparkdl.dataset",
    "TrainingRunner": "sparkdl.runner",
    "synthesize_cohort": "sparkdl.synth",
}

if TYPE_CHECKING:
    from .dataset import make_dataset, steps_per_epoch
    from .runner import TrainingRunner
    from .synth import synthesize_cohort


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sparkdl' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
