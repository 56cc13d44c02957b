"""Series assembly: the CT slices of one series → HU volumes on a regular grid, or reasons.

Pure functions on arrays and records (no Spark): :mod:`~sparkdl.assembly.slices` screens,
groups and orders slices, :mod:`~sparkdl.assembly.stacks` stacks one group into HU on a
regular grid, :mod:`~sparkdl.assembly.series` runs both for a whole series.
"""
