"""Spark batch inference: every patch of ``OUT/patches`` scored, written as Parquet.

The patches are read with Spark's own Parquet reader (a Petastorm dataset is plain Parquet;
``patch`` and ``center`` are ``NdarrayCodec`` cells, decoded a whole Arrow batch at a time
by :func:`sparkdl.store.patch_batches.decode_ndarray_cells`). ``mapInPandas`` scores batches on
the executors; the model is loaded once per executor Python worker (a module-level cache
keyed by model folder: Spark reuses Python workers across tasks) and TensorFlow is imported
only there, never in the driver.

Output columns: ``patch_id``, ``series_uid``, ``patient_id`` (pseudonymous, as in the
input), ``split``, ``source``, ``center`` (world LPS x, y, z mm), ``label`` and
``probability`` (float, the model's sigmoid output).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from sparkdl.errors import InputError
from sparkdl.store.layout import Dataset
from sparkdl.store.storage import join
from sparkdl.store.tables import PATCHES, PREDICTION_SCHEMA

logger = logging.getLogger(__name__)

#: Rows per Arrow batch handed to the model (bounds executor memory: 32³ float32 = 128 KiB/row).
BATCH_ROWS = 256

#: Per Python worker: model folder → loaded model.
_MODELS: dict[str, Any] = {}


def _cached_model(model_dir: str) -> Any:
    if model_dir not in _MODELS:
        from sparkdl.training.artifact import load_model

        _MODELS[model_dir] = load_model(model_dir)
    return _MODELS[model_dir]


def score_batches(
    frames: Iterator[Any], model_dir: str, window: tuple[float, float], patch_shape: tuple[int, ...]
) -> Iterator[Any]:
    """``mapInPandas`` body: pandas frames of patch rows in, frames of ``PREDICTION_SCHEMA`` out."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from sparkdl.store.patch_batches import HuWindow, decode_ndarray_cells

    model = _cached_model(model_dir)
    window_row = HuWindow(float(window[0]), float(window[1]), patch_shape, np.dtype(np.int16))
    for frame in frames:
        if frame.empty:
            continue
        hu = decode_ndarray_cells(
            pa.array(frame["patch"], type=pa.binary()), patch_shape, np.dtype(np.int16)
        )
        centers = decode_ndarray_cells(
            pa.array(frame["center"], type=pa.binary()), (3,), np.dtype(np.float64)
        )
        x = np.empty((len(hu), *patch_shape, 1), dtype=np.float32)
        for row, out in zip(hu, x[..., 0]):
            window_row(row, out)  # the training reader's windowing, value for value
        probability = model(x, training=False).numpy().reshape(-1).astype(np.float32)
        yield pd.DataFrame(
            {
                "patch_id": frame["patch_id"].values,
                "series_uid": frame["series_uid"].values,
                "patient_id": frame["patient_id"].values,
                "split": frame["split"].values,
                "source": frame["source"].values,
                "center": list(centers),
                "label": frame["label"].astype("int32").values,
                "probability": probability,
            }
        )


def predict(
    data: Dataset | str, model_dir: str, output: str, *, spark: Any = None
) -> dict[str, Any]:
    """Score every patch of ``data`` with the model in ``model_dir``; write Parquet to
    ``output`` (overwritten). Returns ``{"output", "rows", "model_path"}``.

    ``model_dir`` must be readable from the executors (a local path in local mode, a shared
    file system on a cluster).
    """
    from sparkdl.spark import ARROW_BATCH_CONF, get_spark, session_conf
    from sparkdl.store.storage import local_path
    from sparkdl.training.artifact import MODEL_FILE

    spark = spark or get_spark()
    scored = scored_patches(spark, data, model_dir)
    with session_conf(spark, ARROW_BATCH_CONF, str(BATCH_ROWS)):
        scored.write.mode("overwrite").parquet(output)
    rows = spark.read.parquet(output).count()
    logger.debug("predict: %d patches scored into %s", rows, output)
    model_path = local_path(join(model_dir, MODEL_FILE))
    return {"output": output, "rows": int(rows), "model_path": model_path}


def score_rows(
    spark: Any, data: Dataset | str, model_dir: str, where: Any = None
) -> list[dict[str, Any]]:
    """The scored patches (``where``: a Spark column condition on the patch rows) collected
    on the driver as dicts of :data:`PREDICTION_SCHEMA`: for lists of candidates, whose
    scores are small next to their patches."""
    from sparkdl.spark import ARROW_BATCH_CONF, session_conf

    scored = scored_patches(spark, data, model_dir, where)
    with session_conf(spark, ARROW_BATCH_CONF, str(BATCH_ROWS)):
        return [row.asDict() for row in scored.collect()]


def scored_patches(spark: Any, data: Dataset | str, model_dir: str, where: Any = None) -> Any:
    """The patches of ``data`` (those ``where`` selects) scored by the model of
    ``model_dir``, as a lazy DataFrame of :data:`PREDICTION_SCHEMA`. Run its action with
    ``spark.sql.execution.arrow.maxRecordsPerBatch`` at :data:`BATCH_ROWS`."""
    from sparkdl.store.tables import patch_shape
    from sparkdl.training.artifact import load_training_config

    trained = load_training_config(model_dir)
    values = trained["config"]["window"]  # TrainConfig.window: (center, width)
    window = (float(values[0]), float(values[1]))
    url = Dataset.of(data).url(PATCHES)
    shape, _ = patch_shape(url)
    if [*shape, 1] != list(trained["input_shape"]):
        raise InputError(
            f"The model in {model_dir} takes patches of {trained['input_shape'][:3]}; "
            f"{url} holds {list(shape)}. Use the data the model was trained on "
            "(or ingest with the same patches.size)."
        )
    frame = spark.read.parquet(url)
    if where is not None:
        frame = frame.where(where)
    frame = frame.select(*_INPUT_COLUMNS)

    def score(frames: Iterator[Any]) -> Iterator[Any]:
        return score_batches(frames, model_dir, window, shape)

    return frame.mapInPandas(score, PREDICTION_SCHEMA)


_INPUT_COLUMNS = [
    "patch_id",
    "series_uid",
    "patient_id",
    "split",
    "source",
    "center",
    "label",
    "patch",
]
