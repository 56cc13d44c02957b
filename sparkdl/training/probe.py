"""Before a barrier stage: can the executors' Python run sparkdl's training tasks at all?

:func:`check_executors` runs one ordinary task per worker that reports its Python version
and whether it imports sparkdl, so :class:`sparkdl.training.runner.TrainingRunner` can fail at once
with the fix instead of after Spark's stage retries.
"""

from __future__ import annotations

import sys
from typing import Any

from sparkdl.errors import TrainingError

#: Runs on the executors without sparkdl: built from source in a module of its own name, so
#: cloudpickle ships the function by value (a function of a sparkdl module would be pickled
#: by reference, and unpickling it is what fails where sparkdl is missing).
_PROBE_SOURCE = """
def probe(_):
    import sys
    try:
        import sparkdl
        problem = None
    except Exception as error:
        problem = type(error).__name__ + ": " + str(error)
    yield (sys.version_info[0], sys.version_info[1]), sys.executable, problem
"""


def check_executors(sc: Any, num_tasks: int) -> None:
    """Fail at once, with the fix, when the executors' Python cannot run the training tasks.

    A barrier task that cannot import sparkdl (a notebook session against a cluster whose
    workers lack it) fails only after Spark has re-run the stage
    ``spark.stage.maxConsecutiveAttempts`` times, with a generic Py4J error. One ordinary
    task per worker asks first: which Python runs there, and whether it imports sparkdl.
    """
    namespace: dict[str, Any] = {"__name__": "sparkdl_executor_probe"}
    # Our own constant source (above), compiled here so that its module is not sparkdl's.
    exec(compile(_PROBE_SOURCE, "<sparkdl executor probe>", "exec"), namespace)
    found = sc.parallelize(range(num_tasks), num_tasks).mapPartitions(namespace["probe"]).collect()
    driver = sys.version_info[:2]
    for version, executable, problem in found:
        if tuple(version) != driver:
            raise TrainingError(
                f"The executors run Python {version[0]}.{version[1]} ({executable}); the driver "
                f"runs {driver[0]}.{driver[1]}. Use one Python everywhere: set PYSPARK_PYTHON "
                "(or SPARKDL_PYTHON with scripts/submit_train.sh) to the same interpreter on "
                "every node, or ship a packed venv (--env-archive, README: Running on a cluster)."
            )
        if problem is not None:
            raise TrainingError(
                f"The executors' Python ({executable}) cannot import sparkdl: {problem}. Ship "
                "it with the job: --py-files dist/sparkdl-<version>.zip (scripts/package_env.sh; "
                "not the .whl), or a packed venv (--env-archive), or install the wheel on every "
                "node / as a cluster library, with PYSPARK_PYTHON naming that Python."
            )
