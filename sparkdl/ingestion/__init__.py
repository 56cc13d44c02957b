"""The ingest job and its Spark stages, on the driver: inputs in, a published dataset out.

:mod:`~sparkdl.ingestion.job` runs the phases in order: list the inputs
(:mod:`~sparkdl.ingestion.discover`), read every unit on the executors
(:mod:`~sparkdl.ingestion.read_stage`, the per-unit work in :mod:`sparkdl.units`), assemble
volumes (:mod:`~sparkdl.ingestion.volume_stage`), place the LIDC readers' marks
(:mod:`~sparkdl.ingestion.lidc_stage`), cut patches (:mod:`~sparkdl.ingestion.patch_stage`),
resolve duplicates (:mod:`~sparkdl.ingestion.duplicates`), then publish atomically
(:mod:`~sparkdl.ingestion.publish`; the DICOM export is
:mod:`sparkdl.store.dicom_files`). Append runs build on
what an earlier run left (:mod:`~sparkdl.ingestion.incremental`); ``--watch`` runs them as
a stream (:mod:`~sparkdl.ingestion.watch`).
"""
