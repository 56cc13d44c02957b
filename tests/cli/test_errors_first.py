"""What a user can get wrong is refused before any work starts, with what to do instead.

``sparkdl.cli.main`` runs in this process with the Spark session it would build replaced by
one that fails: an error that came after Spark started would show as that failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkdl import cli
from sparkdl.cli import commands
from tests.helpers import TEST_KEY


@pytest.fixture()
def no_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(args: object) -> None:
        raise AssertionError("Spark was started before the input was checked")

    monkeypatch.setattr(commands, "session", refuse)
    monkeypatch.setenv("SPARKDL_DEID_KEY", TEST_KEY)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


def test_a_missing_input_is_named_before_spark_starts(
    no_spark: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, "ingest", str(tmp_path / "no-such-folder"), "--output", str(tmp_path))
    assert code == 2
    assert f"Input not found: {tmp_path / 'no-such-folder'}" in err


def test_a_missing_annotations_file_is_named_before_spark_starts(
    no_spark: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--output", str(tmp_path / "out"), "--annotations", str(tmp_path / "a.csv")]
    code, err = run(capsys, "ingest", str(tmp_path), *args)
    assert code == 2 and "--annotations file not found" in err


def test_epochs_zero_is_named_as_the_flag(
    no_spark: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, "train", "--data", str(tmp_path), "--model-dir", "m", "--epochs", "0")
    assert code == 2
    assert "--epochs 0: TrainConfig.epochs must be an integer >= 1" in err
    assert "config file" not in err


def test_mapping_ids_back_needs_the_ingest_key_before_anything_runs(
    no_spark: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SPARKDL_DEID_KEY")
    listed = tmp_path / "candidates.csv"
    listed.write_text("seriesuid,coordX,coordY,coordZ,class\n1.2.3,0,0,0,0\n")
    argv = ["predict", "--data", str(tmp_path), "--model-dir", "m", "--output", "p"]
    code, err = run(capsys, *argv, "--submission", "s.csv", "--original-ids-from", str(listed))
    assert code == 2
    assert "Only the key the ingest used maps its pseudonyms back" in err
    assert "Make one with" not in err  # a new key maps nothing back


def test_detect_options_are_checked_before_spark(
    no_spark: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["detect", "--data", str(tmp_path), "--model-dir", "m", "--output", "d.csv"]
    code, err = run(capsys, *argv, "--threshold", "2")
    assert code == 2 and "threshold must be a probability" in err
