"""The Unischema pickle of ``_common_metadata``, written and read without Petastorm.

Petastorm stores a dataset's schema as ``pickle.dumps(unischema)`` and loads it through its
``RestrictedUnpickler`` (globals only from the modules petastorm, collections, numpy,
pyspark, decimal, builtins, copy_reg). For Petastorm to read sparkdl's datasets, the pickle
must name Petastorm's classes (``petastorm.unischema.Unischema`` ...), which sparkdl does not
import: :func:`dumps` therefore writes the few pickle opcodes of that object graph itself
(protocol 2, which every Python 3 unpickler reads), exactly the graph ``pickle.dumps`` gives
for a Petastorm ``Unischema``::

    Unischema.__new__()  BUILD {'_name': str, '_fields': OrderedDict(name -> field),
                                <name>: field ...}
    field = UnischemaField(name, numpy.<type>, shape, codec, nullable)
    codec = NdarrayCodec.__new__()  |  ScalarCodec.__new__() BUILD {'_spark_type': <Type>()}

:func:`loads` is the other direction, for pickles written by sparkdl, by Petastorm itself or
by earlier sparkdl versions: a restricted unpickler that maps exactly those classes onto
inert stand-ins and refuses every other global (never a plain ``pickle.loads``), then builds
a :class:`~sparkdl.store.unischema.Schema`.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from typing import Any

import numpy as np

from sparkdl.store.unischema import SCALAR_SPARK_TYPES, Field, NdarrayCodec, ScalarCodec, Schema

#: NumPy scalar types a field may hold (``numpy.<name>`` in the pickle).
NUMPY_TYPES = (
    "bool_",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "str_",
    "bytes_",
)
#: NumPy 1.x spellings found in older pickles, and what they are now.
_NUMPY_ALIASES = {"string_": "bytes_", "unicode_": "str_", "bool8": "bool_"}

_UNISCHEMA = ("petastorm.unischema", "Unischema")
_FIELD = ("petastorm.unischema", "UnischemaField")
_NDARRAY = ("petastorm.codecs", "NdarrayCodec")
_SCALAR = ("petastorm.codecs", "ScalarCodec")
_ORDERED_DICT = ("collections", "OrderedDict")


class SchemaPickleError(ValueError):
    """The stored schema is not a Petastorm Unischema sparkdl can read."""


# --- writing ------------------------------------------------------------------------------------


def dumps(schema: Schema) -> bytes:
    """``schema`` as the pickle of the equivalent Petastorm ``Unischema``."""
    out = io.BytesIO()
    out.write(b"\x80\x02")  # PROTO 2
    _new_object(out, _UNISCHEMA)
    out.write(b"}(")  # EMPTY_DICT, MARK: the instance __dict__
    _str(out, "_name")
    _str(out, schema.name)
    _str(out, "_fields")
    _global(out, _ORDERED_DICT)
    out.write(b")R(")  # EMPTY_TUPLE, REDUCE: OrderedDict(); MARK
    for field in schema.fields.values():
        _str(out, field.name)
        _field(out, field)
    out.write(b"u")  # SETITEMS into the OrderedDict
    for field in schema.fields.values():  # Unischema's attribute per field
        _str(out, field.name)
        _field(out, field)
    out.write(b"ub.")  # SETITEMS, BUILD, STOP
    return out.getvalue()


def _field(out: io.BytesIO, field: Field) -> None:
    dtype_name = np.dtype(field.numpy_dtype).type.__name__
    if dtype_name not in NUMPY_TYPES:
        raise SchemaPickleError(
            f"Field {field.name!r}: numpy type {dtype_name} cannot be stored. "
            f"Expected one of {NUMPY_TYPES}."
        )
    _global(out, _FIELD)
    out.write(b"(")  # MARK: the NEWOBJ arguments
    _str(out, field.name)
    _global(out, ("numpy", dtype_name))
    out.write(b"(")
    for size in field.shape:
        if size is None:
            out.write(b"N")
        else:
            out.write(b"J" + struct.pack("<i", int(size)))  # BININT
    out.write(b"t")  # TUPLE: the shape
    if isinstance(field.codec, NdarrayCodec):
        _new_object(out, _NDARRAY)
    else:
        _new_object(out, _SCALAR)
        out.write(b"}")
        _str(out, "_spark_type")
        _new_object(out, ("pyspark.sql.types", field.codec.spark_type))
        if field.codec.spark_type == "StringType":  # pyspark >= 4 StringType state
            out.write(b"}")
            _str(out, "collation")
            _str(out, "UTF8_BINARY")
            out.write(b"sb")  # SETITEM, BUILD
        out.write(b"sb")
    out.write(b"\x88" if field.nullable else b"\x89")  # NEWTRUE / NEWFALSE
    out.write(b"t\x81")  # TUPLE, NEWOBJ


def _new_object(out: io.BytesIO, name: tuple[str, str]) -> None:
    _global(out, name)
    out.write(b")\x81")  # EMPTY_TUPLE, NEWOBJ: cls.__new__(cls)


def _global(out: io.BytesIO, name: tuple[str, str]) -> None:
    out.write(b"c" + name[0].encode("ascii") + b"\n" + name[1].encode("ascii") + b"\n")


def _str(out: io.BytesIO, text: str) -> None:
    data = text.encode("utf-8")
    out.write(b"X" + struct.pack("<I", len(data)) + data)  # BINUNICODE


# --- reading ------------------------------------------------------------------------------------


class _Stored:
    """An inert stand-in for one allowed Petastorm or pyspark class: keeps its name and state."""

    def __init__(self, module: str, name: str, args: tuple[Any, ...] = ()) -> None:
        self.qualified = (module, name)
        self.args = args
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) form
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise SchemaPickleError(
                f"{'.'.join(self.qualified)} has state of type "
                f"{type(state).__name__}; expected a dict."
            )
        self.state.update(state)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a Unischema pickle holds; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "numpy":
            name = _NUMPY_ALIASES.get(name, name)
            if name in NUMPY_TYPES:
                return getattr(np, name)
        elif (module, name) == _ORDERED_DICT:
            return OrderedDict
        elif (module, name) in (_UNISCHEMA, _FIELD, _NDARRAY, _SCALAR) or (
            module == "pyspark.sql.types" and name in (*SCALAR_SPARK_TYPES, "BinaryType")
        ):
            return _stored_type(module, name)
        raise SchemaPickleError(
            f"The stored schema refers to {module}.{name}, which a Petastorm "
            "Unischema of NdarrayCodec/ScalarCodec fields never holds: "
            "refused (the pickle is not loaded)."
        )


def _stored_type(module: str, name: str) -> type:
    """A stand-in class whose NEWOBJ (``cls.__new__(cls, *args)``) and REDUCE (``cls(*args)``)
    both make a :class:`_Stored`, never an instance of anything real."""

    def make(cls: type, *args: Any) -> _Stored:
        return _Stored(module, name, args)

    return type(name, (), {"__new__": make, "__module__": __name__})


def loads(data: bytes) -> Schema:
    """The :class:`Schema` stored in a Unischema pickle, through the restricted unpickler."""
    try:
        root = _RestrictedUnpickler(io.BytesIO(data)).load()
    except SchemaPickleError:
        raise
    except Exception as error:  # noqa: BLE001 - any malformed stream
        raise SchemaPickleError(f"The stored schema is not a readable pickle ({error}).") from None
    if not isinstance(root, _Stored) or root.qualified != _UNISCHEMA:
        raise SchemaPickleError(
            f"The stored schema is a {type(root).__name__}, not a petastorm.unischema.Unischema."
        )
    name, fields = root.state.get("_name"), root.state.get("_fields")
    if not isinstance(name, str) or not isinstance(fields, dict):
        raise SchemaPickleError("The stored Unischema has no _name/_fields.")
    return Schema(name, [_to_field(stored) for stored in fields.values()])


def _to_field(stored: Any) -> Field:
    if not isinstance(stored, _Stored) or stored.qualified != _FIELD or len(stored.args) < 3:
        raise SchemaPickleError("A stored Unischema field is not a petastorm UnischemaField.")
    name, numpy_dtype, shape = stored.args[:3]
    codec = stored.args[3] if len(stored.args) > 3 else None
    nullable = bool(stored.args[4]) if len(stored.args) > 4 else False
    if (
        not isinstance(name, str)
        or not isinstance(numpy_dtype, type)
        or not isinstance(shape, tuple)
    ):
        raise SchemaPickleError(f"Stored field {name!r} is malformed (name, numpy type, shape).")
    return Field(name, numpy_dtype, shape, _to_codec(name, codec), nullable)


def _to_codec(field_name: str, stored: Any) -> NdarrayCodec | ScalarCodec:
    if isinstance(stored, _Stored) and stored.qualified == _NDARRAY:
        return NdarrayCodec()
    if isinstance(stored, _Stored) and stored.qualified == _SCALAR:
        spark = stored.state.get("_spark_type")
        if isinstance(spark, _Stored) and spark.qualified[1] in SCALAR_SPARK_TYPES:
            return ScalarCodec(spark.qualified[1])
    kind = ".".join(stored.qualified) if isinstance(stored, _Stored) else type(stored).__name__
    raise SchemaPickleError(
        f"Field {field_name!r} uses codec {kind}; sparkdl reads NdarrayCodec "
        "and ScalarCodec fields only."
    )
