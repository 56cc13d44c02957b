"""Patch batches from Parquet cells: vectorised NdarrayCodec decoding, the HU window, and the
batch assembler's buffers."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest

from sparkdl.store.patch_batches import decode_ndarray_cells


def _cells(arrays: list[np.ndarray]) -> pa.Array:
    buffers = []
    for array in arrays:
        memfile = io.BytesIO()
        np.save(memfile, array)
        buffers.append(memfile.getvalue())
    return pa.array(buffers, type=pa.binary())


def test_decode_whole_column_and_fallback() -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(-1024, 3000, (4, 5, 6), dtype=np.int16) for _ in range(7)]
    cells = _cells(arrays)
    np.testing.assert_array_equal(
        decode_ndarray_cells(cells, (4, 5, 6), np.int16), np.stack(arrays)
    )
    # A slice has a non-zero offset into the same buffers.
    np.testing.assert_array_equal(
        decode_ndarray_cells(cells.slice(2, 3), (4, 5, 6), np.int16), np.stack(arrays[2:5])
    )
    # Fortran order and big-endian cells cannot be viewed: decoded one by one, still right.
    odd = [np.asfortranarray(arrays[0]), arrays[1].astype(">i2"), arrays[2]]
    with pytest.warns(RuntimeWarning, match="one by one"):
        decoded = decode_ndarray_cells(_cells(odd), (4, 5, 6), np.int16)
    np.testing.assert_array_equal(decoded, np.stack(arrays[:3]))
    assert decode_ndarray_cells(cells.slice(0, 0), (4, 5, 6), np.int16).shape == (0, 4, 5, 6)


def test_decode_chunked_column_without_combining() -> None:
    rng = np.random.default_rng(1)
    arrays = [rng.integers(-1024, 3000, (2, 3, 4), dtype=np.int16) for _ in range(5)]
    chunked = pa.chunked_array([_cells(arrays[:2]), _cells(arrays[2:])])
    np.testing.assert_array_equal(
        decode_ndarray_cells(chunked, (2, 3, 4), np.int16), np.stack(arrays)
    )
    single = pa.chunked_array([_cells(arrays)])
    decoded = decode_ndarray_cells(single, (2, 3, 4), np.int16)
    np.testing.assert_array_equal(decoded, np.stack(arrays))
    values = single.chunk(0).buffers()[2]  # a single chunk is viewed in place, not copied
    assert values.address <= decoded.ctypes.data < values.address + values.size


@pytest.mark.parametrize(
    "window",
    [(-600.0, 1500.0), (40.0, 401.0), (0.25, 3.5), (40.5, 400.0), (0.0, 70000.0), (-600.3, 1500.7)],
)
def test_hu_window_matches_the_formula(window: tuple[float, float]) -> None:
    from sparkdl.store.patch_batches import HuWindow

    hu = np.arange(-32768, 32768, dtype=np.int16).reshape(16, 64, 64)
    out = np.empty(hu.shape, dtype=np.float32)
    HuWindow(*window, hu.shape, np.dtype(np.int16))(hu, out)
    low = window[0] - window[1] / 2
    expected = np.clip((hu.astype(np.float64) - low) / window[1], 0.0, 1.0)
    np.testing.assert_allclose(out, expected, atol=2e-7)
    assert out.min() == (0.0 if expected.min() == 0 else np.float32(expected.min()))
    assert out.max() == (1.0 if expected.max() == 1 else np.float32(expected.max()))


def test_batch_assembler_rows_once_and_buffers_reused_only_when_free() -> None:
    from sparkdl.store.patch_batches import BatchAssembler, HuWindow

    shape = (2, 2, 2)
    window = HuWindow(0.0, 2000.0, shape, np.dtype(np.int16))
    chunks = [
        np.arange(n, dtype=np.int16).repeat(8).reshape(n, *shape) + 100 * k
        for k, n in enumerate([7, 3, 11, 5])
    ]
    assembler = BatchAssembler(4, 9, np.random.default_rng(0), window, shape, max_buffers=2)
    batches = []
    for chunk in chunks:
        batches += [(x, y) for x, y in assembler.add(chunk, chunk[:, 0, 0, 0].astype(np.int32))]
    batches += list(assembler.drain())
    assert [len(y) for _, y in batches] == [4] * 6 + [2]
    labels = np.concatenate([y for _, y in batches])
    stored = np.concatenate([chunk[:, 0, 0, 0] for chunk in chunks])
    assert sorted(labels.tolist()) == sorted(stored.tolist())
    for x, y in batches:  # every batch kept: none was overwritten by a later one
        assert x.shape[1:] == (*shape, 1) and x.ctypes.data % 64 == 0
        np.testing.assert_allclose(x[:, 0, 0, 0, 0], (y + 1000.0) / 2000.0, atol=1e-6)
    # Batches dropped as soon as they are read: their two buffers are reused.
    pointers = set()
    assembler = BatchAssembler(4, 9, None, window, shape, max_buffers=2)
    for chunk in chunks:
        for x, _ in assembler.add(chunk, chunk[:, 0, 0, 0].astype(np.int32)):
            pointers.add(x.ctypes.data)
            del x
    assert len(pointers) == 2
