"""The on-disk format and file access: what a dataset is, and how it is written and read.

:mod:`~sparkdl.store.layout` is the dataset handle and its folder names,
:mod:`~sparkdl.store.tables` declares every output table once (name, path, schema);
the Petastorm format lives in :mod:`~sparkdl.store.unischema`,
:mod:`~sparkdl.store.schema_pickle` and :mod:`~sparkdl.store.metadata`; datasets are
written by :mod:`~sparkdl.store.writer` and read by :mod:`~sparkdl.store.reader` (row groups
of a shard) and :mod:`~sparkdl.store.patch_batches` (whole batches of patches). Append runs
change tables file by file (:mod:`~sparkdl.store.table_files`); every path goes through
:mod:`~sparkdl.store.storage`.
"""
