"""Patches cut from HU volumes around labelled points (pure arrays, no Spark).

:mod:`~sparkdl.patches.extract` holds the options, the patch rows and negative sampling;
:mod:`~sparkdl.patches.grid` cuts many patches of one volume in one pass.
"""
