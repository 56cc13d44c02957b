"""The model folder a training run leaves, ``M/``: its file names, and loading it back.

The chief writes ``M/model.keras`` (the trained model), ``M/config.json`` (the train config
and what the driver planned), ``M/history.json`` and ``M/progress.jsonl`` (one line per
epoch, followed by the driver as training runs). Evaluation, prediction and detection read
the model and its config through :func:`load_model` and :func:`load_training_config`, so
they see the window and task it was trained with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sparkdl.errors import InputError
from sparkdl.noise import import_tensorflow
from sparkdl.store.storage import join, local_path

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
#: The chief's per-epoch progress (one JSON object per line), followed by the driver.
PROGRESS_FILE = "progress.jsonl"
#: ``BackupAndRestore`` checkpoints: a retried barrier stage resumes from them.
BACKUP_DIR = "backup"


def load_training_config(model_dir: str) -> dict[str, Any]:
    """``M/config.json`` as written by the chief; InputError when the folder holds no model."""
    path = Path(local_path(join(model_dir, CONFIG_FILE)))
    if not path.is_file() or not Path(local_path(join(model_dir, MODEL_FILE))).is_file():
        raise InputError(
            f"No trained model in {model_dir}: expected {CONFIG_FILE} and {MODEL_FILE}. "
            "Run `sparkdl train --model-dir ...` first."
        )
    config: dict[str, Any] = json.loads(path.read_text())
    return config


def load_model(model_dir: str) -> Any:
    """The trained model (uncompiled: inference only)."""
    import_tensorflow()
    import tf_keras

    return tf_keras.models.load_model(local_path(join(model_dir, MODEL_FILE)), compile=False)
