"""Distributed training on Spark barrier execution: one barrier task per TF worker.

``TrainingRunner(num_workers, use_gpu=...).run(fn, *args)`` launches one Spark barrier stage
with ``num_workers`` tasks. Every task:

1. rendezvouses with the others through ``BarrierTaskContext.allGather`` to agree on one
   ``host:port`` per worker (see :func:`_rendezvous` for why the ports cannot collide);
2. sets ``TF_CONFIG`` (the cluster in rank order, ``task.index`` = its rank) and
   ``CUDA_VISIBLE_DEVICES`` (the GPUs Spark gave the task, or in ``local`` mode its share of
   the driver's GPUs, or ``""`` for CPU);
3. calls ``fn(*args)`` in a fresh Python process that inherits that environment (TF state
   cannot leak into the next job of a reused Spark Python worker), then puts the variables
   back as they were.

The driver returns each worker's result in rank order.

Misconfigurations are refused before any stage starts, each naming the Spark conf key to
change: more workers than barrier slots (Spark would otherwise re-check for up to ten minutes),
``use_gpu`` without GPU scheduling, and Spark TLS/encryption switched on while TF's gRPC
channel between workers is not encrypted (opt in with ``spark.sparkdl.train.allowUnencrypted``).

Retries: if a worker fails, Spark re-runs the whole barrier stage, up to
``spark.stage.maxConsecutiveAttempts`` times (default 4), also in ``local`` mode. The stage is
followed by a one-partition shuffle so that it is a map stage: Spark never retries a barrier
*result* stage. The retry is what lets ``tf_keras.callbacks.BackupAndRestore`` resume.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sparkdl.errors import TrainingError
from sparkdl.training.probe import check_executors

if TYPE_CHECKING:
    from pyspark import BarrierTaskContext
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Opt-in Spark conf: train although Spark's own traffic is encrypted (TF's is not).
ALLOW_UNENCRYPTED_CONF = "spark.sparkdl.train.allowUnencrypted"
TASK_GPU_CONF = "spark.task.resource.gpu.amount"
_ENCRYPTION_CONFS = ("spark.ssl.enabled", "spark.network.crypto.enabled")
_WAIT_CONF = "spark.scheduler.maxRegisteredResourcesWaitingTime"
_FAILED_RANK = re.compile(r"sparkdl worker rank (\d+) failed: ([^\n]{0,500})")
_ENV_KEYS = ("TF_CONFIG", "CUDA_VISIBLE_DEVICES", "SPARKDL_WORKER_RANK", "SPARKDL_TASK_GPUS")


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


def _check_num_workers(num_workers: int) -> None:
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
    _check_num_workers(num_workers)
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


def split_gpus(addresses: Sequence[str], num_workers: int) -> list[str]:
    """Split the driver's GPUs into ``num_workers`` contiguous ``CUDA_VISIBLE_DEVICES`` values."""
    per_worker = len(addresses) // num_workers
    return [
        ",".join(addresses[rank * per_worker : (rank + 1) * per_worker])
        for rank in range(num_workers)
    ]


def _rendezvous(context: BarrierTaskContext) -> list[str]:
    """Agree on one ``host:port`` per worker, in rank order, without port collisions.

    Each task binds its own socket to port 0 (the kernel picks a free port) and keeps it open
    until ``allGather`` returns. ``allGather`` is a barrier: no task passes it until every task
    has bound. So any two sockets on one host were open at the same moment, and the kernel never
    gives two open sockets the same port: the ports are distinct even when several workers
    share a host. The classic race (task A closes its probe socket, task B's probe then gets the
    same port) cannot happen. Each task closes its socket right before TF binds the port; only a
    process outside this job can take the port in that gap. The socket is not SO_REUSEPORT-held
    through TF start because TF's gRPC server disables SO_REUSEPORT and would fail to bind.
    The host is the executor address Spark itself uses to reach the task.
    """
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("", 0))
        ports = context.allGather(str(sock.getsockname()[1]))
    finally:
        sock.close()
    hosts = [info.address.rsplit(":", 1)[0] for info in context.getTaskInfos()]
    return [
        f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in zip(hosts, ports)
    ]


def _task_gpus(context: BarrierTaskContext, pre_existing: str | None) -> str:
    """The task's Spark-assigned GPU addresses as a ``CUDA_VISIBLE_DEVICES`` value.

    If the executor already runs under a ``CUDA_VISIBLE_DEVICES`` (some cluster managers set
    one), Spark's addresses are indices into that list, as in pyspark's TorchDistributor.
    """
    resource = context.resources().get("gpu")
    if resource is None or not resource.addresses:
        raise RuntimeError(
            "use_gpu=True but Spark assigned this task no GPU: "
            f"BarrierTaskContext.resources() = {sorted(context.resources())}. "
            f"Check {TASK_GPU_CONF} and spark.executor.resource.gpu.*."
        )
    addresses = list(resource.addresses)
    if pre_existing and all(a.isdigit() for a in addresses):
        visible = pre_existing.split(",")
        if all(int(a) < len(visible) for a in addresses):
            addresses = [visible[int(a)] for a in addresses]
    return ",".join(addresses)


def _run_isolated(
    fn: Callable[..., Any], args: tuple[Any, ...], rank: int, quiet_gpu_probe: bool = False
) -> bytes:
    """Run ``fn(*args)`` in a fresh Python (see :mod:`sparkdl.training.process`); return it pickled.

    Spark reuses Python workers, and a process where TF built a multi-worker strategy cannot
    build another: each run gets its own interpreter, which inherits the task's environment
    and ``sys.path`` (so code shipped with ``--py-files`` is found). With
    ``quiet_gpu_probe`` its stderr passes through :func:`sparkdl.tf_noise.is_noise`.
    """
    import os
    import subprocess
    import tempfile

    from pyspark import cloudpickle

    from sparkdl.tf_noise import is_noise
    from sparkdl.training.process import PARENT_PID_ENV

    with tempfile.TemporaryDirectory(prefix="sparkdl-worker-") as tmp:
        path_in, path_out = os.path.join(tmp, "in.pkl"), os.path.join(tmp, "out.pkl")
        with open(path_in, "wb") as handle:
            cloudpickle.dump((fn, args), handle)
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
            **{PARENT_PID_ENV: str(os.getpid())},
        )
        command = [sys.executable, "-m", "sparkdl.training.process", path_in, path_out]
        if quiet_gpu_probe:
            with subprocess.Popen(
                command, env=env, stderr=subprocess.PIPE, text=True, errors="replace"
            ) as proc:
                assert proc.stderr is not None
                for line in proc.stderr:
                    if not is_noise(line):
                        sys.stderr.write(line)
                        sys.stderr.flush()
            code = proc.returncode
        else:
            code = subprocess.call(command, env=env)
        if not os.path.exists(path_out):
            raise RuntimeError(
                f"sparkdl worker rank {rank} failed: the worker process exited "
                f"with code {code} before returning a result"
            )
        with open(path_out, "rb") as handle:
            outcome = cloudpickle.load(handle)
    if outcome[0] != "ok":
        _, name, message, trace = outcome
        raise RuntimeError(f"sparkdl worker rank {rank} failed: {name}: {message}\n{trace}")
    result: bytes = cloudpickle.dumps(outcome[1])
    return result


def _make_task(
    fn: Callable[..., Any], args: tuple[Any, ...], use_gpu: bool, local_gpus: list[str] | None
) -> Callable[[Any], Any]:
    """Build the barrier task closure from plain values only (no session, no ``self``)."""
    from sparkdl.spark import verbose

    quiet = not verbose()

    def task(_: Any) -> Any:
        import json
        import os

        from pyspark import BarrierTaskContext

        context = BarrierTaskContext.get()
        rank = context.partitionId()
        saved = {key: os.environ.get(key) for key in _ENV_KEYS}
        try:
            workers = _rendezvous(context)
            if not use_gpu:
                gpus = ""
            elif local_gpus is not None:
                gpus = local_gpus[rank]
            else:
                gpus = _task_gpus(context, saved["CUDA_VISIBLE_DEVICES"])
            os.environ["CUDA_VISIBLE_DEVICES"] = gpus
            os.environ["TF_CONFIG"] = json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}}
            )
            os.environ["SPARKDL_WORKER_RANK"] = str(rank)
            # What Spark scheduled for this task, as Spark names it (for logs and checks).
            assigned = context.resources().get("gpu")
            os.environ["SPARKDL_TASK_GPUS"] = ",".join(assigned.addresses) if assigned else ""
            payload = _run_isolated(fn, args, rank, quiet_gpu_probe=quiet and not gpus)
            # No rank finishes before all have: a rank that returned while another was still
            # failing had its output registered after Spark dropped the failed attempt's, so
            # the retried barrier stage ran only the failed rank, whose rendezvous then waited
            # for peers that never came (a hang, seen on local[2]). Held here, a finished rank
            # is cancelled with the others and the retry runs every rank again.
            context.barrier()
            yield rank, workers[rank], gpus, payload
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    return task


class TrainingRunner:
    """Run a training function on ``num_workers`` Spark barrier tasks, one TF worker each.

    Args:
        num_workers: TF workers, one Spark barrier task (and slot) each.
        use_gpu: give each worker the GPUs Spark scheduled for its task (``local`` mode: an
            equal share of the driver's GPUs). False: ``CUDA_VISIBLE_DEVICES=""``, CPU only.
        spark: the session to use; default the active one (spark-submit, notebook) or a new
            ``local[*]`` one.
    """

    def __init__(
        self, num_workers: int, *, use_gpu: bool = False, spark: SparkSession | None = None
    ) -> None:
        _check_num_workers(num_workers)
        self.num_workers = num_workers
        self.use_gpu = use_gpu
        self._spark = spark

    def run(self, fn: Callable[..., T], *args: Any) -> list[T]:
        """Call ``fn(*args)`` once on every worker; return the results in rank order.

        Raises:
            TrainingError: before launching, for a misconfiguration; after, if a worker's
                ``fn`` raised (the message names its rank; the Spark error is chained).
        """
        from pyspark.cloudpickle import loads

        from sparkdl.spark import get_spark

        spark = self._spark or get_spark()
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
            self.num_workers,
            master=master,
            conf=conf,
            use_gpu=self.use_gpu,
            driver_gpus=driver_gpus,
        )
        check(slots=None)  # TLS and GPU problems first, before waiting for executors
        check(slots=_count_slots(spark, self.num_workers))
        local_gpus = (
            split_gpus(driver_gpus, self.num_workers)
            if self.use_gpu and is_local_master(master)
            else None
        )
        logger.info(
            "Training on %d Spark barrier tasks (master %s, %s)",
            self.num_workers,
            master,
            "GPU" if self.use_gpu else "CPU",
        )
        check_executors(sc, self.num_workers)
        task = _make_task(fn, args, self.use_gpu, local_gpus)
        rdd = sc.parallelize(range(self.num_workers), self.num_workers)
        try:
            # The shuffle after the barrier stage makes it a map stage, which Spark re-runs
            # whole when a task fails (up to spark.stage.maxConsecutiveAttempts); a failed
            # barrier *result* stage is never retried. The retry is what BackupAndRestore
            # resumes from.
            rows = rdd.barrier().mapPartitions(task).repartition(1).collect()
        except Exception as exc:
            found = _FAILED_RANK.search(str(exc))
            what = (
                f"worker rank {found.group(1)}: {found.group(2)}"
                if found
                else f"the barrier stage: {type(exc).__name__}"
            )
            raise TrainingError(
                f"Distributed training failed in {what}. Spark re-ran the barrier stage up to "
                "spark.stage.maxConsecutiveAttempts times (default 4); the chained Spark error "
                "holds the worker's traceback."
            ) from exc
        rows.sort(key=lambda row: row[0])
        for rank, address, gpus, _ in rows:
            logger.info("Worker %d at %s, CUDA_VISIBLE_DEVICES=%r", rank, address, gpus)
        return [loads(payload) for *_, payload in rows]


def _count_slots(spark: SparkSession, needed: int) -> int:
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
