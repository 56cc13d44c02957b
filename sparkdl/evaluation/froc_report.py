"""FROC and CPM of a nodule model on the candidate patches of one split, as LUNA16 reports them.

When the patches came from a candidates file (``source == "candidate"``) and ingest kept the
findings (``OUT/findings/``: annotated nodules and excluded findings), each candidate of the
split is scored and matched against the nodules of the split's scans with
:func:`sparkdl.evaluation.froc.froc`
(the challenge's definitions). The scans are the series with any
patch in the split, so a scan whose candidates all fell outside its volume still counts in
false positives per scan. Runs on the driver, like the rest of evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as pads

from sparkdl.evaluation.froc import froc, froc_bootstrap, froc_metrics
from sparkdl.evaluation.plots import plot_froc
from sparkdl.evaluation.prediction import score_batches
from sparkdl.store.layout import Dataset
from sparkdl.store.table_files import columns, open_dataset
from sparkdl.store.tables import FINDINGS, FINDINGS_SCHEMA, PATCHES

logger = logging.getLogger(__name__)

_COLUMNS = ["patch_id", "series_uid", "patient_id", "split", "source", "center", "label", "patch"]
#: Candidate rows scored per model call.
_BATCH_ROWS = 256


def candidate_froc(
    dataset: Dataset,
    model_dir: str,
    split: str,
    window: tuple[float, float],
    patch_shape: tuple[int, ...],
    report: Path,
) -> dict[str, Any] | None:
    """The ``froc`` block of ``metrics.json`` (and ``report/froc.png``), or None when the
    split has no candidate patches or the dataset no findings."""
    findings = columns(dataset.path(FINDINGS), FINDINGS_SCHEMA.fieldNames())
    listed = columns(dataset.path(PATCHES), ["series_uid", "split", "source"])
    if findings is None or listed is None:
        return None
    listed = listed.filter(pc.equal(listed["split"], split))
    scans = sorted(set(listed["series_uid"].to_pylist()))
    if "candidate" not in set(listed["source"].to_pylist()):
        return None
    wanted = (pc.field("split") == split) & (pc.field("source") == "candidate")
    patches = open_dataset(dataset.url(PATCHES))
    if patches is None:  # removed since its columns were read
        return None
    scored = pd.concat(
        list(score_batches(_frames(patches, wanted), model_dir, window, patch_shape)),
        ignore_index=True,
    )
    centers = np.stack(scored["center"].to_numpy()).reshape(-1, 3)
    candidates = pd.DataFrame(
        {
            "seriesuid": scored["series_uid"],
            "coordX": centers[:, 0],
            "coordY": centers[:, 1],
            "coordZ": centers[:, 2],
            "probability": scored["probability"].astype(np.float64),
        }
    )
    findings = findings.to_pandas().rename(columns={"series_uid": "seriesuid"})
    findings = findings[findings["seriesuid"].isin(scans)]
    result = froc(
        candidates,
        findings[findings["kind"] == "nodule"],
        findings[findings["kind"] == "excluded"],
        scans,
    )
    interval = froc_bootstrap(result)
    plot_froc(result, report / "froc.png", cpm_ci95=interval)
    logger.debug(
        "evaluate: CPM %.3f over %d scans, %d nodules", result.cpm, len(scans), result.num_nodules
    )
    return froc_metrics(result, cpm_ci95=interval)


def _frames(dataset: pads.Dataset, wanted: Any) -> Iterator[pd.DataFrame]:
    for batch in dataset.to_batches(columns=_COLUMNS, filter=wanted, batch_size=_BATCH_ROWS):
        if batch.num_rows:
            yield batch.to_pandas()
