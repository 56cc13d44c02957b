"""The labels of an ingest run, and the patch stage they drive.

Which points patches are cut around (the label sources merged into one positive per nodule,
:func:`sparkdl.ingestion.patch_stage.load_points`), the findings FROC evaluation matches
against (``findings/``), and whether and how candidates are generated in every volume
(:mod:`sparkdl.ingestion.candidate_stage`); then the patch stage itself.
"""

from __future__ import annotations

import uuid
from dataclasses import fields
from typing import Any

from sparkdl.candidates import CandidateOptions
from sparkdl.ingestion.candidate_stage import Excluded, Generation
from sparkdl.ingestion.incremental import Rebuild
from sparkdl.ingestion.lidc_stage import LidcResult
from sparkdl.ingestion.patch_stage import (
    AppendScope,
    build_patches,
    excluded_rows,
    findings_rows,
    load_points,
)
from sparkdl.ingestion.run import Run
from sparkdl.store.storage import join, to_url
from sparkdl.store.table_files import columns
from sparkdl.store.tables import CANDIDATES, FINDINGS, FINDINGS_SCHEMA, PATCHES, VOLUMES


def stage_patches(run: Run, plan: Rebuild, lidc: LidcResult | None) -> dict[str, Any]:
    """Stage the patches around the labelled points (none without labels); what was cut.

    The points are those of the annotations/candidates CSVs and the positive nodules of the
    LIDC read messages among the inputs.
    """
    generation = _generation(run, lidc)
    if not run.labels and not (lidc and lidc.points) and generation is None:
        return {}
    scope = (
        None
        if run.previous is None
        else AppendScope(
            keep=plan.keep_patches,
            only_series=frozenset(plan.touched),
            other_volumes=run.previous.volume_series() - plan.touched,
            keep_candidates=plan.keep_candidates,
        )
    )
    points = load_points(run.labels, run.key, lidc.points if lidc is not None else None)
    findings = findings_rows(
        points, run.labels, run.key, lidc.excluded if lidc is not None else None
    )
    if run.previous is not None and findings:
        findings += _earlier_findings(run, {row[0] for row in findings})
    if findings:
        run.spark.createDataFrame(findings, FINDINGS_SCHEMA).coalesce(1).write.parquet(
            run.staged(FINDINGS)
        )
    return build_patches(
        run.spark,
        run.staged(VOLUMES),
        points,
        run.config.patches,
        run.key,
        run.staged(PATCHES),
        scope,
        generation,
    )


def _generation(run: Run, lidc: LidcResult | None) -> Generation | None:
    """What the patch tasks need to generate candidates, when this run generates them."""
    options = run.config.candidates
    if not options.wanted(run.labels.candidates):
        return None
    base = CandidateOptions(**{f.name: getattr(options, f.name) for f in fields(CandidateOptions)})
    patches = run.config.patches
    return Generation(
        options=base,
        folder=to_url(run.staged(CANDIDATES)),
        prefix=uuid.uuid4().hex[:8],
        labelled_all=run.labels.annotations is not None,
        labelled=frozenset(lidc.points) | frozenset(lidc.excluded) if lidc else frozenset(),
        excluded=_excluded(run, lidc),
        fractions=patches.fractions,
    )


def _excluded(run: Run, lidc: LidcResult | None) -> Excluded:
    """The findings generated negatives must not sit on, per series (see candidate_stage)."""
    excluded: Excluded = {}
    for series, x, y, z, diameter, _ in excluded_rows(run.labels, run.key):
        excluded.setdefault(series, []).append((x, y, z, diameter))
    for series, found in (lidc.excluded if lidc else {}).items():
        excluded.setdefault(series, []).extend(found)
    return excluded


def _earlier_findings(run: Run, series: set[str]) -> list[tuple[Any, ...]]:
    """The published findings of the series this append run names none of (its own rows
    replace the others')."""
    published = columns(join(run.output, FINDINGS), FINDINGS_SCHEMA.fieldNames())
    if published is None:
        return []
    return [tuple(row.values()) for row in published.to_pylist() if row["series_uid"] not in series]
