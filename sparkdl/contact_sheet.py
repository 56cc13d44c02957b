"""The contact sheet of ``sparkdl inspect``: a PNG to look at what an ingest output holds.

:mod:`sparkdl.inspection` offers every patch row to a few :class:`Sample` s while it counts,
and keeps where each volume row lives; :func:`draw_sheet` then reads only the array cells of
the rows it draws. The sheet shows the central slice of a few positive and negative patches,
and for a few volumes the slice through an annotated nodule centre, each with the centre
marked. Slices are taken across the volume's slice index axis (the acquired plane: axial for
an axial series), in a lung window.
"""

from __future__ import annotations

import hashlib
import heapq
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sparkdl import geometry
from sparkdl.geometry import Geometry
from sparkdl.store.tables import LUNG_WINDOW, VolumeSchema

_LEVEL, _WIDTH = LUNG_WINDOW
#: Display range of the lung window (HU).
LUNG_WINDOW_HU = (_LEVEL - _WIDTH / 2, _LEVEL + _WIDTH / 2)


@dataclass
class Location:
    """Where one row lives: a Parquet file, a row group and the row within it."""

    path: str
    row_group: int
    row: int


@dataclass
class VolumeRow:
    """The small fields of a ``volumes/`` row, and where its ``volume`` cell is."""

    series_uid: str
    volume_id: str
    spacing: npt.NDArray[np.float64]
    origin: npt.NDArray[np.float64]
    direction: npt.NDArray[np.float64]
    num_slices: int
    where: Location


@dataclass
class PatchPick:
    """A patch row chosen for the sheet (small fields only)."""

    patch_id: str
    series_uid: str
    label: int
    malignancy: int
    source: str
    split: str
    center: npt.NDArray[np.float64]
    where: Location


@dataclass
class Sample:
    """The ``k`` rows with the smallest hash of their id: deterministic, order-free, bounded."""

    k: int
    heap: list[tuple[int, int, PatchPick]] = field(default_factory=list)
    _seen: int = 0

    def offer(self, pick: PatchPick) -> None:
        if self.k <= 0:
            return
        priority = -int.from_bytes(hashlib.sha256(pick.patch_id.encode()).digest()[:8], "big")
        self._seen += 1
        item = (priority, self._seen, pick)
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, item)
        elif priority > self.heap[0][0]:
            heapq.heapreplace(self.heap, item)

    def picks(self) -> list[PatchPick]:
        return [item[2] for item in sorted(self.heap, key=lambda item: (-item[0], item[1]))]


@dataclass
class _Panel:
    image: npt.NDArray[Any]  # 2-D HU, (row, column)
    marker_xy: tuple[float, float] | None  # (column, row), pixel centres at integers
    aspect: float  # row spacing / column spacing
    title: str
    info: dict[str, Any]


def draw_sheet(
    fs: pafs.FileSystem,
    patch_picks: list[PatchPick],
    annotated: list[PatchPick],
    volumes: list[VolumeRow],
    max_items: int,
) -> tuple[bytes, list[dict[str, Any]]] | None:
    """PNG bytes and what each panel shows, or None when there is nothing to draw.

    Panels: ``patch_picks``; then up to ``max_items`` volumes, each sliced through the centre
    of one of ``annotated`` that it contains (annotations before candidates); without any
    patches, the middle slice of the first ``max_items`` volumes.
    """
    panels = _choose_panels(fs, patch_picks, annotated, volumes, max_items)
    if not panels:
        return None
    return _render(panels), [panel.info for panel in panels]


def _read_cell(fs: pafs.FileSystem, where: Location, column: str) -> npt.NDArray[Any]:
    """One ``NdarrayCodec`` cell (``volume`` or ``patch``: any shape) as an array."""
    with fs.open_input_file(where.path) as handle:
        table = pq.ParquetFile(handle).read_row_group(where.row_group, columns=[column])
    ndarray_field = VolumeSchema.fields["volume"]  # every NdarrayCodec cell decodes alike
    cell = table.column(column)[where.row].as_py()
    return np.asarray(ndarray_field.codec.decode(ndarray_field, cell))


def _plane(direction: npt.NDArray[np.float64]) -> str:
    """Name of the plane across the slice index axis (``direction`` column 2 is its normal)."""
    normal = np.asarray(direction, dtype=np.float64).reshape(3, 3)[:, 2]
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def _short(uid: str) -> str:
    return "…" + uid[-6:]


def _choose_panels(
    fs: pafs.FileSystem,
    patch_picks: list[PatchPick],
    annotated: list[PatchPick],
    volumes: list[VolumeRow],
    max_items: int,
) -> list[_Panel]:
    panels = [_patch_panel(fs, pick) for pick in patch_picks]
    by_series: dict[str, list[VolumeRow]] = {}
    for volume in volumes:
        by_series.setdefault(volume.series_uid, []).append(volume)
    drawn: set[str] = set()
    # Annotations first: their centres are the nodules a reader wants to see.
    for pick in sorted(annotated, key=lambda p: p.source != "annotation"):
        if len(drawn) >= max_items:
            break
        for volume in by_series.get(pick.series_uid, []):
            index = Geometry.of(volume).to_voxel(pick.center)
            if (
                volume.volume_id not in drawn
                and index[0] > -0.5
                and index[0] < volume.num_slices - 0.5
            ):
                panels.append(_volume_panel(fs, volume, pick))
                drawn.add(volume.volume_id)
                break
    if not patch_picks and not annotated:  # no patches: the middle slice of a few volumes
        for volume in volumes[:max_items]:
            panels.append(_volume_panel(fs, volume, None))
    return panels


def _patch_panel(fs: pafs.FileSystem, pick: PatchPick) -> _Panel:
    patch = _read_cell(fs, pick.where, "patch")
    size = patch.shape[0]
    # The centre lies at index (size - 1) / 2: between the two middle slices when size is even.
    middle = patch[(size - 1) // 2 : size // 2 + 1].astype(np.float32).mean(axis=0)
    marker = ((patch.shape[2] - 1) / 2.0, (patch.shape[1] - 1) / 2.0)
    kind = "nodule" if pick.label == 1 else "not nodule"
    info = {
        "kind": "patch",
        "patch_id": pick.patch_id,
        "series_uid": pick.series_uid,
        "label": pick.label,
        "malignancy": pick.malignancy,
        "source": pick.source,
        "split": pick.split,
        "image_shape": list(middle.shape),
        "marker_xy": list(marker),
    }
    return _Panel(
        middle, marker, 1.0, f"{kind} ({pick.source})\n{pick.split} {_short(pick.series_uid)}", info
    )


def _volume_panel(fs: pafs.FileSystem, volume: VolumeRow, pick: PatchPick | None) -> _Panel:
    array = _read_cell(fs, volume.where, "volume")
    marker: tuple[float, float] | None = None
    hu_at_marker = None
    if pick is None:
        k = array.shape[0] // 2
    else:
        z, y, x = Geometry.of(volume).to_voxel(pick.center)
        k = int(np.clip(round(float(z)), 0, array.shape[0] - 1))
        marker = (float(x), float(y))
        if geometry.is_inside((k, y, x), array.shape):
            row, column = (
                int(np.clip(round(float(v)), 0, n - 1)) for v, n in zip((y, x), array.shape[1:])
            )
            hu_at_marker = int(array[k, row, column])
    image = np.array(array[k])
    del array
    plane = _plane(volume.direction)
    info = {
        "kind": "volume",
        "volume_id": volume.volume_id,
        "series_uid": volume.series_uid,
        "plane": plane,
        "slice_index": k,
        "image_shape": list(image.shape),
        "marker_xy": list(marker) if marker else None,
        "hu_at_marker": hu_at_marker,
        "patch_id": pick.patch_id if pick else None,
    }
    aspect = float(volume.spacing[1] / volume.spacing[2])
    return _Panel(
        image,
        marker,
        aspect,
        f"{plane} slice {k}/{volume.num_slices}\n{_short(volume.series_uid)}",
        info,
    )


def _render(panels: list[_Panel]) -> bytes:
    """PNG bytes: patches on the first row, volume slices on the second, lung window."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    rows = [
        [p for p in panels if p.info["kind"] == "patch"],
        [p for p in panels if p.info["kind"] == "volume"],
    ]
    rows = [row for row in rows if row]
    num_columns = max(len(row) for row in rows)
    # 3.2 × 3.6 inches a panel at 100 dpi: titles of 11 px, readable without zooming.
    figure = Figure(figsize=(3.2 * num_columns, 3.6 * len(rows)), dpi=100)
    axes = figure.subplots(len(rows), num_columns, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(num_columns):
            ax = axes[r][c]
            ax.set_axis_off()
            if c >= len(row):
                continue
            panel = row[c]
            ax.imshow(
                panel.image,
                cmap="gray",
                vmin=LUNG_WINDOW_HU[0],
                vmax=LUNG_WINDOW_HU[1],
                aspect=panel.aspect,
                interpolation="nearest",
            )
            if panel.marker_xy is not None:
                ax.set_autoscale_on(False)  # a mark off the image must not rescale it
                x, y = panel.marker_xy
                ax.plot(
                    [x],
                    [y],
                    marker="o",
                    markersize=14,
                    markerfacecolor="none",
                    markeredgecolor="red",
                    markeredgewidth=1.2,
                )
                ax.plot([x], [y], marker="+", markersize=6, color="red", markeredgewidth=1.0)
            ax.set_title(panel.title, fontsize=11)
    figure.suptitle(
        f"sparkdl inspect: lung window (W{_WIDTH:g}/L{_LEVEL:g}), centre marked in red",
        fontsize=13,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
