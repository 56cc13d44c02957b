"""LUNA16's submission file from sparkdl's predictions (seriesuid,coordX,coordY,coordZ,probability).

One row per candidate patch (``source`` ``candidate`` or ``generated``), in the challenge's
columns, the centre in world LPS mm as the candidates file (or the generation) gave it.
Series ids are the dataset's pseudonyms unless the caller gives the original ids to map back
(``originals_from``: a CSV with a ``seriesuid`` column, e.g. the candidates file the dataset
was ingested with) and the de-identification key: each original is mapped forward with the
keyed UID map and the pseudonyms found are replaced. Without the key no original can be
recovered, and a series whose original is not in that CSV keeps its pseudonym (counted in
the result).
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkdl.deid import remap_uid
from sparkdl.errors import InputError
from sparkdl.patches.points import read_points_csv
from sparkdl.store.storage import local_path
from sparkdl.store.table_files import columns

COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "probability")


#: The patch sources a submission lists: candidates, listed or generated.
CANDIDATE_SOURCES = ("candidate", "generated")


def write_submission(
    predictions: str, path: str, *, originals_from: str | None = None, key: bytes | None = None
) -> dict[str, Any]:
    """Write ``path`` from the predictions Parquet at ``predictions``; what was written:
    ``path``, ``rows``, ``original_series_ids``, ``series_left_pseudonymous``, and ``note``
    when the file lists no candidate (it then holds the header only, and says why).

    Raises:
        InputError: ``originals_from`` and ``key`` map none of the predicted series back (the
            key is not the ingest's, or the CSV lists other scans).
    """
    scored = columns(predictions, ["series_uid", "center", "probability", "source"])
    if scored is None:
        raise InputError(f"No predictions at {predictions}: run sparkdl predict first.")
    table = scored.filter(pc.is_in(scored["source"], value_set=pa.array(CANDIDATE_SOURCES)))
    series = table["series_uid"].to_pylist()
    names: dict[str, str] = {}
    if originals_from is not None and key is not None:
        names = _originals(originals_from, key, set(series))
    centers = np.array(table["center"].to_pylist(), dtype=np.float64).reshape(-1, 3)
    probabilities = table["probability"].to_pylist()
    with open(local_path(path), "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(COLUMNS)
        for uid, (x, y, z), probability in zip(series, centers, probabilities):
            out.writerow((names.get(uid, uid), f"{x:.3f}", f"{y:.3f}", f"{z:.3f}", probability))
    written: dict[str, Any] = {
        "path": path,
        "rows": len(series),
        "original_series_ids": bool(names),
        "series_left_pseudonymous": len(set(series) - set(names)) if names else None,
    }
    if not series:
        written["note"] = (
            f"no candidate patches among the {scored.num_rows} scored: a submission lists "
            "candidates only. Ingest with --candidates CSV, or with candidate generation on "
            "(conf/ingest.yaml candidates:), to score a list of candidates per scan."
        )
    return written


def _originals(originals_from: str, key: bytes, series: set[str]) -> dict[str, str]:
    """``pseudonym → original`` for the originals listed in ``originals_from``."""
    frame = read_points_csv(originals_from, "candidates")
    names = {remap_uid(key, uid): uid for uid in frame["seriesuid"].astype(str).unique()}
    found = series & set(names)
    if series and not found:
        raise InputError(
            f"None of the {len(series)} predicted series maps back to a seriesuid of "
            f"{originals_from} under this key: the key is not the one the ingest used, or the "
            "CSV lists other scans. Pass the ingest's key (--key-file or SPARKDL_DEID_KEY) and "
            "the CSV the dataset was ingested with."
        )
    return {pseudonym: names[pseudonym] for pseudonym in found}
