"""Can this Spark session run the training asked for? Refused before anything starts.

Each rule names the Spark conf key to change: more workers than barrier slots (Spark would
otherwise re-check for up to ten minutes), ``use_gpu`` without GPU scheduling, and Spark
TLS/encryption switched on while TF's gRPC channel between workers is not encrypted (opt in
with ``spark.sparkdl.train.allowUnencrypted``). :func:`check_training_conf` is a pure
function of the conf, so every rule is tested without a cluster; :func:`check_capacity`
gathers what it needs from a session. ``sparkdl.train`` calls it first, before it reads
the data, so that the first error a user meets is the one that matters.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

from sparkdl.errors import TrainingError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Opt-in Spark conf: train although Spark's own traffic is encrypted (TF's is not).
ALLOW_UNENCRYPTED_CONF = "spark.sparkdl.train.allowUnencrypted"
TASK_GPU_CONF = "spark.task.resource.gpu.amount"
_ENCRYPTION_CONFS = ("spark.ssl.enabled", "spark.network.crypto.enabled")
_WAIT_CONF = "spark.scheduler.maxRegisteredResourcesWaitingTime"


def check_capacity(spark: SparkSession, num_workers: int, *, use_gpu: bool) -> list[str]:
    """Refuse a launch ``spark`` cannot run (:func:`check_training_conf`, barrier slots
    counted); the driver's GPU addresses."""
    sc = spark.sparkContext
    conf = dict(sc.getConf().getAll())
    opt_in = spark.conf.get(ALLOW_UNENCRYPTED_CONF, None)
    if opt_in is not None:
        conf[ALLOW_UNENCRYPTED_CONF] = opt_in
    master = cast(str, sc.master)  # never None: SparkContext needs spark.master to start
    resource = sc.resources.get("gpu")
    driver_gpus = list(resource.addresses) if resource is not None else []
    check = functools.partial(
        check_training_conf,
        num_workers,
        master=master,
        conf=conf,
        use_gpu=use_gpu,
        driver_gpus=driver_gpus,
    )
    check(slots=None)  # TLS and GPU problems first, before waiting for executors
    check(slots=count_slots(spark, num_workers))
    return driver_gpus


def is_local_master(master: str) -> bool:
    """True for ``local`` and ``local[...]`` (Spark's own rule; ``local-cluster`` is not local)."""
    return master == "local" or master.startswith("local[")


def local_slots(master: str, cpu_count: int, task_cpus: int = 1) -> int:
    """Concurrent tasks a ``local`` / ``local[N]`` / ``local[*]`` / ``local[N,F]`` master runs."""
    match = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master)
    if match is None:
        raise ValueError(f"Not a local master: {master!r}")
    cores = match.group(1)
    threads = 1 if cores is None else cpu_count if cores == "*" else int(cores)
    return threads // max(task_cpus, 1)


def check_num_workers(num_workers: int) -> None:
    if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 1:
        raise TrainingError(f"num_workers must be an integer >= 1. Received: {num_workers!r}.")


def _is_true(conf: Mapping[str, str], key: str) -> bool:
    return str(conf.get(key, "false")).strip().lower() == "true"


def check_training_conf(
    num_workers: int,
    *,
    master: str,
    conf: Mapping[str, str],
    slots: int | None,
    use_gpu: bool,
    driver_gpus: Sequence[str] = (),
) -> None:
    """Refuse a training launch that Spark would hang on or that would be silently wrong.

    A pure function of the master URL, the Spark conf, the free barrier ``slots`` (None: not
    counted yet, skip that rule) and the driver's GPU addresses, so every rule is testable
    without a cluster.

    Raises:
        TrainingError: naming what was received, the conf key and what to set.
    """
    check_num_workers(num_workers)
    encrypted = [key for key in _ENCRYPTION_CONFS if _is_true(conf, key)]
    if encrypted and not _is_true(conf, ALLOW_UNENCRYPTED_CONF):
        raise TrainingError(
            f"The Spark conf {encrypted[0]} has a value of true, but TensorFlow's gRPC "
            "collective channel between training workers is not encrypted by Spark: model "
            "weights and gradients derived from the training data would cross the network in "
            "clear text. Run the workers on a trusted network and opt in with "
            f"--conf {ALLOW_UNENCRYPTED_CONF}=true, or train on one host."
        )
    local = is_local_master(master)
    if use_gpu and local and len(driver_gpus) < num_workers:
        raise TrainingError(
            f"use_gpu=True on master {master} needs one driver GPU per worker: {num_workers} "
            f"workers, {len(driver_gpus)} GPU(s) found on the driver. Set "
            "spark.driver.resource.gpu.amount and spark.driver.resource.gpu.discoveryScript "
            "(e.g. scripts/get_gpus_resources.sh), lower num_workers, or drop --use-gpu to "
            "train on CPU."
        )
    if use_gpu and not local:
        amount = conf.get(TASK_GPU_CONF)
        try:
            valid = amount is not None and float(amount) > 0
        except ValueError:
            valid = False
        if not valid:
            raise TrainingError(
                f"The Spark conf {TASK_GPU_CONF} has a value of {amount!r}, so Spark gives the "
                f"training tasks no GPU on master {master}. With use_gpu=True set "
                f"--conf {TASK_GPU_CONF}=1 together with spark.executor.resource.gpu.amount=N "
                "(GPUs per executor) and spark.executor.resource.gpu.discoveryScript="
                "<path to scripts/get_gpus_resources.sh> (standalone clusters also need "
                "spark.worker.resource.gpu.amount and spark.worker.resource.gpu.discoveryScript)."
            )
    if slots is not None and slots < num_workers:
        task_cpus = conf.get("spark.task.cpus", "1")
        raise TrainingError(
            f"TrainingRunner needs {num_workers} barrier slots (one task per worker, all at "
            f"once) but master {master} has {slots} (spark.task.cpus={task_cpus}). Lower "
            "num_workers, or give Spark more task slots: more cores (local[N], "
            "spark.executor.cores, spark.executor.instances), a lower spark.task.cpus, or with "
            f"GPUs a higher spark.executor.resource.gpu.amount / lower {TASK_GPU_CONF}."
        )


def count_slots(spark: SparkSession, needed: int) -> int:
    """Barrier slots Spark can run at once, as its own barrier check counts them.

    On a cluster, executors register after the session starts; wait for them up to
    ``spark.scheduler.maxRegisteredResourcesWaitingTime`` (default 30s) before answering.
    """
    import os
    import time

    sc = spark.sparkContext
    master = cast(str, sc.master)  # never None: SparkContext needs spark.master to start
    if is_local_master(master):
        return local_slots(
            master, os.cpu_count() or 1, int(sc.getConf().get("spark.task.cpus", "1") or "1")
        )
    jsc = sc._jsc.sc()

    def count() -> int:
        try:
            profile = jsc.resourceProfileManager().defaultResourceProfile()
            return int(jsc.maxNumConcurrentTasks(profile))
        except Exception:  # noqa: BLE001 - private JVM API moved: use the public estimate
            return sc.defaultParallelism // int(sc.getConf().get("spark.task.cpus", "1") or "1")

    deadline = time.monotonic() + float(jsc.conf().getTimeAsSeconds(_WAIT_CONF, "30s"))
    slots = count()
    while slots < needed and time.monotonic() < deadline:
        time.sleep(1.0)
        slots = count()
    return slots
