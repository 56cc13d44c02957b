"""Synthetic cohorts for the benchmark scripts, made once per settings and kept under ``--work``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path


def cached_synth(out: Path, *args: str) -> float | None:
    """``sparkdl synth OUT ARGS...`` unless a complete cohort is at ``out``; its seconds, or
    None when the cohort was already there (``out/complete`` marks a finished one)."""
    done = out / "complete"
    if done.exists():
        return None
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sparkdl", "synth", str(out), *args],
        check=True,
        capture_output=True,
        text=True,
    )
    done.write_text("")
    return time.perf_counter() - start
