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
change (:mod:`sparkdl.training.capacity`).

Retries: if a worker fails, Spark re-runs the whole barrier stage, up to
``spark.stage.maxConsecutiveAttempts`` times (default 4), also in ``local`` mode. The stage is
followed by a one-partition shuffle so that it is a map stage: Spark never retries a barrier
*result* stage. The retry is what lets ``tf_keras.callbacks.BackupAndRestore`` resume.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sparkdl.errors import TrainingError
from sparkdl.training.capacity import (
    TASK_GPU_CONF,
    check_capacity,
    check_num_workers,
    is_local_master,
)
from sparkdl.training.probe import check_executors

if TYPE_CHECKING:
    from pyspark import BarrierTaskContext
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

T = TypeVar("T")

_FAILED_RANK = re.compile(r"sparkdl worker rank (\d+) failed: ([^\n]{0,500})")
_ENV_KEYS = ("TF_CONFIG", "CUDA_VISIBLE_DEVICES", "SPARKDL_WORKER_RANK", "SPARKDL_TASK_GPUS")


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
    ``quiet_gpu_probe`` its stderr passes through :func:`sparkdl.noise.is_noise`.
    """
    import os
    import subprocess
    import tempfile

    from pyspark import cloudpickle

    from sparkdl.noise import is_noise, quiet_tensorflow_info
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
        if quiet_gpu_probe:
            quiet_tensorflow_info(env)
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
    from sparkdl.noise import verbose

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
        check_num_workers(num_workers)
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
        master = cast(str, sc.master)  # never None: SparkContext needs spark.master to start
        driver_gpus = check_capacity(spark, self.num_workers, use_gpu=self.use_gpu)
        local_gpus = (
            split_gpus(driver_gpus, self.num_workers)
            if self.use_gpu and is_local_master(master)
            else None
        )
        logger.debug(
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
            logger.debug("Worker %d at %s, CUDA_VISIBLE_DEVICES=%r", rank, address, gpus)
        return [loads(payload) for *_, payload in rows]
