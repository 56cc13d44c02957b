"""What an earlier ingest left in ``OUT``: the state an append run builds on.

An append run needs to know which input files it has seen unchanged (path, size and
modification time: those are not read again), which content was already accounted for
(lineage and rejected hashes: a renamed or re-sent file adds nothing), which SOP instances
are cataloged (so a re-sent instance is a duplicate), and where the rows of the series it
rebuilds are (:mod:`sparkdl.store.table_files`). :func:`plan_rebuild` says what an append run builds
again and which published files it replaces.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkdl.errors import InputError
from sparkdl.store.storage import HadoopFS, join
from sparkdl.store.table_files import columns, files_with, read, rows_in
from sparkdl.store.tables import (
    CANDIDATES,
    CANDIDATES_SCHEMA,
    CATALOG,
    CATALOG_SCHEMA,
    INPUTS,
    INPUTS_SCHEMA,
    LINEAGE,
    MANIFEST,
    PATCHES,
    REJECTED,
    VOLUMES,
    VolumeSchema,
)
from sparkdl.units.records import InputFile, Selection

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Previous:
    """The last complete run: its manifest, where it is, and the tables Spark joins with."""

    manifest: dict[str, Any]
    output: str
    catalog: DataFrame
    volumes: DataFrame | None
    patches: DataFrame | None
    candidates: DataFrame | None

    @classmethod
    def load(cls, spark: SparkSession, fs: HadoopFS, output: str) -> Previous | None:
        """None when ``output`` holds no complete dataset yet (the run then starts it)."""
        if not fs.exists(join(output, MANIFEST)):
            if fs.exists(join(output, CATALOG)):
                raise InputError(
                    f"{output} holds tables but no manifest.json: an earlier run did not finish. "
                    "Run once with --mode overwrite to rebuild it."
                )
            return None
        manifest = json.loads(fs.read_text(join(output, MANIFEST)))
        catalog = read(spark, fs, join(output, CATALOG), CATALOG_SCHEMA)
        if catalog is None or not fs.exists(join(output, LINEAGE)):
            raise InputError(
                f"{output}: catalog or _restricted tables are missing; rerun with --mode overwrite."
            )
        return cls(
            manifest,
            output,
            catalog,
            read(spark, fs, join(output, VOLUMES), VolumeSchema.as_spark_schema()),
            read(spark, fs, join(output, PATCHES)),
            read(spark, fs, join(output, CANDIDATES), CANDIDATES_SCHEMA),
        )

    def _columns(
        self, table: str, names: list[str], series: set[str] | None = None
    ) -> list[tuple[Any, ...]]:
        found = columns(join(self.output, table), names, series)
        return [] if found is None else list(zip(*(found[name].to_pylist() for name in names)))

    @cached_property
    def seen_inputs(self) -> dict[str, tuple[int, int]]:
        """``source_path → (size, modified_ms)`` of every input file earlier runs listed."""
        return {
            path: (size, modified)
            for path, size, modified in self._columns(INPUTS, INPUTS_SCHEMA.fieldNames())
        }

    def unseen(self, files: list[InputFile]) -> list[InputFile]:
        """The files not listed by an earlier run with the same size and modification time.

        Like rsync's quick check: a file rewritten in place keeping its size and modification
        time is not noticed (run with ``--mode overwrite`` after such edits).
        """
        seen = self.seen_inputs
        return [f for f in files if seen.get(f.path) != (f.size, f.modified_ms)]

    def selection(self) -> Selection:
        """Skip every unit whose content (or, without content, whose place) is known."""
        hashes = {digest for (digest,) in self._columns(LINEAGE, ["content_sha256"]) if digest}
        keys = set()
        for path, member, digest in self._columns(
            REJECTED, ["source_path", "member", "content_sha256"]
        ):
            if digest:
                hashes.add(digest)
            else:
                keys.add((path, member))
        return Selection(known_hashes=frozenset(hashes), known_keys=frozenset(keys))

    def earlier_units(self, series: set[str]) -> list[tuple[str, str | None, str]]:
        """``(source_path, member, series_uid)`` of the units of ``series`` earlier runs saw."""
        if not series:
            return []
        return self._columns(LINEAGE, ["source_path", "member", "series_uid"], series)

    def volume_series(self) -> frozenset[str]:
        """Series with a published volume."""
        return frozenset(s for (s,) in self._columns(VOLUMES, ["series_uid"]))


@dataclass
class Rebuild:
    """What an append run builds: the instances of the series it touches, and what it replaces."""

    volume_input: DataFrame
    touched: set[str] = field(default_factory=set)  # series with new instances
    rebuilt: set[str] = field(default_factory=set)  # ... of which earlier runs saw instances
    replaced: dict[str, list[str]] = field(default_factory=dict)  # table → its files rewritten
    keep_volumes: DataFrame | None = None  # rows of those files that stay
    keep_candidates: DataFrame | None = None
    #: Earlier units of the rebuilt series to read again: ``source_path → members``.
    reread: dict[str, frozenset[str | None]] = field(default_factory=dict)
    keep_patches: DataFrame | None = None


def plan_rebuild(
    previous: Previous, accepted: DataFrame, also: frozenset[str] = frozenset()
) -> Rebuild:
    """Series the new instances touch; which earlier units of those series to read again
    (``reread``); the published files that hold them (copy-on-write: only those are written
    again), and the rows of those files that stay.

    ``also``: series to rebuild though no new instance touches them (those a new LIDC read
    message labels: their patches are cut again with its nodules).
    """
    touched = set(also) | {
        r["series_uid"]
        for r in accepted.filter(F.col("pixels").isNotNull())
        .select("series_uid")
        .distinct()
        .collect()
    }
    earlier = previous.earlier_units(touched)
    plan = Rebuild(accepted, touched, {series for _, _, series in earlier})
    wanted: dict[str, set[str | None]] = {}
    for source, member, _ in earlier:
        wanted.setdefault(source, set()).add(member)
    plan.reread = {source: frozenset(members) for source, members in wanted.items()}
    if not plan.rebuilt:
        return plan
    in_rebuilt = F.col("series_uid").isin(sorted(plan.rebuilt))
    for name in (CATALOG, VOLUMES, PATCHES, CANDIDATES):
        plan.replaced[name] = files_with(join(previous.output, name), plan.rebuilt)
    # A table with files to replace exists, so Previous.load read it (not None).
    if plan.replaced[VOLUMES] and previous.volumes is not None:
        plan.keep_volumes = rows_in(previous.volumes, plan.replaced[VOLUMES]).filter(~in_rebuilt)
    if plan.replaced[PATCHES] and previous.patches is not None:
        plan.keep_patches = rows_in(previous.patches, plan.replaced[PATCHES]).filter(~in_rebuilt)
    if plan.replaced[CANDIDATES] and previous.candidates is not None:
        kept = rows_in(previous.candidates, plan.replaced[CANDIDATES]).filter(~in_rebuilt)
        plan.keep_candidates = kept.select(*CANDIDATES_SCHEMA.fieldNames())
    return plan
