"""What an earlier ingest left in ``OUT``: the state an append run builds on.

An append run needs to know which input files it has seen unchanged (path, size and
modification time: those are not read again), which content was already accounted for
(lineage and rejected hashes: a renamed or re-sent file adds nothing), which SOP instances
are cataloged (so a re-sent instance is a duplicate), and where the rows of the series it
rebuilds are (:mod:`sparkdl.tables`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import LongType, StringType, StructField, StructType

from .catalog import CATALOG_SCHEMA
from .discover import InputFile
from .errors import InputError
from .layout import CATALOG, INPUTS, LINEAGE, MANIFEST, PATCHES, REJECTED, VOLUMES
from .records import Selection
from .schemas import VolumeSchema
from .storage import HadoopFS, join
from .tables import columns, read

#: Every input file a run listed: an append run does not read those it has seen unchanged.
INPUTS_SCHEMA = StructType(
    [
        StructField("source_path", StringType(), False),
        StructField("size", LongType(), False),
        StructField("modified_ms", LongType(), False),
    ]
)


@dataclass(frozen=True)
class Previous:
    """The last complete run: its manifest, where it is, and the tables Spark joins with."""

    manifest: dict[str, Any]
    output: str
    catalog: DataFrame
    volumes: DataFrame | None
    patches: DataFrame | None

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
