"""TrainingRunner: barrier rendezvous, TF_CONFIG, GPU assignment, and the early, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sparkdl.errors import TrainingError
from sparkdl.training.capacity import ALLOW_UNENCRYPTED_CONF, check_training_conf, local_slots
from sparkdl.training.runner import TrainingRunner, split_gpus
from tests.helpers import ROOT, SCRIPTS, linked_spark_home, run_child, worker_view_fn

FAKE_GPUS = ROOT / "tests" / "data" / "fake_gpus.sh"


# --- pure validation ------------------------------------------------------------------------


def test_local_slots() -> None:
    assert local_slots("local", 8) == 1
    assert local_slots("local[2]", 8) == 2
    assert local_slots("local[*]", 8) == 8
    assert local_slots("local[4,3]", 8) == 4
    assert local_slots("local[4]", 8, task_cpus=2) == 2


def test_more_workers_than_slots() -> None:
    with pytest.raises(TrainingError, match=r"needs 3 barrier slots .* has 2 .*spark.task.cpus"):
        check_training_conf(3, master="local[2]", conf={}, slots=2, use_gpu=False)
    check_training_conf(2, master="local[2]", conf={}, slots=2, use_gpu=False)


@pytest.mark.parametrize("amount", [None, "0", "x"])
def test_gpu_on_cluster_needs_task_gpu_amount(amount: str | None) -> None:
    conf = {} if amount is None else {"spark.task.resource.gpu.amount": amount}
    with pytest.raises(
        TrainingError,
        match=r"The Spark conf spark\.task\.resource\.gpu\.amount "
        r"has a value of .*spark\.executor\.resource\.gpu",
    ):
        check_training_conf(2, master="spark://h:7077", conf=conf, slots=4, use_gpu=True)
    # the same conf is fine on CPU, and a GPU amount (even fractional) passes
    check_training_conf(2, master="spark://h:7077", conf=conf, slots=4, use_gpu=False)
    check_training_conf(
        2, master="yarn", conf={"spark.task.resource.gpu.amount": "0.5"}, slots=4, use_gpu=True
    )


def test_gpu_in_local_mode_needs_driver_gpus() -> None:
    with pytest.raises(TrainingError, match=r"spark\.driver\.resource\.gpu\.amount"):
        check_training_conf(2, master="local[2]", conf={}, slots=2, use_gpu=True, driver_gpus=["0"])
    check_training_conf(
        2, master="local[2]", conf={}, slots=2, use_gpu=True, driver_gpus=["0", "1"]
    )
    assert split_gpus(["0", "1", "2", "3", "4"], 2) == ["0,1", "2,3"]


@pytest.mark.parametrize("key", ["spark.ssl.enabled", "spark.network.crypto.enabled"])
def test_tls_needs_opt_in(key: str) -> None:
    with pytest.raises(
        TrainingError,
        match=rf"{key} has a value of true.*not encrypted.*"
        rf"{ALLOW_UNENCRYPTED_CONF}=true",
    ):
        check_training_conf(2, master="local[2]", conf={key: "true"}, slots=2, use_gpu=False)
    check_training_conf(
        2,
        master="local[2]",
        conf={key: "true", ALLOW_UNENCRYPTED_CONF: "true"},
        slots=2,
        use_gpu=False,
    )


def test_num_workers_must_be_positive() -> None:
    with pytest.raises(TrainingError, match="Received: 0"):
        TrainingRunner(0)


# --- real local[2] session ------------------------------------------------------------------


def test_run_on_local_two_workers(spark: Any) -> None:
    views = TrainingRunner(2, spark=spark).run(worker_view_fn())
    assert [v["rank"] for v in views] == [0, 1]
    for rank, view in enumerate(views):
        assert view["CUDA_VISIBLE_DEVICES"] == ""  # no GPU requested: CPU
        assert view["TF_CONFIG"]["task"] == {"type": "worker", "index": rank}
    workers = views[0]["TF_CONFIG"]["cluster"]["worker"]
    assert views[1]["TF_CONFIG"]["cluster"]["worker"] == workers
    assert len(workers) == 2 and len(set(workers)) == 2  # same host, distinct ports

    # Python workers are reused: the next ordinary job must not see the training variables.
    def leftover(_: Any) -> Any:
        yield os.getpid(), os.environ.get("TF_CONFIG"), os.environ.get("CUDA_VISIBLE_DEVICES")

    after = spark.sparkContext.parallelize(range(2), 2).mapPartitions(leftover).collect()
    assert all(tf_config is None and cuda is None for _, tf_config, cuda in after)
    assert {pid for pid, *_ in after} & {v["pid"] for v in views}  # really the same workers


def test_args_and_result_order(spark: Any) -> None:
    def scaled(factor: int) -> tuple[int, int]:
        rank = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
        return rank, rank * factor

    assert TrainingRunner(2, spark=spark).run(scaled, 10) == [(0, 0), (1, 10)]


def test_worker_error_names_rank(spark: Any, tmp_path: Path) -> None:
    calls = str(tmp_path)

    def fail_on_rank_one() -> int:
        rank: int = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
        with open(os.path.join(calls, f"rank{rank}"), "a") as handle:
            handle.write("called\n")
        if rank == 1:
            raise ValueError("boom")
        return rank

    with pytest.raises(TrainingError, match=r"worker rank 1: ValueError: boom") as info:
        TrainingRunner(2, spark=spark).run(fail_on_rank_one)
    assert info.value.__cause__ is not None
    # Every attempt of the barrier stage ran both ranks: a rank that returned first was held
    # and re-run with the failed one, not left registered as done (which made the retry start
    # rank 1 alone, waiting for its peer forever).
    attempts = len((tmp_path / "rank1").read_text().splitlines())
    assert attempts == 4  # spark.stage.maxConsecutiveAttempts
    assert len((tmp_path / "rank0").read_text().splitlines()) >= 2


@pytest.mark.slow
def test_worker_process_ends_with_its_task(tmp_path: Path) -> None:
    """A training process whose Spark task was killed does not live on as an orphan."""
    from pyspark import cloudpickle

    def sleep_long() -> None:
        import time

        time.sleep(300)

    path_in = tmp_path / "in.pkl"
    path_in.write_bytes(cloudpickle.dumps((sleep_long, ())))
    # A stand-in for Spark's Python worker: starts the training process, prints its pid, waits.
    task = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time; "
            "env = dict(os.environ, SPARKDL_WORKER_PARENT_PID=str(os.getpid())); "
            "p = subprocess.Popen([sys.executable, '-m', 'sparkdl.training.process', sys.argv[1], "
            "sys.argv[2]], env=env); print(p.pid, flush=True); time.sleep(300)",
            str(path_in),
            str(tmp_path / "out.pkl"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert task.stdout is not None
    worker = int(task.stdout.readline())
    task.kill()  # as Spark kills the Python worker of a cancelled task
    task.wait()
    deadline = time.monotonic() + 30
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker), "the training process outlived its task"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped by init, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_too_many_workers_fails_before_any_job(spark: Any) -> None:
    sc = spark.sparkContext
    sc.setJobGroup("sparkdl-runner-too-many", "must stay empty")
    try:
        with pytest.raises(TrainingError, match=r"needs 3 barrier .* local\[2\] has 2"):
            TrainingRunner(3, spark=spark).run(worker_view_fn())
        with pytest.raises(TrainingError, match=r"spark\.driver\.resource\.gpu\.amount"):
            TrainingRunner(2, use_gpu=True, spark=spark).run(worker_view_fn())
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert sc.statusTracker().getJobIdsForGroup("sparkdl-runner-too-many") == []


@pytest.mark.slow
def test_multi_worker_mirrored_all_reduce(spark: Any) -> None:
    """The TF_CONFIG the runner builds really forms a TF cluster: a SUM all-reduce over 2 workers.

    TF starts only inside the Python workers (never forked from), not in this process.
    """

    def all_reduce() -> float:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        rank = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        value = strategy.run(lambda: tf.constant(float(rank + 1)))
        return float(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None))

    assert TrainingRunner(2, spark=spark).run(all_reduce) == [3.0, 3.0]


# --- local-cluster with fake GPUs (own JVM, in a subprocess) --------------------------------


@pytest.mark.slow
def test_local_cluster_with_fake_gpus(tmp_path: Path) -> None:
    views = run_child(
        SCRIPTS / "runner_local_cluster.py",
        str(FAKE_GPUS),
        cwd=tmp_path,
        env={
            "CUDA_VISIBLE_DEVICES": None,
            "SPARK_HOME": str(linked_spark_home(tmp_path)),
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_LOCAL_DIRS": str(tmp_path),
        },
        timeout=420,
    ).result

    assert [v["rank"] for v in views] == [0, 1]
    assert views[0]["pid"] != views[1]["pid"]  # two executors, one barrier task each
    for rank, view in enumerate(views):
        assert len(view["spark_gpus"]) == 1 and view["spark_gpus"][0] in {"0", "1"}
        assert view["CUDA_VISIBLE_DEVICES"] == view["spark_gpus"][0]
        assert view["TF_CONFIG"]["task"] == {"type": "worker", "index": rank}
        assert view["TF_CONFIG"]["cluster"] == views[0]["TF_CONFIG"]["cluster"]
    workers = views[0]["TF_CONFIG"]["cluster"]["worker"]
    assert len(workers) == 2 and len({w.rsplit(":", 1)[1] for w in workers}) == 2


@pytest.mark.slow
def test_executors_without_sparkdl_are_refused_at_once(bare_python: Path, tmp_path: Path) -> None:
    """No barrier stage (and no four stage attempts): one probe task says what to ship."""
    # No PYTHONPATH: the driver finds sparkdl through its install, the executors must not.
    # Not from the repository: `python -m pyspark.daemon` puts its working directory on
    # sys.path, where ./sparkdl would be found.
    outcome = run_child(
        SCRIPTS / "runner_without_sparkdl.py",
        cwd=tmp_path,
        env={"PYTHONPATH": None, "PYSPARK_PYTHON": str(bare_python)},
        timeout=300,
    ).result
    assert outcome["refused"], outcome
    assert "cannot import sparkdl" in outcome["message"] and "--py-files" in outcome["message"]
    assert outcome["seconds"] < 60
