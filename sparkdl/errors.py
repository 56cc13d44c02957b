"""The exception tree of sparkdl.

Every error the library raises on purpose derives from :class:`SparkdlError`, so a pipeline
can catch one type. Messages say what happened, what was received, what was expected and how
to fix it; they never carry PHI or the de-identification key.
"""

from __future__ import annotations


class SparkdlError(Exception):
    """Base class of every error raised by sparkdl."""


class ConfigError(SparkdlError, ValueError):
    """A configuration value (YAML key, CLI flag or Spark conf) is missing or invalid."""


class DeidKeyError(SparkdlError):
    """The de-identification key is missing, unreadable or too short."""


class InputError(SparkdlError):
    """An input path or dataset cannot be used (missing, empty, wrong layout)."""


class TrainingError(SparkdlError):
    """Distributed training cannot start or failed (Spark slots, GPUs, TLS, rendezvous)."""


class DataError(InputError, ValueError):
    """The rows or columns of a table passed in cannot be used (missing column, NaN, …)."""
