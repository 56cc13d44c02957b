"""What an earlier ingest left in ``OUT``: the state an append run builds on.

An append run needs to know which content was already accounted for (lineage and rejected
hashes), which SOP instances are cataloged (so a re-sent instance is a duplicate), and the
volume and patch rows of the series it does not touch (written again as they are).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from .errors import InputError
from .records import Selection
from .storage import HadoopFS, join, to_url


@dataclass(frozen=True)
class Previous:
    """The published tables of the last complete run (lazy DataFrames) and its manifest."""

    manifest: dict[str, Any]
    catalog: DataFrame
    rejected: DataFrame
    lineage: DataFrame
    volumes: DataFrame | None
    patches: DataFrame | None

    @classmethod
    def load(cls, spark: SparkSession, fs: HadoopFS, output: str) -> Previous | None:
        """None when ``output`` holds no complete dataset yet (the run then starts it)."""
        if not fs.exists(join(output, "manifest.json")):
            if fs.exists(join(output, "catalog")):
                raise InputError(
                    f"{output} holds tables but no manifest.json: an earlier run did not finish. "
                    "Run once with --mode overwrite to rebuild it."
                )
            return None
        manifest = json.loads(fs.read_text(join(output, "manifest.json")))

        def table(name: str) -> DataFrame | None:
            path = join(output, name)
            return spark.read.parquet(to_url(path)) if fs.exists(path) else None

        catalog, rejected, lineage = table("catalog"), table("_restricted/rejected"), table("_restricted/lineage")
        if catalog is None or rejected is None or lineage is None:
            raise InputError(f"{output}: catalog or _restricted tables are missing; rerun with --mode overwrite.")
        # The small tables are used several times in the run: keep them at hand.
        return cls(manifest, _cached(catalog), _cached(rejected), _cached(lineage),
                   table("volumes"), table("patches"))

    def selection(self) -> Selection:
        """Skip every unit whose content (or, without content, whose place) is known."""
        hashes = {r[0] for r in self.lineage.select("content_sha256").distinct().collect() if r[0]}
        hashes |= {r[0] for r in self.rejected.select("content_sha256").distinct().collect() if r[0]}
        keys = {(r["source_path"], r["member"]) for r in
                self.rejected.filter(F.col("content_sha256").isNull()).select("source_path", "member").collect()}
        return Selection(known_hashes=frozenset(hashes), known_keys=frozenset(keys))

    def without_series(self, name: str, series: set[str]) -> DataFrame | None:
        """Rows of ``volumes`` or ``patches`` outside ``series``.

        Read lazily: every write of the run goes to staging before the old tables are replaced.
        """
        frame = self.volumes if name == "volumes" else self.patches
        if frame is None:
            return None
        if series:
            frame = frame.filter(~F.col("series_uid").isin(sorted(series)))
        return frame


def _cached(frame: DataFrame) -> DataFrame:
    """Persist a table the run reads several times (memory, spilling to disk)."""
    from pyspark import StorageLevel

    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    frame.count()
    return frame
