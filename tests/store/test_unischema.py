"""The Petastorm data model sparkdl owns: fields, codecs, rows and the Unischema pickle."""

from __future__ import annotations

import io
import pickle
import pickletools

import numpy as np
import pytest

from sparkdl.store.schema_pickle import SchemaPickleError, dumps, loads
from sparkdl.store.tables import VolumeSchema, patch_schema
from sparkdl.store.unischema import Field, NdarrayCodec, ScalarCodec, Schema


def _globals(data: bytes) -> set[str]:
    """Every ``module name`` global a pickle names (GLOBAL opcodes, as written by dumps)."""
    return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


def test_pickle_round_trip_and_names_petastorms_classes() -> None:
    for schema in (VolumeSchema, patch_schema(32)):
        data = dumps(schema)
        assert loads(data) == schema
        names = _globals(data)
        assert {
            "petastorm.unischema.Unischema",
            "petastorm.unischema.UnischemaField",
            "petastorm.codecs.NdarrayCodec",
            "collections.OrderedDict",
        } <= names
        # Petastorm's RestrictedUnpickler allows only these packages.
        allowed = {"petastorm", "collections", "numpy", "pyspark", "decimal", "builtins"}
        assert {name.split(".")[0] for name in names} <= allowed


def test_plain_pickle_cannot_load_it_without_petastorm() -> None:
    with pytest.raises(ModuleNotFoundError, match="petastorm"):
        pickle.loads(dumps(VolumeSchema))


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(print),
        pickle.dumps(eval),
        b"cos\nsystem\n(S'echo pwned'\ntR.",
    ],
)
def test_restricted_unpickler_refuses_other_globals(payload: bytes) -> None:
    with pytest.raises(SchemaPickleError, match="refused"):
        loads(payload)


@pytest.mark.parametrize("payload", [b"", b"\x80\x02", b"not a pickle", pickle.dumps([1, 2])])
def test_malformed_pickles_are_reported(payload: bytes) -> None:
    with pytest.raises(SchemaPickleError):
        loads(payload)


def test_numpy_1_spellings_of_old_pickles_map_to_numpy_2() -> None:
    data = dumps(Schema("S", [Field("name", np.str_, (), ScalarCodec("StringType"))]))
    old = data.replace(b"cnumpy\nstr_\n", b"cnumpy\nunicode_\n")
    assert old != data
    assert loads(old).fields["name"].numpy_dtype is np.str_


def test_encode_row_checks_keys_dtypes_and_shapes() -> None:
    schema = patch_schema(4)
    row = {
        "patch_id": "p",
        "series_uid": "s",
        "patient_id": "q",
        "patch": np.zeros((4, 4, 4), np.int16),
        "label": 1,
        "malignancy": -1,
        "diameter_mm": np.float32(3.5),
        "center": np.zeros(3),
        "source": "annotation",
        "sources": "annotations",
        "split": "train",
    }
    stored = schema.encode_row(row)
    assert len(stored) == len(schema.fields)
    patch = np.load(io.BytesIO(bytes(stored[3])))
    assert patch.dtype == np.int16 and patch.shape == (4, 4, 4)
    assert schema.decode_row(dict(zip(schema.fields, stored)))["label"] == np.int32(1)
    with pytest.raises(ValueError, match="Missing: \\['split'\\]"):
        schema.encode_row({k: v for k, v in row.items() if k != "split"})
    with pytest.raises(ValueError, match="not in the schema: \\['extra'\\]"):
        schema.encode_row({**row, "extra": 1})
    with pytest.raises(ValueError, match="expects dtype int16"):
        schema.encode_row({**row, "patch": np.zeros((4, 4, 4), np.float32)})
    with pytest.raises(ValueError, match="expects shape"):
        schema.encode_row({**row, "patch": np.zeros((4, 4, 5), np.int16)})
    with pytest.raises(ValueError, match="expects a string"):
        schema.encode_row({**row, "split": 3})
    with pytest.raises(ValueError, match="not nullable"):
        schema.encode_row({**row, "label": None})


def test_spark_schema_types() -> None:
    spark_schema = VolumeSchema.as_spark_schema()
    types = {f.name: type(f.dataType).__name__ for f in spark_schema.fields}
    assert types["volume"] == "BinaryType" and types["series_uid"] == "StringType"
    assert types["num_slices"] == "IntegerType"
    with pytest.raises(ValueError, match="spark_type"):
        ScalarCodec("MapType")
    with pytest.raises(ValueError, match="twice"):
        Schema("S", [Field("a", np.int32, (), NdarrayCodec())] * 2)


@pytest.mark.parametrize(
    "value",
    [
        np.arange(24, dtype=np.int16).reshape(2, 3, 4),
        np.arange(24, dtype=np.int16).reshape(2, 3, 4)[:, ::2],  # not contiguous
        np.asfortranarray(np.arange(15, dtype=np.float32).reshape(3, 5)),
        np.zeros((0, 3), np.uint8),
        np.ones((2, 2), ">i2"),
        np.array(5, np.int64),
    ],
    ids=["c_order", "strided", "fortran", "empty", "big_endian", "scalar"],
)
def test_array_cells_are_the_bytes_np_save_writes(value: np.ndarray) -> None:
    """Petastorm readers load cells with np.load: the bytes must stay np.save's."""
    expected = io.BytesIO()
    np.save(expected, value)
    field = Field("a", value.dtype.type, (None,) * value.ndim, NdarrayCodec())
    assert bytes(NdarrayCodec().encode(field, value)) == expected.getvalue()
