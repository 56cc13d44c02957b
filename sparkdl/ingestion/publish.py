"""Publishing an ingest run atomically: a journal of file moves, a commit point, the manifest.

A run writes everything under ``OUT/_staging/<run>/``. Publishing it is a list of file
operations (delete a path; move a staged path over a published one), written first as
``_staging/<run>/_commit.json`` through a temporary name and a rename: that rename is the
commit point. Then ``manifest.json`` is removed, the operations are applied, and the manifest
is written last, with counts read back from the published tables (:func:`manifest_counts`),
so it always agrees with what is there.

* Killed before the commit point: the published dataset is untouched, manifest included;
  the next run drops the staging folder.
* Killed after it: no manifest, so nothing looks complete; the next run (any mode) finds
  the journal and applies it again before its own work (:func:`finish_interrupted_commit`).
  Every operation can be applied twice: deleting a missing path does nothing, and a move
  whose source is gone was done.

An overwrite run replaces every table (:func:`publish_overwrite`); an append run replaces
only the part files that held a rebuilt series and moves its new parts in
(:func:`publish_append`, copy-on-write: :mod:`sparkdl.store.table_files`). The journal also
carries the manifest fields known before publishing (configuration, timings, what the run
did), so the run that finishes a commit writes the same manifest.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sparkdl.store.metadata import ROW_GROUPS_PER_FILE_KEY
from sparkdl.store.storage import HadoopFS, join, open_input, write_bytes
from sparkdl.store.table_files import columns, count_rows
from sparkdl.store.tables import (
    CANDIDATES,
    CATALOG,
    FINDINGS,
    INPUTS,
    LINEAGE,
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

JOURNAL = "_commit.json"

#: Changed file by file by an append run (``dicom`` gets its files directly, ``inputs`` and
#: ``findings`` are replaced); a run that staged none of the optional ones leaves them be.
APPENDED = (CATALOG, VOLUMES, PATCHES, READS, NODULES, CANDIDATES, REJECTED, LINEAGE)
_OPTIONAL = (READS, NODULES, CANDIDATES)


@dataclass(frozen=True)
class Journal:
    """What one commit does: ``("delete", path)`` and ``("move", source, target)`` steps."""

    steps: list[tuple[str, ...]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    def delete(self, path: str) -> None:
        self.steps.append(("delete", path))

    def move(self, source: str, target: str) -> None:
        self.steps.append(("move", source, target))


def publish_overwrite(
    fs: HadoopFS, staging: str, output: str, facts: dict[str, Any], started: float
) -> dict[str, Any]:
    """Every published table replaced by its staged version (or removed when none was
    staged), then the manifest: the manifest written."""
    journal = Journal()
    for name in TABLES:
        if fs.exists(join(staging, name)):
            journal.move(join(staging, name), join(output, name))
        else:
            journal.delete(join(output, name))
    journal.manifest.update(facts)
    return _commit_and_publish(fs, output, staging, journal, started)


def publish_append(
    fs: HadoopFS,
    staging: str,
    output: str,
    replaced: dict[str, list[str]],
    facts: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    """The staged part files moved in, the published files of ``replaced`` (table → part
    file names holding a rebuilt series) removed; ``inputs`` and the run's ``findings``
    replaced; then the manifest."""
    journal = Journal()
    for name in APPENDED:
        if name in _OPTIONAL and not fs.exists(join(staging, name)):
            continue  # e.g. no read message in this run
        _stage_replacement(
            fs, journal, join(staging, name), join(output, name), replaced.get(name, [])
        )
    journal.move(join(staging, INPUTS), join(output, INPUTS))
    if fs.exists(join(staging, FINDINGS)):  # this run's CSVs replace the earlier ones
        journal.move(join(staging, FINDINGS), join(output, FINDINGS))
    journal.manifest.update(facts)
    return _commit_and_publish(fs, output, staging, journal, started)


def publish_unchanged(
    fs: HadoopFS, staging: str, output: str, manifest: dict[str, Any], started: float
) -> dict[str, Any]:
    """An append run whose files held nothing new: only ``inputs`` (so they are not read
    again next time), and the earlier ``manifest`` as given."""
    journal = Journal()
    journal.move(join(staging, INPUTS), join(output, INPUTS))
    journal.manifest.update(manifest)
    return _commit_and_publish(fs, output, staging, journal, started)


def finish_interrupted_commit(fs: HadoopFS, output: str) -> None:
    """A run killed after its commit point left a journal: publish what it had staged."""
    journal = pending(fs, output)
    if journal is not None:
        logger.warning(
            "ingest: an earlier run was stopped while publishing; finishing its commit first"
        )
        _publish(fs, output, journal)


def write_journal(fs: HadoopFS, staging: str, journal: Journal) -> None:
    """The commit point: after this, the run's output will be published, now or by the next run."""
    fs.write_text(
        join(staging, JOURNAL), json.dumps({"steps": journal.steps, "manifest": journal.manifest})
    )


def apply(fs: HadoopFS, output: str, journal: Journal) -> None:
    """Remove the manifest, then apply every step (each may already have been applied)."""
    fs.delete(join(output, MANIFEST))
    for step in journal.steps:
        if step[0] == "delete":
            fs.delete(step[1])
        elif step[0] == "move":
            source, target = step[1], step[2]
            if fs.exists(source):
                fs.delete(target)
                fs.mkdirs(target.rsplit("/", 1)[0])
                fs.rename(source, target)
        else:
            raise ValueError(f"unknown commit step {step!r}")


def pending(fs: HadoopFS, output: str) -> Journal | None:
    """The journal of a run killed after its commit point, if there is one."""
    staging_root = join(output, STAGING)
    if not fs.exists(staging_root):
        return None
    for run in fs.children(staging_root):
        if fs.exists(join(run, JOURNAL)):
            data = json.loads(fs.read_text(join(run, JOURNAL)))
            return Journal([tuple(step) for step in data["steps"]], data["manifest"])
    return None


def _commit_and_publish(
    fs: HadoopFS, output: str, staging: str, journal: Journal, started: float
) -> dict[str, Any]:
    write_journal(fs, staging, journal)
    return _publish(fs, output, journal, started)


def _publish(
    fs: HadoopFS, output: str, journal: Journal, started: float | None = None
) -> dict[str, Any]:
    """Apply the journal, then write the manifest, last: only now does the dataset look complete."""
    apply(fs, output, journal)
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


def _stage_replacement(
    fs: HadoopFS, journal: Journal, staged: str, published: str, replaced_files: list[str]
) -> None:
    """Journal steps: delete ``replaced_files`` of ``published``, move in ``staged``'s parts."""
    for name in replaced_files:
        journal.delete(join(published, name))
    for path in _part_files(fs, staged):
        journal.move(path, join(published, path.rsplit("/", 1)[-1]))
    if fs.exists(join(staged, "_common_metadata")):
        _merge_row_group_counts(fs, staged, published, replaced_files)
        journal.move(join(staged, "_common_metadata"), join(published, "_common_metadata"))


def _merge_row_group_counts(fs: HadoopFS, staged: str, published: str, replaced: list[str]) -> None:
    """Make the staged ``_common_metadata`` count the row groups of the whole table after commit."""
    staged_meta = _read_metadata(join(staged, "_common_metadata"))
    counts = {}
    if fs.exists(join(published, "_common_metadata")):
        published_meta = _read_metadata(join(published, "_common_metadata")).metadata or {}
        counts = json.loads(published_meta.get(ROW_GROUPS_PER_FILE_KEY, b"{}").decode())
    for name in replaced:
        counts.pop(name, None)
    schema = staged_meta.schema.to_arrow_schema()
    metadata = dict(schema.metadata or {})
    counts.update(json.loads(metadata.get(ROW_GROUPS_PER_FILE_KEY, b"{}").decode()))
    metadata[ROW_GROUPS_PER_FILE_KEY] = json.dumps(counts, sort_keys=True).encode()
    sink = io.BytesIO()
    pq.write_metadata(schema.with_metadata(metadata), sink)
    fs.delete(join(staged, "._common_metadata.crc"))  # Hadoop's local checksum of the old bytes
    write_bytes(join(staged, "_common_metadata"), sink.getvalue())


def _read_metadata(uri: str) -> pq.FileMetaData:
    with open_input(uri) as handle:
        return pq.read_metadata(handle)


def _part_files(fs: HadoopFS, folder: str) -> list[str]:
    """The Parquet part files Spark wrote into ``folder`` (no ``_SUCCESS``, no checksums)."""
    if not fs.exists(folder):
        return []
    return sorted(
        path for path, *_ in fs.list_files(folder) if path.rsplit("/", 1)[-1].startswith("part-")
    )


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
    reader_nodules = columns(join(output, NODULES), ["positive"])
    findings = columns(join(output, FINDINGS), ["kind"])
    imaged = catalog.filter(pc.is_valid(catalog["volume_status"])) if catalog is not None else None
    return {
        "counts": {
            "units": cataloged + sum(reasons.values()) + read_messages,
            "cataloged": cataloged,
            "rejected": sum(reasons.values()),
            "read_messages": read_messages,
            # Every distinct series cataloged; those with images went to series assembly.
            "series": _distinct(catalog, "series_uid"),
            "image_series": _distinct(imaged, "series_uid"),
            "volumes": count_rows(join(output, VOLUMES)),
            # One per nodule, whatever named it (annotations CSV, LIDC readers): findings/.
            "nodules": (
                int(pc.sum(pc.equal(findings["kind"], "nodule")).as_py() or 0)
                if findings is not None
                else 0
            ),
            # What the LIDC readers marked (nodules/), and the positives of the lidc: rule.
            "reader_nodules": reader_nodules.num_rows if reader_nodules is not None else 0,
            "reader_nodules_positive": (
                int(pc.sum(reader_nodules["positive"]).as_py() or 0)
                if reader_nodules is not None
                else 0
            ),
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


def _distinct(table: pa.Table | None, column: str) -> int:
    return len(pc.unique(table[column])) if table is not None else 0


def _grouped(table: pa.Table | None) -> dict[tuple[Any, ...], int]:
    """Rows per distinct combination of the table's columns."""
    if table is None or table.num_rows == 0:
        return {}
    sizes = table.to_pandas().groupby(table.column_names, dropna=False).size()
    return {k if isinstance(k, tuple) else (k,): int(v) for k, v in sizes.items()}


def _text(value: Any) -> str:
    return "" if pd.isna(value) else str(value)  # pandas groups missing values as NaN
