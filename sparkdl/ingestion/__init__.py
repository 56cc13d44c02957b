"""The ingest job and its Spark stages, on the driver: inputs in, a published dataset out.

:mod:`~sparkdl.ingestion.job` runs the phases in order: list the inputs
(:mod:`~sparkdl.ingestion.discover`), read every unit on the executors
(:mod:`~sparkdl.ingestion.read_stage`, the per-unit work in :mod:`sparkdl.units`), assemble
volumes (:mod:`~sparkdl.ingestion.volume_stage`), place the LIDC readers' marks
(:mod:`~sparkdl.ingestion.lidc_stage`), cut patches (:mod:`~sparkdl.ingestion.patch_stage`),
export DICOM (:mod:`~sparkdl.ingestion.export`), then publish atomically
(:mod:`~sparkdl.ingestion.publish`, :mod:`~sparkdl.ingestion.commit`). Append runs build on
what an earlier run left (:mod:`~sparkdl.ingestion.incremental`); ``--watch`` runs them as
a stream (:mod:`~sparkdl.ingestion.watch`).
"""
