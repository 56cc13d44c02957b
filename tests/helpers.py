"""What the tests share: the key, the paths, and one way each to run the CLI and a child script.

Both runners start ``sys.executable`` (or the ``python`` given) with the repository first on
``PYTHONPATH`` and the test key in ``SPARKDL_DEID_KEY``; ``env`` adds to that environment and a
``None`` value removes a variable. A child process makes a test slow: both runners refuse to
start one from a test that is not marked ``slow`` (``conftest.py`` says which test runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The scripts tests run as child processes.
SCRIPTS = ROOT / "tests" / "scripts"
#: The de-identification key of every test run (fixtures, the CLI, child scripts).
TEST_KEY = "test-key-0123456789abcdef0123456789abcdef"
#: How a child script reports: one line, this marker and a JSON document.
RESULT_MARKER = "RESULT "

#: ``slow``: whether the running test is marked slow (unset outside pytest).
RUNNING_TEST: dict[str, bool] = {}

Env = Mapping[str, str | None]


def child_env(env: Env | None = None) -> dict[str, str]:
    """This process's environment, the repository first on ``PYTHONPATH``, the test key, ``env``."""
    merged: dict[str, str | None] = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "SPARKDL_DEID_KEY": TEST_KEY,
        **(env or {}),
    }
    return {name: value for name, value in merged.items() if value is not None}


def _require_slow(what: str) -> None:
    if RUNNING_TEST.get("slow") is False:
        raise AssertionError(
            f"{what} runs in a child process: mark the test @pytest.mark.slow "
            "(`pytest -m 'not slow'` is the quick suite)"
        )


def run_sparkdl(
    *args: str,
    check: bool = True,
    env: Env | None = None,
    merge_stderr: bool = False,
    python: str | Path = sys.executable,
    timeout: float = 1200,
) -> subprocess.CompletedProcess[str]:
    """``python -m sparkdl ARGS...`` from the repository root, as a user runs it.

    ``check``: the command must succeed (its stderr tail is the failure message).
    ``merge_stderr``: stderr goes to stdout, in the order a user sees the two on a console.
    """
    _require_slow(f"sparkdl {' '.join(args[:1])}")
    done = subprocess.run(
        [str(python), "-m", "sparkdl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
        timeout=timeout,
        env=child_env(env),
        cwd=ROOT,
    )
    if check:
        assert done.returncode == 0, (
            f"sparkdl {' '.join(args)} exited with {done.returncode}:\n"
            f"{(done.stderr or done.stdout)[-4000:]}"
        )
    return done


@dataclass(frozen=True)
class Child:
    """A finished child script: its exit code and output, and the JSON it reported."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> Any:
        """The document of the last ``RESULT <json>`` line; the child must have succeeded."""
        lines = [line for line in self.stdout.splitlines() if line.startswith(RESULT_MARKER)]
        assert self.returncode == 0 and lines, (
            f"{' '.join(self.args)} exited with {self.returncode}"
            f"{'' if lines else ', no RESULT line'}:\n{self.stderr[-4000:]}"
        )
        return json.loads(lines[-1][len(RESULT_MARKER) :])


def run_child(
    script: str | Path,
    *args: str,
    python: str | Path = sys.executable,
    env: Env | None = None,
    cwd: str | Path | None = None,
    new_session: bool = False,
    timeout: float = 600,
) -> Child:
    """Run a Python script (``tests/scripts/NAME.py``, or any path) in a child process.

    ``new_session``: the child leads a process group of its own, so it can kill its group
    (a driver and its JVM) without touching pytest. Read what it reported with ``.result``.
    """
    _require_slow(Path(script).name)
    command = [str(python), str(script), *args]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(env),
        cwd=cwd,
        start_new_session=new_session,
    )
    return Child(command, done.returncode, done.stdout, done.stderr)


def linked_spark_home(tmp_path: Path) -> Path:
    """``tmp_path/spark_home``: links to pip pyspark's bin, jars, sbin, conf and python.

    ``local-cluster`` launches executors from ``SPARK_HOME/jars`` (pip's pyspark ships them) and
    keeps their work dirs in ``SPARK_HOME/work``: a linked copy keeps those out of the virtualenv.
    """
    import pyspark

    home = tmp_path / "spark_home"
    home.mkdir()
    for name in ("bin", "jars", "sbin", "conf", "python"):
        source = Path(pyspark.__file__).parent / name
        if source.exists():
            (home / name).symlink_to(source)
    return home


def worker_view_fn() -> Callable[[], dict[str, Any]]:
    """A training fn reporting what a worker sees: rank, Spark's GPUs, the runner's variables.

    Nested, so cloudpickle ships it by value (executors cannot import the tests).
    """

    def worker_view() -> dict[str, Any]:
        # fn runs in a child of the Spark Python worker: the parent pid is the worker's.
        gpus = os.environ["SPARKDL_TASK_GPUS"]
        return {
            "rank": int(os.environ["SPARKDL_WORKER_RANK"]),
            "pid": os.getppid(),
            "spark_gpus": gpus.split(",") if gpus else None,
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "TF_CONFIG": json.loads(os.environ["TF_CONFIG"]),
        }

    return worker_view
