"""Training, evaluation and batch prediction on a tiny learnable cohort.

Two workers on ``local[2]`` train one model; both must end with identical weights, the test
AUC must be clearly above chance, and ``evaluate``/``predict`` must reload the model. The
fault case (a subprocess with its own ``local[2,4]`` session) kills a worker mid-training
and checks that the retried barrier stage resumes from ``BackupAndRestore``.

The cohort: positives (label 1) hold a bright sphere (a solid nodule, ~40 HU) near the
centre; negatives hold a bright tube through the patch (a vessel) or only lung noise. Every
patient's rows share a split (``patient % 10``: 0..6 train, 7 val, 8 and 9 test). It is
written with Spark and ``write_metadata`` in three Parquet files of one row group each,
the patients dealt round-robin over the files, so each of two shards gets rows of every split.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sparkdl.store.storage import to_url
from sparkdl.training.config import TrainConfig
from sparkdl.training.job import zoo_model_fn
from tests.helpers import ROOT, SCRIPTS, run_child

ROWS_PER_PATIENT = 8


def make_patch(row_id: int, size: int) -> tuple[np.ndarray, int]:
    """HU patch and label of row ``row_id``."""
    rng = np.random.default_rng(1000 + row_id)
    label = int(row_id % 3 == 0)
    patch = rng.normal(-850.0, 70.0, (size, size, size))
    grid = np.mgrid[:size, :size, :size].astype(float)
    if label:
        centre = (size - 1) / 2 + rng.uniform(-1.5, 1.5, 3)
        radius = rng.uniform(2.0, 3.5) * size / 16
        inside = ((grid - centre[:, None, None, None]) ** 2).sum(0) < radius**2
        patch[inside] = rng.normal(40.0, 30.0, inside.sum())
    elif row_id % 3 == 1:
        axis = rng.integers(3)
        others = [a for a in range(3) if a != axis]
        offset = (size - 1) / 2 + rng.uniform(-3, 3, 2) * size / 16
        radius = rng.uniform(0.8, 1.4) * size / 16
        dist2 = sum((grid[a] - o) ** 2 for a, o in zip(others, offset))
        inside = dist2 < radius**2
        patch[inside] = rng.normal(40.0, 30.0, inside.sum())
    return patch.astype(np.int16), label


def _rows(patients: list[int], size: int) -> Any:
    for patient in patients:
        split = ("train",) * 7 + ("val", "test", "test")
        for k in range(ROWS_PER_PATIENT):
            row_id = patient * ROWS_PER_PATIENT + k
            patch, label = make_patch(row_id, size)
            yield {
                "patch_id": f"p{row_id:05d}",
                "series_uid": f"2.25.{patient}",
                "patient_id": f"pat{patient:03d}",
                "patch": patch,
                "label": np.int32(label),
                "malignancy": np.int32((row_id // 3) % 2 if label and row_id % 2 else -1),
                "diameter_mm": np.float32(5.0 if label else 0.0),
                "center": np.array([row_id, -row_id, 0.5 * row_id], dtype=np.float64),
                "source": "annotation" if label else "candidate",
                "sources": "annotations" if label else "candidates",
                "split": split[patient % 10],
            }


def write_cohort(
    spark: Any, url: str, *, num_patients: int = 30, size: int = 16, num_files: int = 3
) -> int:
    """Write ``num_patients × ROWS_PER_PATIENT`` patches to ``url``, one row group per file
    (parquet-mr first checks the row-group size after 100 rows); return the row count."""
    from pyspark import cloudpickle

    from sparkdl.store.metadata import write_metadata
    from sparkdl.store.tables import patch_schema

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    schema = patch_schema(size)
    groups = [list(range(num_patients))[i::num_files] for i in range(num_files)]
    rdd = (
        spark.sparkContext.parallelize(groups, num_files)
        .flatMap(lambda patients: _rows(patients, size))
        .map(schema.encode_row)
    )
    (
        spark.createDataFrame(rdd, schema.as_spark_schema())
        .write.mode("overwrite")
        .option("compression", "zstd")
        .parquet(url)
    )
    write_metadata(url, schema)
    return num_patients * ROWS_PER_PATIENT


#: Small and quick: 16³ patches, two stages of 8/16 filters, no augmentation.
TEST_CONFIG = {
    "base_filters": 8,
    "num_stages": 2,
    "dropout": 0.1,
    "epochs": 6,
    "batch_size": 16,
    "learning_rate": 0.003,
    "augment": False,
    "seed": 1,
}


@pytest.fixture(scope="module")
def cohort(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("ingested")
    write_cohort(spark, to_url(str(data_dir / "patches")))
    return data_dir


@pytest.fixture(scope="module")
def trained(spark: Any, cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from sparkdl.training.job import train

    model_dir = tmp_path_factory.mktemp("model")
    result = train(
        str(cohort), str(model_dir), config=TrainConfig(**TEST_CONFIG), num_workers=2, spark=spark
    )
    return {"result": result, "model_dir": model_dir, "data_dir": cohort}


# -- the plan of a job ---------------------------------------------------------------------


def test_plan_job_falls_back_to_one_shard(spark: Any, cohort: Path, tmp_path: Path) -> None:
    from sparkdl.training.job import plan_job

    config = TrainConfig(**TEST_CONFIG)
    train_rows = 21 * ROWS_PER_PATIENT  # patients with patient % 10 in 0..6
    model_fn = zoo_model_fn(config)

    def plan(config: TrainConfig, num_workers: int) -> tuple[int, int]:
        job = plan_job(
            str(cohort),
            str(tmp_path),
            config,
            model_fn=model_fn,
            num_workers=num_workers,
            use_gpu=False,
            spark=spark,
        )
        return job.num_shards, job.steps_per_epoch

    assert plan(config, 2) == (2, 8)  # 56 // 8 = 7 steps, raised to 8
    one_pass = replace(config, min_steps_per_epoch=0)
    assert plan(one_pass, 2) == (2, 56 // 8)  # shards of 112 and 56 rows
    # Three row groups cannot feed four shards: every worker reads the whole split.
    assert plan(config, 4) == (1, train_rows // 16)


# -- distributed training, evaluation, prediction ------------------------------------------


@pytest.mark.slow
def test_two_workers_train_one_model(trained: dict[str, Any]) -> None:
    result, model_dir = trained["result"], trained["model_dir"]
    workers = result["workers"]
    assert [w["rank"] for w in workers] == [0, 1]
    assert workers[0]["weights_sha256"] == workers[1]["weights_sha256"]
    assert workers[0]["final_loss"] == pytest.approx(workers[1]["final_loss"])
    assert workers[0]["epochs_run"] == list(range(TEST_CONFIG["epochs"]))
    # The chief alone wrote the model, history, config and TensorBoard logs; backups removed.
    assert (model_dir / "model.keras").is_file()
    history = json.loads((model_dir / "history.json").read_text())
    assert history["epoch"] == list(range(TEST_CONFIG["epochs"]))
    assert {"loss", "auc", "precision", "recall", "val_auc"} <= set(history["metrics"])
    assert history["metrics"]["loss"][-1] < history["metrics"]["loss"][0]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["num_workers"] == 2 and config["config"]["base_filters"] == 8
    assert config["class_weight"]["1"] > config["class_weight"]["0"]  # positives are rarer
    assert any((model_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert not any((model_dir / "backup").rglob("*")) if (model_dir / "backup").exists() else True


def _tiny_user_model(input_shape: tuple[int, int, int, int]) -> Any:
    """A model of the user's own, defined here and shipped to the workers by value."""
    import tf_keras as keras

    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv3D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalMaxPooling3D()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x), name="user_net")


@pytest.mark.slow
def test_train_runs_a_model_fn_of_the_users_own(spark: Any, cohort: Path, tmp_path: Path) -> None:
    from pyspark import cloudpickle

    from sparkdl import train
    from sparkdl.evaluation.report import load_model

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    model_dir = tmp_path / "user-model"
    config = TrainConfig(**{**TEST_CONFIG, "epochs": 2})
    result = train(
        str(cohort),
        str(model_dir),
        config=config,
        model_fn=_tiny_user_model,
        num_workers=2,
        spark=spark,
    )
    assert result["workers"][0]["weights_sha256"] == result["workers"][1]["weights_sha256"]
    assert result["epochs_run"] == [0, 1]
    assert load_model(str(model_dir)).name == "user_net"  # the user's, compiled by sparkdl


@pytest.mark.slow
def test_evaluate_reports_auc_above_chance(trained: dict[str, Any], tmp_path: Path) -> None:
    from sparkdl.evaluation.report import evaluate

    report = tmp_path / "report"
    metrics = evaluate(str(trained["data_dir"]), str(trained["model_dir"]), str(report))
    assert metrics["n"] == 6 * ROWS_PER_PATIENT  # patients 8, 9, 18, 19, 28, 29
    assert metrics["auc"] > 0.85, metrics
    low, high = metrics["auc_ci95"]
    assert low <= metrics["auc"] <= high <= 1.0
    cm = metrics["confusion_matrix"]
    assert cm["tp"] + cm["fn"] == metrics["positives"] and sum(cm.values()) == metrics["n"]
    assert json.loads((report / "metrics.json").read_text())["auc"] == metrics["auc"]
    assert (report / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (report / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "AUC" in (report / "summary.txt").read_text()


@pytest.mark.slow
def test_predict_scores_every_patch(spark: Any, trained: dict[str, Any], tmp_path: Path) -> None:
    from sklearn.metrics import roc_auc_score

    from sparkdl.evaluation.prediction import predict
    from sparkdl.evaluation.report import evaluate

    output = str(tmp_path / "predictions")
    summary = predict(str(trained["data_dir"]), str(trained["model_dir"]), output, spark=spark)
    frame = spark.read.parquet(output).toPandas()
    assert summary["rows"] == len(frame) == 30 * ROWS_PER_PATIENT
    assert frame["patch_id"].is_unique
    assert {"patch_id", "series_uid", "patient_id", "center", "probability"} <= set(frame.columns)
    row = frame.set_index("patch_id").loc["p00042"]
    assert list(row["center"]) == [42.0, -42.0, 21.0] and row["patient_id"] == "pat005"
    assert frame["probability"].between(0, 1).all()
    test = frame[frame["split"] == "test"]
    auc = roc_auc_score(test["label"], test["probability"])
    assert auc > 0.85
    # Spark batch inference and evaluate's reader window the patches the same way.
    evaluated = evaluate(str(trained["data_dir"]), str(trained["model_dir"]), str(tmp_path / "r"))
    assert auc == pytest.approx(evaluated["auc"], abs=1e-9)


# -- fault tolerance ----------------------------------------------------------------------


@pytest.mark.slow
def test_killed_worker_resumes_from_backup(cohort: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    config = {**TEST_CONFIG, "epochs": 5}
    results = run_child(
        SCRIPTS / "train_fault.py",
        str(cohort),
        str(model_dir),
        json.dumps(config),
        cwd=ROOT,
        timeout=300,
    ).result
    assert (model_dir / "killed").exists()  # the first attempt did lose a worker
    assert results[0]["weights_sha256"] == results[1]["weights_sha256"]
    # The retried stage started at epoch 2 (after the backup of epoch 1), not at 0.
    assert [r["epochs_run"] for r in results] == [[2, 3, 4]] * 2
    history = json.loads((model_dir / "history.json").read_text())
    assert history["initial_epoch"] == 2 and history["epoch"] == [2, 3, 4]
    started = [int(e) for e in (model_dir / "epochs-rank1.log").read_text().split()]
    assert started == [0, 1, 2, 2, 3, 4]  # one epoch re-run, not three
    assert (model_dir / "model.keras").is_file()


# -- errors that come first ------------------------------------------------------------------


def test_too_many_workers_is_the_first_error(spark: Any, cohort: Path, tmp_path: Path) -> None:
    """64 workers on local[2]: the missing barrier slots are named, not the batch size that 64
    workers cannot split (which the plan would check next)."""
    from sparkdl.errors import TrainingError
    from sparkdl.training.job import train

    with pytest.raises(TrainingError, match="needs 64 barrier slots") as raised:
        train(str(cohort), str(tmp_path / "m"), num_workers=64, spark=spark)
    assert "batch_size" not in str(raised.value)


def test_training_on_a_dataset_without_patches_says_how_to_get_them(
    spark: Any, tmp_path: Path
) -> None:
    from sparkdl.errors import InputError
    from sparkdl.training.job import train

    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match=r"has no patches/: its ingest cut no patch") as raised:
        train(str(tmp_path / "out"), str(tmp_path / "m"), spark=spark)
    assert "--annotations" in str(raised.value) and "candidate generation" in str(raised.value)
