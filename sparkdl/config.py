"""YAML configuration loaded into frozen, self-validating dataclasses.

Each section of a YAML file maps onto one frozen dataclass whose fields are the YAML keys.
:func:`from_mapping` does the checking once for all of them: unknown keys, wrong types and
out-of-range values raise :class:`~sparkdl.errors.ConfigError` naming the key
(``ingest.yaml: limits.max_member_bytes``), the received value and what is expected.
Dataclasses validate value ranges in ``__post_init__``; this module checks types.
Spark and GPU settings are not here: they stay Spark conf.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from sparkdl.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def from_mapping(cls: type[T], mapping: Mapping[str, Any] | None, *, where: str) -> T:
    """Build dataclass ``cls`` from ``mapping``, checking keys and value types.

    ``where`` names the place for messages, e.g. ``"ingest.yaml: limits"``.
    Missing keys take the dataclass defaults.
    """
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys to values. Received: {mapping!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}. "
            f"Expected one of: {', '.join(sorted(fields))}."
        )
    hints = typing.get_type_hints(cls)
    values = {
        name: _coerce(value, hints[name], f"{where}.{name}") for name, value in mapping.items()
    }
    try:
        return cls(**values)
    except (ConfigError, TypeError, ValueError) as err:  # a range check of __post_init__
        raise ConfigError(
            f"{where}: {err} Fix it in the config file or leave it out for the default."
        ) from err


def check_ranges(owner: object, checks: Iterable[tuple[str, bool, str]]) -> None:
    """Raise for the first ``(field, ok, expected)`` of ``owner`` whose ``ok`` is false.

    The ``__post_init__`` range checks of the config dataclasses; the message names the class,
    the field, what it must be and the value received.
    """
    for key, ok, expected in checks:
        if not ok:
            raise ConfigError(
                f"{type(owner).__name__}.{key} must be {expected}. Received: {key}="
                f"{getattr(owner, key)!r}."
            )


def _coerce(value: Any, hint: Any, key: str) -> Any:  # noqa: PLR0912 - a branch per hint kind
    """Check ``value`` against a simple type ``hint``.

    Handled: bool, int, float, str, tuples, unions and Literal.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: expected one of {list(args)}. Received: {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list. Received: {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} values. Received: {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false. Received: {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer. Received: {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number. Received: {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string. Received: {value!r}")
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # a nested section
        return from_mapping(hint, value, where=key)
    return value


def read_yaml(path: str | Path | None) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` (an empty mapping when ``path`` is None)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}. Pass an existing YAML file to --config.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level. Received: {type(data).__name__}"
        )
    return data
