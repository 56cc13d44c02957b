"""The Petastorm data model, owned by sparkdl: fields, codecs and a schema, without Petastorm.

A dataset sparkdl writes is a Petastorm dataset (DESIGN.md): Parquet files whose array cells
are the bytes of ``np.save(array)`` (Petastorm's ``NdarrayCodec``) and whose scalar cells are
plain Parquet values (``ScalarCodec``), described by a pickled ``Unischema`` in
``_common_metadata`` (:mod:`sparkdl.store.metadata`). This module is that data model:

* :class:`Field` has Petastorm's ``UnischemaField`` tuple layout
  ``(name, numpy_dtype, shape, codec, nullable)``;
* :class:`NdarrayCodec` and :class:`ScalarCodec` encode exactly as Petastorm's do;
* :class:`Schema` renders one declaration for the Spark write (:meth:`Schema.as_spark_schema`,
  :meth:`Schema.encode_row`), the stored metadata (:mod:`sparkdl.store.schema_pickle`) and the
  tf.data shapes (:attr:`Field.shape`).

Petastorm itself is unmaintained and cannot be imported on current pyarrow; its format lives
on here, and ``tests/interop/`` proves Petastorm 0.13.1 still reads what sparkdl writes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from pyspark.sql.types import DataType, StructType

#: Spark SQL type names a :class:`ScalarCodec` may carry (``pyspark.sql.types`` class names).
SCALAR_SPARK_TYPES = (
    "StringType",
    "BooleanType",
    "ByteType",
    "ShortType",
    "IntegerType",
    "LongType",
    "FloatType",
    "DoubleType",
)
_INTEGER_TYPES = ("ByteType", "ShortType", "IntegerType", "LongType")
_FLOAT_TYPES = ("FloatType", "DoubleType")


def _saved(value: npt.NDArray[Any]) -> bytearray:
    """The bytes ``np.save(value)`` writes, with one copy of the array.

    ``np.save`` into a ``BytesIO`` copied a whole CT about four times (chunks, the stream's
    growth, the result): about 0.3 s of a 512² series' task.
    """
    header = io.BytesIO()
    fields = np.lib.format.header_data_from_array_1_0(value)
    if fields["fortran_order"] or value.dtype.hasobject:
        np.save(header, value)  # rare: Fortran order, or object arrays (refused on load)
        return bytearray(header.getbuffer())
    np.lib.format.write_array_header_1_0(header, fields)
    start = header.tell()
    out = bytearray(start + value.nbytes)
    out[:start] = header.getbuffer()
    np.frombuffer(out, dtype=value.dtype, offset=start).reshape(value.shape)[...] = value
    return out


@dataclass(frozen=True)
class NdarrayCodec:
    """An array cell: the bytes of ``np.save(value)`` (Petastorm's ``NdarrayCodec``)."""

    def encode(self, field: Field, value: Any) -> bytearray:
        if not isinstance(value, np.ndarray):
            raise ValueError(
                f"Field {field.name!r} expects a numpy array of "
                f"{np.dtype(field.numpy_dtype)}. Received: {type(value).__name__}."
            )
        if value.dtype.type is not field.numpy_dtype:
            raise ValueError(
                f"Field {field.name!r} expects dtype {np.dtype(field.numpy_dtype)}. "
                f"Received: {value.dtype}."
            )
        if not _shape_fits(value.shape, field.shape):
            raise ValueError(
                f"Field {field.name!r} expects shape {field.shape} (None: any). "
                f"Received: {value.shape}."
            )
        return _saved(value)

    def decode(self, field: Field, value: bytes) -> npt.NDArray[Any]:
        # allow_pickle stays False: a cell can never run code.
        return np.asarray(np.load(io.BytesIO(value)))

    def spark_type_name(self) -> str:
        return "BinaryType"


@dataclass(frozen=True)
class ScalarCodec:
    """A scalar cell stored as the Parquet value of a Spark type (Petastorm's ``ScalarCodec``).

    ``spark_type`` is the class name of the ``pyspark.sql.types`` type, so that reading a
    dataset never imports pyspark.
    """

    spark_type: str

    def __post_init__(self) -> None:
        if self.spark_type not in SCALAR_SPARK_TYPES:
            raise ValueError(
                f"ScalarCodec spark_type must be one of {SCALAR_SPARK_TYPES}. "
                f"Received: {self.spark_type!r}."
            )

    def encode(self, field: Field, value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value.item()
        if self.spark_type in _INTEGER_TYPES:
            return int(value)
        if self.spark_type in _FLOAT_TYPES:
            return float(value)
        if self.spark_type == "BooleanType":
            return bool(value)
        if not isinstance(value, str):
            raise ValueError(
                f"Field {field.name!r} expects a string. Received: {type(value).__name__}."
            )
        return value

    def decode(self, field: Field, value: Any) -> Any:
        return field.numpy_dtype(value)

    def spark_type_name(self) -> str:
        return self.spark_type


Codec = NdarrayCodec | ScalarCodec


class Field(NamedTuple):
    """One column: Petastorm's ``UnischemaField`` layout, so pickles map one onto the other."""

    name: str
    numpy_dtype: type[np.generic]
    shape: tuple[int | None, ...]
    codec: Codec
    nullable: bool = False


class Schema:
    """An ordered set of :class:`Field` s with a name (Petastorm's ``Unischema``)."""

    def __init__(self, name: str, fields: Iterable[Field]) -> None:
        self.name = name
        self.fields: dict[str, Field] = {}
        for field in fields:
            if field.name in self.fields:
                raise ValueError(f"Schema {name!r} declares field {field.name!r} twice.")
            self.fields[field.name] = field

    def __repr__(self) -> str:
        return f"Schema({self.name!r}, {list(self.fields.values())!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Schema)
            and self.name == other.name
            and list(self.fields.values()) == list(other.fields.values())
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking class: unhashable, as Unischema

    def as_spark_schema(self) -> StructType:
        """The Spark ``StructType`` the encoded rows of :meth:`encode_row` fit."""
        from pyspark.sql.types import StructField, StructType

        return StructType(
            [
                StructField(f.name, spark_type(f.codec.spark_type_name()), f.nullable)
                for f in self.fields.values()
            ]
        )

    def encode_row(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The stored values of ``row`` in field order (Petastorm's ``dict_to_spark_row``).

        Every field must be present and no other key: a typo must not silently drop data.
        """
        missing = [name for name in self.fields if name not in row]
        extra = [name for name in row if name not in self.fields]
        if missing or extra:
            raise ValueError(
                f"A {self.name} row must hold exactly its fields. Missing: "
                f"{missing}; not in the schema: {extra}."
            )
        values: list[Any] = []
        for name, field in self.fields.items():
            value = row[name]
            if value is None:
                if not field.nullable:
                    raise ValueError(
                        f"Field {name!r} of {self.name} is not nullable. Received: None."
                    )
                values.append(None)
            else:
                values.append(field.codec.encode(field, value))
        return tuple(values)

    def decode_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Stored values (one row, by column name) decoded; other columns pass as they are."""
        decoded = {}
        for name, value in row.items():
            field = self.fields.get(name)
            decoded[name] = (
                field.codec.decode(field, value)
                if field is not None and value is not None
                else value
            )
        return decoded


def spark_type(name: str) -> DataType:
    """An instance of ``pyspark.sql.types.<name>`` (imported here, on the Spark side only)."""
    from pyspark.sql import types

    instance: DataType = getattr(types, name)()
    return instance


def _shape_fits(shape: Sequence[int], expected: Sequence[int | None]) -> bool:
    return len(shape) == len(expected) and all(e is None or e == s for s, e in zip(shape, expected))
