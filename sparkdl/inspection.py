"""What an ingest output holds: counts, histograms, warnings, and a contact sheet to look at.

:func:`inspect_dataset` reads ``OUT/manifest.json`` and the small columns of ``catalog/``,
``volumes/`` and ``patches/`` with pyarrow, one row group at a time, so memory stays flat
however big the dataset is. Array cells (``volume``, ``patch``) are read and decoded only for
the few rows drawn on the sheet. No Spark is needed.

The sheet (``OUT/inspect.png`` by default) shows the central slice of a few positive and
negative patches, and for a few volumes the slice through an annotated nodule centre, each
with the centre marked. Slices are taken across the volume's slice index axis (the acquired
plane: axial for an axial series), in a lung window.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import geometry
from .errors import InputError
from .schemas import VolumeSchema
from .storage import is_local, local_path, write_bytes

logger = logging.getLogger(__name__)

#: Lung window (level -600 HU, width 1500 HU).
LUNG_WINDOW_HU = (-1350.0, 150.0)
_CATALOG_COLUMNS = ["Modality", "sop_class_name", "volume_status", "volume_reason", "volume_id",
                    "Rows", "Columns"]
_VOLUME_COLUMNS = ["series_uid", "volume_id", "spacing", "origin", "direction", "num_slices",
                   "warnings"]
_PATCH_COLUMNS = ["patch_id", "series_uid", "label", "malignancy", "source", "split", "center"]
_SLICE_BINS = (0, 32, 64, 128, 256, 512, 1024)


@dataclass
class _Location:
    """Where one row lives: a Parquet file, a row group and the row within it."""

    path: str
    row_group: int
    row: int


@dataclass
class _Volume:
    series_uid: str
    volume_id: str
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray
    num_slices: int
    where: _Location


@dataclass
class _Pick:
    """A patch row chosen for the sheet (small fields only)."""

    patch_id: str
    series_uid: str
    label: int
    malignancy: int
    source: str
    split: str
    center: np.ndarray
    where: _Location


@dataclass
class _Sample:
    """The ``k`` rows with the smallest hash of their id: deterministic, order-free, bounded."""

    k: int
    heap: list[tuple[int, int, _Pick]] = field(default_factory=list)
    _seen: int = 0

    def offer(self, pick: _Pick) -> None:
        if self.k <= 0:
            return
        priority = -int.from_bytes(hashlib.sha256(pick.patch_id.encode()).digest()[:8], "big")
        self._seen += 1
        item = (priority, self._seen, pick)
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, item)
        elif priority > self.heap[0][0]:
            heapq.heapreplace(self.heap, item)

    def picks(self) -> list[_Pick]:
        return [item[2] for item in sorted(self.heap, key=lambda item: (-item[0], item[1]))]


def inspect_dataset(out_dir: str, *, report_png: str | None = None, max_items: int = 6) -> dict[str, Any]:
    """Summarise an ``sparkdl ingest`` output and draw its contact sheet.

    Returns a JSON-able dict with ``manifest`` (counts, rejections), ``catalog``,
    ``volumes`` and ``patches`` sections, ``checks`` (manifest counts that disagree with the
    tables) and ``sheet`` (the PNG path and what each panel shows, or None when there is
    nothing to draw). ``max_items`` patches and ``max_items`` volume slices at most are drawn.
    The PNG goes to ``report_png`` (default ``OUT/inspect.png``).
    """
    if max_items < 0:
        raise InputError(f"max_items must be >= 0. Received: max_items={max_items}")
    out_dir = out_dir.rstrip("/")
    fs, root = _filesystem(out_dir)
    manifest = _read_manifest(fs, root, out_dir)

    catalog = _catalog_summary(fs, f"{root}/catalog")
    volumes, volume_rows = _volumes_summary(fs, f"{root}/volumes", catalog.pop("_in_plane"))
    positives, negatives = _Sample((max_items + 1) // 2), _Sample(max_items // 2)
    annotated = _Sample(4 * max_items)
    patches = _patches_summary(fs, f"{root}/patches", positives, negatives, annotated)

    summary: dict[str, Any] = {
        "dataset": out_dir,
        "manifest": {key: manifest.get(key) for key in
                     ("sparkdl_version", "counts", "rejected_by_reason", "instances_by_volume_outcome")},
        "catalog": catalog,
        "volumes": volumes,
        "patches": patches,
        "checks": _check_counts(manifest.get("counts", {}), catalog, volumes, patches),
    }
    panels = _choose_panels(fs, positives.picks() + negatives.picks(), annotated.picks(),
                            volume_rows, max_items)
    if not panels:
        summary["sheet"] = None
        return summary
    png_path = report_png or f"{out_dir}/inspect.png"
    write_bytes(png_path, _render_sheet(panels))
    summary["sheet"] = {"path": png_path, "panels": [panel.info for panel in panels]}
    logger.info("inspect: %d panels drawn to %s", len(panels), png_path)
    return summary


# --- reading ----------------------------------------------------------------------------------


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if is_local(uri):
        return pafs.LocalFileSystem(), local_path(uri)
    if uri.startswith("s3a://"):
        uri = "s3://" + uri[len("s3a://"):]
    return pafs.FileSystem.from_uri(uri)  # type: ignore[no-any-return]


def _read_manifest(fs: pafs.FileSystem, root: str, out_dir: str) -> dict[str, Any]:
    info = fs.get_file_info(f"{root}/manifest.json")
    if info.type != pafs.FileType.File:
        raise InputError(
            f"{out_dir} is not a sparkdl ingest output: no manifest.json there. Expected the "
            "folder given to `sparkdl ingest --output OUT` (manifest.json, catalog/, volumes/, "
            "patches/); an ingest that was interrupted leaves no manifest.json: run it again."
        )
    with fs.open_input_stream(f"{root}/manifest.json") as stream:
        try:
            manifest = json.loads(stream.read().decode("utf-8"))
        except ValueError as err:
            raise InputError(f"{out_dir}/manifest.json is not valid JSON ({err}); expected the "
                             "manifest written by sparkdl ingest. Run the ingest again.") from None
    if not isinstance(manifest, dict) or "counts" not in manifest:
        raise InputError(f"{out_dir}/manifest.json has no 'counts'; expected the manifest "
                         "written by sparkdl ingest. Run the ingest again.")
    return manifest


def _parquet_files(fs: pafs.FileSystem, folder: str) -> list[str]:
    """Data files of a Spark-written table; ``_SUCCESS``/``_common_metadata``/dot files skipped."""
    if fs.get_file_info(folder).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(folder, recursive=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File
                  and not i.base_name.startswith(("_", ".")) and i.base_name.endswith(".parquet"))


def _row_groups(fs: pafs.FileSystem, folder: str, columns: list[str]) -> Iterator[tuple[str, int, pa.Table]]:
    """``(path, row_group, table)`` for every row group, reading only ``columns``."""
    for path in _parquet_files(fs, folder):
        with fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            present = [c for c in columns if c in parquet.schema_arrow.names]
            for index in range(parquet.metadata.num_row_groups):
                yield path, index, parquet.read_row_group(index, columns=present)


def _read_cell(fs: pafs.FileSystem, where: _Location, column: str) -> bytes:
    with fs.open_input_file(where.path) as handle:
        table = pq.ParquetFile(handle).read_row_group(where.row_group, columns=[column])
    return bytes(table.column(column)[where.row].as_py())


def _decode(value: bytes) -> np.ndarray:
    """An ``NdarrayCodec`` cell (``np.save`` bytes; every array field of both schemas) as an array."""
    ndarray_field = VolumeSchema.fields["volume"]
    return np.asarray(ndarray_field.codec.decode(ndarray_field, value))


# --- summaries --------------------------------------------------------------------------------


def _counts(counter: Counter[Any]) -> dict[str, int]:
    return {str(key): int(n) for key, n in sorted(counter.items(), key=lambda kv: str(kv[0]))}


def _catalog_summary(fs: pafs.FileSystem, folder: str) -> dict[str, Any]:
    modality, sop_class, outcome = Counter[str](), Counter[str](), Counter[str]()
    in_plane: dict[str, Counter[tuple[int, int]]] = {}
    present = bool(_parquet_files(fs, folder))
    for _, _, table in _row_groups(fs, folder, _CATALOG_COLUMNS):
        frame = table.to_pandas()
        for name, counter in (("Modality", modality), ("sop_class_name", sop_class)):
            if name in frame:
                counter.update(frame[name].fillna("(none)"))
        if "volume_status" in frame:
            # No status: the instance carries no pixel data (SR, dose report), so no volume.
            status = frame["volume_status"].fillna("no_pixel_data")
            reason = frame.get("volume_reason")
            keys = status if reason is None else status.where(reason.isna(), status + ":" + reason.fillna(""))
            outcome.update(keys)
        if {"volume_id", "volume_status", "Rows", "Columns"} <= set(frame):
            used = frame[frame["volume_id"].notna() & (frame["volume_status"] == "volume")]
            for volume_id, rows, columns in zip(used["volume_id"], used["Rows"], used["Columns"]):
                in_plane.setdefault(volume_id, Counter())[(int(rows), int(columns))] += 1
    return {
        "present": present,
        "instances": int(sum(modality.values())),
        "by_modality": _counts(modality),
        "by_sop_class_name": _counts(sop_class),
        "by_volume_outcome": _counts(outcome),
        "_in_plane": {vid: c.most_common(1)[0][0] for vid, c in in_plane.items()},
    }


def _slice_bin(num_slices: int) -> str:
    for low, high in zip(_SLICE_BINS, _SLICE_BINS[1:]):
        if num_slices < high:
            return f"{low}-{high - 1}"
    return f">={_SLICE_BINS[-1]}"


def _volumes_summary(fs: pafs.FileSystem, folder: str,
                     in_plane: dict[str, tuple[int, int]]) -> tuple[dict[str, Any], list[_Volume]]:
    """Histograms of the volumes. In-plane size comes from the catalog's Rows/Columns of the
    instances in each volume, so the large ``volume`` cells are never read here."""
    shape, slices, slice_spacing, pixel_spacing = Counter[str](), Counter[str](), Counter[str](), Counter[str]()
    volumes_by_code, occurrences = Counter[str](), Counter[str]()
    rows: list[_Volume] = []
    num_clean = 0
    for path, group, table in _row_groups(fs, folder, _VOLUME_COLUMNS):
        data = table.to_pydict()
        for i in range(table.num_rows):
            spacing = _decode(data["spacing"][i])
            num_slices = int(data["num_slices"][i])
            volume = _Volume(str(data["series_uid"][i]), str(data["volume_id"][i]), spacing,
                             _decode(data["origin"][i]), _decode(data["direction"][i]), num_slices,
                             _Location(path, group, i))
            rows.append(volume)
            size = in_plane.get(volume.volume_id)
            shape[f"{num_slices}x{size[0]}x{size[1]}" if size else f"{num_slices}x?x?"] += 1
            slices[_slice_bin(num_slices)] += 1
            slice_spacing[f"{round(float(spacing[0]) * 2) / 2:.1f}"] += 1
            pixel_spacing[f"{float(spacing[1]):.1f}x{float(spacing[2]):.1f}"] += 1
            codes = [str(w.get("code")) for w in json.loads(data["warnings"][i] or "[]")]
            occurrences.update(codes)
            volumes_by_code.update(set(codes))
            num_clean += not codes
    summary = {
        "present": bool(_parquet_files(fs, folder)),
        "count": len(rows),
        "series": len({v.series_uid for v in rows}),
        "shape_zyx": _counts(shape),
        "num_slices": {k: slices[k] for k in sorted(slices, key=lambda b: int(b.strip(">=").split("-")[0]))},
        "slice_spacing_mm": {k: slice_spacing[k] for k in sorted(slice_spacing, key=float)},
        "pixel_spacing_mm": _counts(pixel_spacing),
        "without_warnings": num_clean,
        "warnings": {code: {"volumes": volumes_by_code[code], "occurrences": occurrences[code]}
                     for code in sorted(occurrences)},
    }
    return summary, rows


def _patches_summary(fs: pafs.FileSystem, folder: str, positives: _Sample, negatives: _Sample,
                     annotated: _Sample) -> dict[str, Any]:
    """Counts of the patches; offers every row to the samples the sheet is drawn from."""
    by_split_label: Counter[tuple[str, int]] = Counter()
    labels, malignancy, source = Counter[int](), Counter[int](), Counter[str]()
    series: set[str] = set()
    for path, group, table in _row_groups(fs, folder, _PATCH_COLUMNS):
        data = table.to_pydict()
        for i in range(table.num_rows):
            label, split = int(data["label"][i]), str(data["split"][i])
            by_split_label[(split, label)] += 1
            labels[label] += 1
            malignancy[int(data["malignancy"][i])] += 1
            source[str(data["source"][i])] += 1
            series.add(str(data["series_uid"][i]))
            pick = _Pick(str(data["patch_id"][i]), str(data["series_uid"][i]), label,
                         int(data["malignancy"][i]), str(data["source"][i]), split,
                         _decode(data["center"][i]), _Location(path, group, i))
            (positives if label == 1 else negatives).offer(pick)
            if label == 1:
                annotated.offer(pick)
    by_split: dict[str, dict[str, int]] = {}
    for (split, label), n in sorted(by_split_label.items()):
        by_split.setdefault(split, {})[str(label)] = n
    return {
        "present": bool(_parquet_files(fs, folder)),
        "count": int(sum(by_split_label.values())),
        "series": len(series),
        "by_split_label": {f"{s}/{lab}": n for (s, lab), n in sorted(by_split_label.items())},
        "by_split": by_split,
        "by_label": _counts(labels),
        "by_malignancy": _counts(malignancy),
        "by_source": _counts(source),
    }


def _check_counts(counts: dict[str, Any], catalog: dict[str, Any], volumes: dict[str, Any],
                  patches: dict[str, Any]) -> list[dict[str, Any]]:
    """Manifest counts that disagree with the tables (an empty list when all agree)."""
    pairs = [("cataloged", catalog["instances"]), ("volumes", volumes["count"]),
             ("patches", patches["count"])]
    return [{"count": name, "manifest": counts.get(name), "tables": found}
            for name, found in pairs if counts.get(name, 0) != found]


# --- the contact sheet ------------------------------------------------------------------------


@dataclass
class _Panel:
    image: np.ndarray  # 2-D HU, (row, column)
    marker_xy: tuple[float, float] | None  # (column, row), pixel centres at integers
    aspect: float  # row spacing / column spacing
    title: str
    info: dict[str, Any]


def _plane(direction: np.ndarray) -> str:
    """Name of the plane across the slice index axis (``direction`` column 2 is its normal)."""
    normal = np.asarray(direction, dtype=np.float64).reshape(3, 3)[:, 2]
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def _short(uid: str) -> str:
    return "…" + uid[-6:]


def _choose_panels(fs: pafs.FileSystem, patch_picks: list[_Pick], annotated: list[_Pick],
                   volumes: list[_Volume], max_items: int) -> list[_Panel]:
    panels = [_patch_panel(fs, pick) for pick in patch_picks]
    by_series: dict[str, list[_Volume]] = {}
    for volume in volumes:
        by_series.setdefault(volume.series_uid, []).append(volume)
    drawn: set[str] = set()
    # Annotations first: their centres are the nodules a reader wants to see.
    for pick in sorted(annotated, key=lambda p: p.source != "annotation"):
        if len(drawn) >= max_items:
            break
        for volume in by_series.get(pick.series_uid, []):
            index = geometry.world_to_voxel(pick.center, volume.origin, volume.spacing, volume.direction)
            if volume.volume_id not in drawn and index[0] > -0.5 and index[0] < volume.num_slices - 0.5:
                panels.append(_volume_panel(fs, volume, pick))
                drawn.add(volume.volume_id)
                break
    if not patch_picks and not annotated:  # no patches: the middle slice of a few volumes
        for volume in volumes[:max_items]:
            panels.append(_volume_panel(fs, volume, None))
    return panels


def _patch_panel(fs: pafs.FileSystem, pick: _Pick) -> _Panel:
    patch = _decode(_read_cell(fs, pick.where, "patch"))
    size = patch.shape[0]
    # The centre lies at index (size - 1) / 2: between the two middle slices when size is even.
    middle = patch[(size - 1) // 2: size // 2 + 1].astype(np.float32).mean(axis=0)
    marker = ((patch.shape[2] - 1) / 2.0, (patch.shape[1] - 1) / 2.0)
    kind = "nodule" if pick.label == 1 else "not nodule"
    info = {"kind": "patch", "patch_id": pick.patch_id, "series_uid": pick.series_uid,
            "label": pick.label, "malignancy": pick.malignancy, "source": pick.source,
            "split": pick.split, "image_shape": list(middle.shape), "marker_xy": list(marker)}
    return _Panel(middle, marker, 1.0, f"{kind} ({pick.source})\n{pick.split} {_short(pick.series_uid)}", info)


def _volume_panel(fs: pafs.FileSystem, volume: _Volume, pick: _Pick | None) -> _Panel:
    array = _decode(_read_cell(fs, volume.where, "volume"))
    marker: tuple[float, float] | None = None
    hu_at_marker = None
    if pick is None:
        k = array.shape[0] // 2
    else:
        z, y, x = geometry.world_to_voxel(pick.center, volume.origin, volume.spacing, volume.direction)
        k = int(np.clip(round(float(z)), 0, array.shape[0] - 1))
        marker = (float(x), float(y))
        if geometry.is_inside((k, y, x), array.shape):
            row, column = (int(np.clip(round(float(v)), 0, n - 1)) for v, n in zip((y, x), array.shape[1:]))
            hu_at_marker = int(array[k, row, column])
    image = np.array(array[k])
    del array
    plane = _plane(volume.direction)
    info = {"kind": "volume", "volume_id": volume.volume_id, "series_uid": volume.series_uid,
            "plane": plane, "slice_index": k, "image_shape": list(image.shape),
            "marker_xy": list(marker) if marker else None, "hu_at_marker": hu_at_marker,
            "patch_id": pick.patch_id if pick else None}
    aspect = float(volume.spacing[1] / volume.spacing[2])
    return _Panel(image, marker, aspect, f"{plane} slice {k}/{volume.num_slices}\n{_short(volume.series_uid)}", info)


def _render_sheet(panels: list[_Panel]) -> bytes:
    """PNG bytes: patches on the first row, volume slices on the second, lung window."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    rows = [[p for p in panels if p.info["kind"] == "patch"], [p for p in panels if p.info["kind"] == "volume"]]
    rows = [row for row in rows if row]
    num_columns = max(len(row) for row in rows)
    figure = Figure(figsize=(2.4 * num_columns, 2.7 * len(rows)), dpi=100)
    axes = figure.subplots(len(rows), num_columns, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(num_columns):
            ax = axes[r][c]
            ax.set_axis_off()
            if c >= len(row):
                continue
            panel = row[c]
            ax.imshow(panel.image, cmap="gray", vmin=LUNG_WINDOW_HU[0], vmax=LUNG_WINDOW_HU[1],
                      aspect=panel.aspect, interpolation="nearest")
            if panel.marker_xy is not None:
                ax.set_autoscale_on(False)  # a mark off the image must not rescale it
                x, y = panel.marker_xy
                ax.plot([x], [y], marker="o", markersize=14, markerfacecolor="none",
                        markeredgecolor="red", markeredgewidth=1.2)
                ax.plot([x], [y], marker="+", markersize=6, color="red", markeredgewidth=1.0)
            ax.set_title(panel.title, fontsize=7)
    figure.suptitle("sparkdl inspect: lung window (W1500/L-600), centre marked in red", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# --- text -------------------------------------------------------------------------------------


def _lines(title: str, counts: dict[str, Any], indent: str = "  ") -> list[str]:
    if not counts:
        return [f"{indent}{title}: none"]
    width = max(len(str(k)) for k in counts)
    return [f"{indent}{title}:"] + [f"{indent}  {str(k):<{width}}  {v}" for k, v in counts.items()]


def format_summary(summary: dict[str, Any]) -> str:
    """The summary of :func:`inspect_dataset` as text for a terminal."""
    counts = summary["manifest"].get("counts") or {}
    out = [f"dataset {summary['dataset']} (sparkdl {summary['manifest'].get('sparkdl_version')})",
           "  " + ", ".join(f"{k} {v}" for k, v in counts.items())]
    out += _lines("rejected by reason", summary["manifest"].get("rejected_by_reason") or {})
    catalog = summary["catalog"]
    out.append(f"catalog: {catalog['instances']} instances")
    out += _lines("by Modality", catalog["by_modality"])
    out += _lines("by SOP class", catalog["by_sop_class_name"])
    out += _lines("by volume outcome", catalog["by_volume_outcome"])
    volumes = summary["volumes"]
    if volumes["present"]:
        out.append(f"volumes: {volumes['count']} from {volumes['series']} series, "
                   f"{volumes['without_warnings']} without warnings")
        out += _lines("shape (z x y x x)", volumes["shape_zyx"])
        out += _lines("slices", volumes["num_slices"])
        out += _lines("slice spacing (mm, 0.5 bins)", volumes["slice_spacing_mm"])
        out += _lines("pixel spacing (mm, y x x)", volumes["pixel_spacing_mm"])
        out += _lines("warnings (volumes / occurrences)",
                      {k: f"{v['volumes']} / {v['occurrences']}" for k, v in volumes["warnings"].items()})
    else:
        out.append("volumes: none (no CT series was assembled)")
    patches = summary["patches"]
    if patches["present"]:
        out.append(f"patches: {patches['count']} from {patches['series']} series")
        splits = sorted(patches["by_split"])
        labels = sorted({lab for row in patches["by_split"].values() for lab in row})
        out.append("  split   " + "".join(f"label {lab:>3}  " for lab in labels))
        for split in splits:
            out.append(f"  {split:<7} " + "".join(f"{patches['by_split'][split].get(lab, 0):>9}  "
                                                   for lab in labels))
        out += _lines("malignancy (-1 unknown)", patches["by_malignancy"])
        out += _lines("source", patches["by_source"])
    else:
        out.append("patches: none (ingest ran without annotations or candidates)")
    for check in summary["checks"]:
        out.append(f"WARNING: manifest says {check['count']}={check['manifest']}, "
                   f"the tables hold {check['tables']}")
    sheet = summary.get("sheet")
    out.append(f"sheet: {sheet['path']} ({len(sheet['panels'])} panels)" if sheet
               else "sheet: nothing to draw")
    return "\n".join(out)
