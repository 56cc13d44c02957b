"""LUNA16's submission: candidate patches only, an empty one explained, ids mapped back only
with the ingest's key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql.pandas.types import to_arrow_schema

from sparkdl.deid import remap_uid
from sparkdl.errors import InputError
from sparkdl.evaluation.submission import write_submission
from sparkdl.store.tables import PREDICTION_SCHEMA
from tests.helpers import TEST_KEY

ORIGINAL = "1.3.6.1.4.1.14519.5.2.1.6279.6001.1"


def _predictions(folder: Path, sources: list[str]) -> str:
    pseudonym = remap_uid(TEST_KEY.encode(), ORIGINAL)
    rows = [
        {
            "patch_id": f"p{i}",
            "series_uid": pseudonym,
            "patient_id": "x",
            "split": "test",
            "source": source,
            "center": [float(i), 2.0, 3.0],
            "label": 0,
            "probability": np.float32(0.25),
        }
        for i, source in enumerate(sources)
    ]
    folder.mkdir()
    table = pa.Table.from_pylist(rows, schema=to_arrow_schema(PREDICTION_SCHEMA))
    pq.write_table(table, folder / "part-0.parquet")
    return str(folder)


def test_only_candidates_are_listed_and_an_empty_list_says_why(tmp_path: Path) -> None:
    scored = _predictions(tmp_path / "p", ["annotation", "candidate", "generated", "sampled"])
    written = write_submission(scored, str(tmp_path / "s.csv"))
    assert written["rows"] == 2 and "note" not in written
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "seriesuid,coordX,coordY,coordZ,probability" and len(lines) == 3
    none = write_submission(_predictions(tmp_path / "q", ["annotation"]), str(tmp_path / "t.csv"))
    assert none["rows"] == 0
    assert "no candidate patches among the 1 scored" in none["note"]


def test_original_ids_come_back_with_the_ingest_key_only(tmp_path: Path) -> None:
    scored = _predictions(tmp_path / "p", ["candidate"])
    listed = tmp_path / "candidates.csv"
    listed.write_text(f"seriesuid,coordX,coordY,coordZ,class\n{ORIGINAL},0,0,0,0\n")
    key = TEST_KEY.encode()
    written = write_submission(scored, str(tmp_path / "s.csv"), originals_from=str(listed), key=key)
    assert written["original_series_ids"] and written["series_left_pseudonymous"] == 0
    assert ORIGINAL in (tmp_path / "s.csv").read_text()
    wrong = b"another-key-0123456789abcdef0123456789"
    with pytest.raises(InputError, match="not the one the ingest used"):
        write_submission(scored, str(tmp_path / "w.csv"), originals_from=str(listed), key=wrong)
