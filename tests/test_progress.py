"""The console progress helpers on their own (no Spark): stage lines, following a file."""

from __future__ import annotations

import io
import time

import pytest

from sparkdl import progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stage_ends_with_its_counts_and_seconds_when_not_a_terminal() -> None:
    out = io.StringIO()
    done = [0]
    with progress.stage("ingest: reading", "files", lambda: (done[0], 5), stream=out):
        done[0] = 5
    lines = out.getvalue().splitlines()
    assert len(lines) == 1  # a short stage prints only its closing line
    assert lines[0].startswith("ingest: reading: 5/5 files (100%) in ")


def test_stage_redraws_in_place_on_a_terminal() -> None:
    out = _Tty()
    done = [0]
    with progress.stage("ingest: reading", "files", lambda: (done[0], 10), stream=out):
        time.sleep(1.2)  # at least one redraw (every 0.5 s), with room for a busy machine
        done[0] = 10
    text = out.getvalue()
    assert text.count("\n") == 1 and text.count("\r") >= 2
    assert "ingest: reading: 0/10 files (0%)" in text
    assert "ingest: reading: 10/10 files (100%) in " in text


def test_stage_without_counts_and_when_off(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    with progress.stage("ingest: publishing", "", stream=out):
        pass
    assert out.getvalue().startswith("ingest: publishing: in ")
    monkeypatch.setenv(progress.ENV_VAR, "0")
    quiet = io.StringIO()
    with progress.stage("ingest: reading", "files", lambda: (1, 1), stream=quiet):
        progress.say("a line", stream=quiet)
    assert quiet.getvalue() == ""


def test_follow_prints_each_new_line_once_and_the_last_ones_at_the_end() -> None:
    out = io.StringIO()
    lines: list[str] = []

    def read() -> list[str]:
        if not lines:
            raise FileNotFoundError("not written yet")  # tolerated
        return list(lines)

    with progress.follow(read, str.upper, interval_s=0.05, stream=out):
        lines.append("epoch 1")
        time.sleep(0.3)
        lines.append("epoch 2")  # written just before the end: printed by the final poll
    assert out.getvalue().splitlines() == ["EPOCH 1", "EPOCH 2"]
