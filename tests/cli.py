"""The ``sparkdl`` command line as a user runs it: a child process with the test key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_KEY

ROOT = Path(__file__).resolve().parents[1]


def run_sparkdl(*args: str, timeout: float = 1200) -> str:
    """``python -m sparkdl ARGS...`` from the repository root; its stdout (it must succeed)."""
    env = {**os.environ, "SPARKDL_DEID_KEY": TEST_KEY, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "sparkdl", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout
