"""Console lines of TensorFlow and the JVM that are not problems, kept off the console.

Importing TensorFlow on a machine or a Spark task without a GPU prints, from C++ and before
Python's logging exists, ERROR-level lines that are not errors (``failed call to cuInit``,
``cuda_platform.cc``) and INFO lines (oneDNN, CPU instructions); a multi-worker epoch adds
routine lines of its own (see :data:`NOISE`). ``TF_CPP_MIN_LOG_LEVEL``
high enough to hide them hides real errors too, so instead the known lines are filtered:
from a training worker's stderr by its Spark task (:mod:`sparkdl.training.runner`), and from this
process's own stderr while TensorFlow is imported (:func:`import_tensorflow`). Every other
line passes; ``sparkdl --verbose`` turns the filter off.

The Spark driver JVM likewise prints ``WARNING: Using incubator modules:
jdk.incubator.vector`` as it starts (Spark 4 runs with that module on), on every command:
:func:`jvm_stderr_filtered` wraps the launch of a JVM, which keeps the filtered pipe as its
stderr for its whole life (its log4j output passes through, line by line).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, MutableMapping
from typing import Any

__all__ = [
    "JVM_NOISE",
    "NOISE",
    "VERBOSE_ENV_VAR",
    "import_tensorflow",
    "is_noise",
    "jvm_stderr_filtered",
    "quiet_tensorflow_info",
    "verbose",
]

NOISE = (
    "failed call to cuInit",
    "cuda_platform",
    "cuda_executor",
    "cuda_dnn",
    "cuda_fft",
    "cuda_blas",
    "cudart_stub",
    "Could not find cuda drivers",
    "Unable to register cu",
    "TF-TRT Warning",
    "All log messages before absl::InitializeLog()",
    "computation_placer",
    "oneDNN custom operations are on",
    "rebuild TensorFlow with the appropriate compiler flags",
    "This TensorFlow binary is optimized to use available CPU instructions",
    # Routine lines of every multi-worker epoch, not problems: the collective barrier passed,
    # the end-of-epoch cancellation of the distributed iterator (a warning and its node line),
    # the input pipeline's allocator tuning and a note that a generator is not graph-optimized.
    "has passed with status: OK",
    "Local rendezvous is aborting with status: CANCELLED: GetNextFromShard was cancelled",
    "[[{{node MultiDeviceIteratorGetNextFromShard}}]]",
    "Memory patch applied: M_TRIM_THRESHOLD",
    "does not implement the AsGraphDefInternal() method",
)


#: Set (by ``sparkdl --verbose``) to see everything: no filter, Spark's INFO, TF's probing.
VERBOSE_ENV_VAR = "SPARKDL_VERBOSE"

#: What the Spark driver JVM prints as it starts that is not a problem.
JVM_NOISE = ("WARNING: Using incubator modules: jdk.incubator.vector",)


def verbose() -> bool:
    """Whether the user asked for everything (``sparkdl --verbose`` sets ``SPARKDL_VERBOSE``)."""
    return os.environ.get(VERBOSE_ENV_VAR, "").strip() not in ("", "0", "false", "no")


def quiet_tensorflow_info(env: MutableMapping[str, str]) -> None:
    """TensorFlow's C++ INFO lines off in ``env`` (``TF_CPP_MIN_LOG_LEVEL=1``), unless the user
    chose a level: they are never a problem (tf.data's memory patch, the coordination
    service's handshakes), while its warnings and errors still show (filtered by
    :func:`is_noise`). Read by TensorFlow when it is imported."""
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def is_noise(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's start-up messages in :data:`NOISE`."""
    return any(marker in line for marker in NOISE)


def import_tensorflow() -> Any:
    """``import tensorflow`` and its device probe, with :data:`NOISE` filtered from fd 2.

    Imported once per process; later calls return the module. Without ``--verbose`` the
    process's stderr goes through a pipe meanwhile, and every line not in :data:`NOISE` is
    written on to the real stderr.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if not verbose():
        quiet_tensorflow_info(os.environ)
    if "tensorflow" in sys.modules or verbose():
        import tensorflow as tf

        return tf
    saved, forward = _filter_fd2(NOISE)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe prints here, once per process
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the forwarder sees its end
        forward.join()
        os.close(saved)
    return tf


@contextlib.contextmanager
def jvm_stderr_filtered() -> Iterator[None]:
    """Start a JVM inside: its stderr goes through a pipe that drops :data:`JVM_NOISE`.

    The JVM inherits the pipe as its fd 2 for its whole life, so the forwarding thread (a
    daemon) runs until the JVM closes it; this process's own fd 2 is restored on exit.
    """
    if verbose():
        yield
        return
    saved, _ = _filter_fd2(JVM_NOISE, close_target=True)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(os.dup(saved), 2)  # the forwarder keeps ``saved`` for the JVM's lines


def _filter_fd2(
    markers: tuple[str, ...], *, close_target: bool = False
) -> tuple[int, threading.Thread]:
    """fd 2 replaced by a pipe whose lines without ``markers`` go on to the real stderr;
    the real stderr's fd (a copy) and the forwarding thread."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    forward = threading.Thread(
        target=_forward, args=(read_end, saved, markers, close_target), daemon=True
    )
    forward.start()
    return saved, forward


def _forward(read_end: int, target: int, markers: tuple[str, ...], close_target: bool) -> None:
    with os.fdopen(read_end, "rb") as pipe:
        for line in pipe:
            text = line.decode("utf-8", "replace")
            if not any(marker in text for marker in markers):
                os.write(target, line)
    if close_target:
        os.close(target)
