"""Distributed training on Spark: one barrier task per TF worker.

:mod:`~sparkdl.training.job` plans the job on the driver and runs it through
:mod:`~sparkdl.training.runner` (barrier tasks, ``TF_CONFIG``, GPUs; each worker in a fresh
process, :mod:`~sparkdl.training.process`, after :mod:`~sparkdl.training.probe` checked the
executors); each worker runs :mod:`~sparkdl.training.worker` on its shard
(:mod:`~sparkdl.training.sharding`) read as ``tf.data`` (:mod:`~sparkdl.training.tfdata`),
with a model of the zoo (:mod:`~sparkdl.training.models`) or the user's own.
"""
