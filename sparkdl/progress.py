"""Progress of long work on the driver's console: ingest stages and training epochs.

Lines go to stderr (stdout keeps the results a script may parse). On a terminal a stage's
line is redrawn in place (``\\r``) at most twice a second; elsewhere (logs, CI, a notebook's
captured output) a plain line is printed at most every :data:`PLAIN_INTERVAL_S` seconds, so a
long stage prints a few lines and a short one only its closing line. Counts come from Spark
accumulators that tasks add to as they finish, or from Spark's status tracker: nothing here
runs a Spark job.

``SPARKDL_PROGRESS=0`` (or ``sparkdl --quiet``) turns it off; results and errors still print.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = [
    "ENV_VAR",
    "PLAIN_INTERVAL_S",
    "accumulated",
    "enabled",
    "follow",
    "say",
    "spark_tasks",
    "stage",
]

ENV_VAR = "SPARKDL_PROGRESS"
PLAIN_INTERVAL_S = 10.0
_TTY_INTERVAL_S = 0.5

#: ``() -> (done, total or None)``; called from the reporting thread.
Counter = Callable[[], tuple[int, int | None]]


def enabled() -> bool:
    """Whether progress lines are printed (``SPARKDL_PROGRESS`` is not ``0``)."""
    return os.environ.get(ENV_VAR, "1").strip() not in ("0", "false", "no", "off")


def say(line: str, stream: TextIO | None = None) -> None:
    """Print one progress line (nothing when progress is off)."""
    if enabled():
        print(line, file=stream or sys.stderr, flush=True)


def accumulated(accumulator: Any, total: int | None) -> Counter:
    """A counter reading a Spark accumulator the tasks add to (updated as tasks finish)."""
    return lambda: (int(accumulator.value), total)


def spark_tasks(spark_context: Any) -> Counter:
    """A counter of the tasks of every Spark stage seen running since it was made."""
    tracker = spark_context.statusTracker()
    seen: set[int] = set()

    def count() -> tuple[int, int | None]:
        seen.update(tracker.getActiveStageIds())
        infos = [info for info in map(tracker.getStageInfo, sorted(seen)) if info is not None]
        return sum(i.numCompletedTasks for i in infos), sum(i.numTasks for i in infos)

    return count


@contextmanager
def stage(
    name: str, unit: str, counter: Counter | None = None, stream: TextIO | None = None
) -> Iterator[None]:
    """Report ``name`` while the block runs, then one closing line with its seconds."""
    out = stream or sys.stderr
    if not enabled():
        yield
        return
    started = time.monotonic()
    tty = out.isatty()
    stop = threading.Event()
    thread = None
    if counter is not None:
        thread = threading.Thread(
            target=_report, args=(name, unit, counter, out, tty, started, stop), daemon=True
        )
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        seconds = time.monotonic() - started
        done = _safe(counter) if counter is not None else None
        counts = f"{_count(done[0], done[1], unit)} " if done is not None and any(done) else ""
        line = f"{name}: {counts}in {seconds:.1f} s"
        print("\r" + _fit(line) if tty else line, file=out, flush=True)


def _report(
    name: str,
    unit: str,
    counter: Counter,
    out: TextIO,
    tty: bool,
    started: float,
    stop: threading.Event,
) -> None:
    last_line = ""
    last_print = started
    while not stop.wait(_TTY_INTERVAL_S):
        done = _safe(counter)  # every tick: the task counter must see each stage running
        now = time.monotonic()
        if done is None or (not tty and now - last_print < PLAIN_INTERVAL_S):
            continue
        line = f"{name}: {_count(*done, unit)}{_pace(done[0], done[1], unit, now - started)}"
        if line != last_line or not tty:
            if tty:
                print("\r" + _fit(line), end="", file=out, flush=True)
            else:
                print(line, file=out, flush=True)
            last_line, last_print = line, now


def _fit(line: str) -> str:
    """``line`` cut and padded to the terminal's width: a redraw covers the previous one."""
    width = shutil.get_terminal_size((100, 20)).columns - 1
    return line[:width].ljust(width)


def _safe(counter: Counter) -> tuple[int, int | None] | None:
    try:
        return counter()
    except Exception:  # noqa: BLE001 - a stopped context must not break the work it reports
        return None


def _count(done: int, total: int | None, unit: str) -> str:
    if total:
        return f"{done:,}/{total:,} {unit} ({100 * done // total}%)"
    return f"{done:,} {unit}"


def _pace(done: int, total: int | None, unit: str, seconds: float) -> str:
    if not done or seconds <= 0:
        return ""
    rate = done / seconds
    left = f", ~{(total - done) / rate:.0f} s left" if total and total > done else ""
    return f", {rate:,.0f} {unit}/s{left}"


@contextmanager
def follow(
    read: Callable[[], list[str]],
    render: Callable[[str], str],
    interval_s: float = 2.0,
    stream: TextIO | None = None,
) -> Iterator[None]:
    """While the block runs, print ``render(line)`` for each new line ``read()`` returns
    (a file another process appends to, such as the chief's per-epoch progress); once more
    at the end, so no line is missed."""
    out = stream or sys.stderr
    if not enabled():
        yield
        return
    shown = 0
    lock = threading.Lock()

    def show_new() -> None:
        nonlocal shown
        with lock:
            try:
                lines = read()
            except Exception:  # noqa: BLE001 - not written yet, or briefly unreadable
                return
            for line in lines[shown:]:
                print(render(line), file=out, flush=True)
            shown = max(shown, len(lines))

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            show_new()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        show_new()
