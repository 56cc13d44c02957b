"""Publishing an ingest run: the journal of table moves, its commit, the manifest last.

An ingest run stages its tables under ``OUT/_staging/<run>/``; this module turns them into
the published dataset through :mod:`sparkdl.ingestion.commit`: :func:`plan_overwrite` journals the
moves of an overwrite run, :func:`commit_and_publish` writes the journal (the commit point)
and publishes it, and :func:`finish_interrupted_commit` publishes what a run killed after
its commit point had staged. :func:`publish` writes ``manifest.json`` only once every table
is in place, with counts read back from the published tables (:func:`manifest_counts`), so
the manifest always agrees with what is there.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sparkdl.ingestion import commit
from sparkdl.ingestion.commit import Journal
from sparkdl.store.storage import HadoopFS, join
from sparkdl.store.table_files import columns, count_rows
from sparkdl.store.tables import (
    CATALOG,
    MANIFEST,
    NODULES,
    PATCHES,
    READS,
    REJECTED,
    STAGING,
    TABLES,
    VOLUMES,
)

logger = logging.getLogger(__name__)


def plan_overwrite(fs: HadoopFS, journal: Journal, staging: str, output: str) -> None:
    """Every published table is replaced by its staged version, or removed when none was staged."""
    for name in TABLES:
        if fs.exists(join(staging, name)):
            journal.move(join(staging, name), join(output, name))
        else:
            journal.delete(join(output, name))


def commit_and_publish(
    fs: HadoopFS, output: str, staging: str, journal: Journal, started: float
) -> dict[str, Any]:
    """Write the journal (the commit point), then publish."""
    commit.write(fs, staging, journal)
    return publish(fs, output, journal, started)


def finish_interrupted_commit(fs: HadoopFS, output: str) -> None:
    """A run killed after its commit point left a journal: publish what it had staged."""
    journal = commit.pending(fs, output)
    if journal is not None:
        logger.warning(
            "ingest: an earlier run was stopped while publishing; finishing its commit first"
        )
        publish(fs, output, journal)


def publish(
    fs: HadoopFS, output: str, journal: Journal, started: float | None = None
) -> dict[str, Any]:
    """Apply the journal, then write the manifest, last: only now does the dataset look complete."""
    commit.apply(fs, output, journal)
    counted = manifest_counts(output)
    manifest = {
        **journal.manifest,
        **counted,
        "counts": {**journal.manifest.get("counts", {}), **counted["counts"]},
    }
    if started is not None:
        manifest["timings"]["total_s"] = round(time.time() - started, 2)
    fs.write_text(join(output, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True))
    fs.delete(join(output, STAGING))
    return manifest


def manifest_counts(output: str) -> dict[str, Any]:
    """Counts read back from the published tables, so they agree with what is there."""
    catalog = columns(join(output, CATALOG), ["series_uid", "volume_status", "volume_reason"])
    rejected = columns(join(output, REJECTED), ["reason"])
    patches = columns(join(output, PATCHES), ["split", "label"])
    outcomes = _grouped(catalog.drop(["series_uid"]) if catalog is not None else None)
    reasons = {_text(k[0]): n for k, n in _grouped(rejected).items()}
    by_split_label = {f"{split}/{label}": n for (split, label), n in _grouped(patches).items()}
    cataloged = catalog.num_rows if catalog is not None else 0
    read_messages = count_rows(join(output, READS))
    nodules = columns(join(output, NODULES), ["positive"])
    return {
        "counts": {
            "units": cataloged + sum(reasons.values()) + read_messages,
            "cataloged": cataloged,
            "rejected": sum(reasons.values()),
            "read_messages": read_messages,
            "nodules": nodules.num_rows if nodules is not None else 0,
            "nodules_positive": (
                int(pc.sum(nodules["positive"]).as_py() or 0) if nodules is not None else 0
            ),
            "series": len(pc.unique(catalog["series_uid"])) if catalog is not None else 0,
            "volumes": count_rows(join(output, VOLUMES)),
            "patches": sum(by_split_label.values()),
        },
        "rejected_by_reason": dict(sorted(reasons.items())),
        "instances_by_volume_outcome": dict(
            sorted(
                (f"{_text(status)}:{_text(reason)}".rstrip(":"), n)
                for (status, reason), n in outcomes.items()
                if _text(status)
            )
        ),
        "patches": {"by_split_label": dict(sorted(by_split_label.items()))},
    }


def _grouped(table: pa.Table | None) -> dict[tuple[Any, ...], int]:
    """Rows per distinct combination of the table's columns."""
    if table is None or table.num_rows == 0:
        return {}
    sizes = table.to_pandas().groupby(table.column_names, dropna=False).size()
    return {k if isinstance(k, tuple) else (k,): int(v) for k, v in sizes.items()}


def _text(value: Any) -> str:
    return "" if pd.isna(value) else str(value)  # pandas groups missing values as NaN
