"""What an ingest output holds: counts, histograms, warnings, and a contact sheet to look at.

:func:`inspect_dataset` reads ``OUT/manifest.json`` and the small columns of ``catalog/``,
``volumes/`` and ``patches/`` with pyarrow, one row group at a time, so memory stays flat
however big the dataset is. Array cells (``volume``, ``patch``) are read and decoded only for
the few rows drawn on the sheet (:mod:`sparkdl.contact_sheet`, ``OUT/inspect.png`` by default). No
Spark is needed.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sparkdl.contact_sheet import Location, PatchPick, Sample, VolumeRow, draw_sheet
from sparkdl.errors import InputError
from sparkdl.store.layout import Dataset
from sparkdl.store.metadata import part_files
from sparkdl.store.patch_batches import decode_ndarray_cells
from sparkdl.store.storage import arrow_filesystem, write_bytes
from sparkdl.store.tables import CATALOG, PATCHES, VOLUMES

logger = logging.getLogger(__name__)

_DIGITS = re.compile(r"(\d+)")
#: Lines of one histogram in the text summary; the rest is counted (all of it with --json).
_MAX_LINES = 8

_CATALOG_COLUMNS = [
    "Modality",
    "sop_class_name",
    "volume_status",
    "volume_reason",
    "volume_id",
    "Rows",
    "Columns",
]
_VOLUME_COLUMNS = [
    "series_uid",
    "volume_id",
    "spacing",
    "origin",
    "direction",
    "num_slices",
    "warnings",
]
_PATCH_COLUMNS = ["patch_id", "series_uid", "label", "malignancy", "source", "split", "center"]
_SLICE_BINS = (0, 32, 64, 128, 256, 512, 1024)


def inspect_dataset(
    data: Dataset | str, *, report_png: str | None = None, max_items: int = 6
) -> dict[str, Any]:
    """Summarise an ``sparkdl ingest`` output and draw its contact sheet.

    Returns a JSON-able dict with ``manifest`` (counts, rejections), ``catalog``,
    ``volumes`` and ``patches`` sections, ``checks`` (manifest counts that disagree with the
    tables) and ``sheet`` (the PNG path and what each panel shows, or None when there is
    nothing to draw). ``max_items`` patches and ``max_items`` volume slices at most are drawn.
    The PNG goes to ``report_png`` (default ``OUT/inspect.png``).
    """
    if max_items < 0:
        raise InputError(f"max_items must be >= 0. Received: max_items={max_items}")
    dataset = Dataset.of(data)
    out_dir = dataset.root
    manifest = dataset.manifest()
    fs, root = arrow_filesystem(out_dir)

    catalog, in_plane = _catalog_summary(fs, f"{root}/{CATALOG}")
    volumes, volume_rows = _volumes_summary(fs, f"{root}/{VOLUMES}", in_plane)
    positives, negatives = Sample((max_items + 1) // 2), Sample(max_items // 2)
    annotated = Sample(4 * max_items)
    patches = _patches_summary(fs, f"{root}/{PATCHES}", positives, negatives, annotated)

    summary: dict[str, Any] = {
        "dataset": out_dir,
        "manifest": {
            key: manifest.get(key)
            for key in (
                "sparkdl_version",
                "counts",
                "rejected_by_reason",
                "instances_by_volume_outcome",
            )
        },
        "catalog": catalog,
        "volumes": volumes,
        "patches": patches,
        "checks": _check_counts(manifest.get("counts", {}), catalog, volumes, patches),
    }
    sheet = draw_sheet(
        fs, positives.picks() + negatives.picks(), annotated.picks(), volume_rows, max_items
    )
    if sheet is None:
        summary["sheet"] = None
        return summary
    png, panels = sheet
    png_path = report_png or f"{out_dir}/inspect.png"
    write_bytes(png_path, png)
    summary["sheet"] = {"path": png_path, "panels": panels}
    logger.info("inspect: %d panels drawn to %s", len(panels), png_path)
    return summary


# --- reading ----------------------------------------------------------------------------------


def _row_groups(
    fs: pafs.FileSystem, files: list[str], columns: list[str]
) -> Iterator[tuple[str, int, pa.Table]]:
    """``(path, row_group, table)`` for every row group of ``files``, reading only ``columns``."""
    for path in files:
        with fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            present = [c for c in columns if c in parquet.schema_arrow.names]
            for index in range(parquet.metadata.num_row_groups):
                yield path, index, parquet.read_row_group(index, columns=present)


def _vectors(table: pa.Table, column: str, length: int) -> npt.NDArray[np.float64]:
    """A float64 ``NdarrayCodec`` column (``spacing``, ``center``, ...) as ``[rows, length]``."""
    return decode_ndarray_cells(table.column(column), (length,), np.dtype(np.float64))


# --- summaries --------------------------------------------------------------------------------


def _counts(counter: Counter[Any]) -> dict[str, int]:
    """``counter`` as a dict in natural order: ``53x128x128`` before ``238x128x128``."""
    return {str(key): int(n) for key, n in sorted(counter.items(), key=lambda kv: _natural(kv[0]))}


def _natural(key: Any) -> list[Any]:
    """A sort key that orders the numbers inside a text by value."""
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in _DIGITS.split(str(key))
    ]


def _catalog_summary(
    fs: pafs.FileSystem, folder: str
) -> tuple[dict[str, Any], dict[str, tuple[int, int]]]:
    """Counts of the catalog, and the in-plane size (Rows, Columns) of each volume's instances."""
    modality, sop_class, outcome = Counter[str](), Counter[str](), Counter[str]()
    in_plane: dict[str, Counter[tuple[int, int]]] = {}
    files = part_files(fs, folder, missing_ok=True)
    for _, _, table in _row_groups(fs, files, _CATALOG_COLUMNS):
        frame = table.to_pandas()
        for name, counter in (("Modality", modality), ("sop_class_name", sop_class)):
            if name in frame:
                counter.update(frame[name].fillna("(none)"))
        if "volume_status" in frame:
            # No status: the instance carries no pixel data (SR, dose report), so no volume.
            status = frame["volume_status"].fillna("no_pixel_data")
            reason = frame.get("volume_reason")
            keys = (
                status
                if reason is None
                else status.where(reason.isna(), status + ":" + reason.fillna(""))
            )
            outcome.update(keys)
        if {"volume_id", "volume_status", "Rows", "Columns"} <= set(frame):
            used = frame[frame["volume_id"].notna() & (frame["volume_status"] == "volume")]
            for volume_id, rows, columns in zip(used["volume_id"], used["Rows"], used["Columns"]):
                in_plane.setdefault(volume_id, Counter())[(int(rows), int(columns))] += 1
    summary = {
        "present": bool(files),
        "instances": int(sum(modality.values())),
        "by_modality": _counts(modality),
        "by_sop_class_name": _counts(sop_class),
        "by_volume_outcome": _counts(outcome),
    }
    return summary, {vid: c.most_common(1)[0][0] for vid, c in in_plane.items()}


def _slice_bin(num_slices: int) -> str:
    for low, high in itertools.pairwise(_SLICE_BINS):
        if num_slices < high:
            return f"{low}-{high - 1}"
    return f">={_SLICE_BINS[-1]}"


def _volumes_summary(
    fs: pafs.FileSystem, folder: str, in_plane: dict[str, tuple[int, int]]
) -> tuple[dict[str, Any], list[VolumeRow]]:
    """Histograms of the volumes. In-plane size comes from the catalog's Rows/Columns of the
    instances in each volume, so the large ``volume`` cells are never read here."""
    shape, slices, slice_spacing, pixel_spacing = (
        Counter[str](),
        Counter[str](),
        Counter[str](),
        Counter[str](),
    )
    volumes_by_code, occurrences = Counter[str](), Counter[str]()
    rows: list[VolumeRow] = []
    num_clean = 0
    files = part_files(fs, folder, missing_ok=True)
    for path, group, table in _row_groups(fs, files, _VOLUME_COLUMNS):
        spacings, origins = _vectors(table, "spacing", 3), _vectors(table, "origin", 3)
        directions = _vectors(table, "direction", 9)
        data = table.select(["series_uid", "volume_id", "num_slices", "warnings"]).to_pydict()
        for i in range(table.num_rows):
            spacing, num_slices = spacings[i], int(data["num_slices"][i])
            volume = VolumeRow(
                str(data["series_uid"][i]),
                str(data["volume_id"][i]),
                spacing,
                origins[i],
                directions[i],
                num_slices,
                Location(path, group, i),
            )
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
        "present": bool(files),
        "count": len(rows),
        "series": len({v.series_uid for v in rows}),
        "shape_zyx": _counts(shape),
        "num_slices": {
            k: slices[k] for k in sorted(slices, key=lambda b: int(b.strip(">=").split("-")[0]))
        },
        "slice_spacing_mm": {k: slice_spacing[k] for k in sorted(slice_spacing, key=float)},
        "pixel_spacing_mm": _counts(pixel_spacing),
        "without_warnings": num_clean,
        "warnings": {
            code: {"volumes": volumes_by_code[code], "occurrences": occurrences[code]}
            for code in sorted(occurrences)
        },
    }
    return summary, rows


def _patches_summary(
    fs: pafs.FileSystem, folder: str, positives: Sample, negatives: Sample, annotated: Sample
) -> dict[str, Any]:
    """Counts of the patches; offers every row to the samples the sheet is drawn from."""
    by_split_label: Counter[tuple[str, int]] = Counter()
    labels, malignancy, source = Counter[int](), Counter[int](), Counter[str]()
    series: set[str] = set()
    files = part_files(fs, folder, missing_ok=True)
    for path, group, table in _row_groups(fs, files, _PATCH_COLUMNS):
        centers = _vectors(table, "center", 3)
        data = table.drop(["center"]).to_pydict()
        for i in range(table.num_rows):
            label, split = int(data["label"][i]), str(data["split"][i])
            by_split_label[(split, label)] += 1
            labels[label] += 1
            malignancy[int(data["malignancy"][i])] += 1
            source[str(data["source"][i])] += 1
            series.add(str(data["series_uid"][i]))
            pick = PatchPick(
                str(data["patch_id"][i]),
                str(data["series_uid"][i]),
                label,
                int(data["malignancy"][i]),
                str(data["source"][i]),
                split,
                centers[i],
                Location(path, group, i),
            )
            (positives if label == 1 else negatives).offer(pick)
            if label == 1:
                annotated.offer(pick)
    by_split: dict[str, dict[str, int]] = {}
    for (split, label), n in sorted(by_split_label.items()):
        by_split.setdefault(split, {})[str(label)] = n
    return {
        "present": bool(files),
        "count": int(sum(by_split_label.values())),
        "series": len(series),
        "by_split_label": {f"{s}/{lab}": n for (s, lab), n in sorted(by_split_label.items())},
        "by_split": by_split,
        "by_label": _counts(labels),
        "by_malignancy": _counts(malignancy),
        "by_source": _counts(source),
    }


def _check_counts(
    counts: dict[str, Any],
    catalog: dict[str, Any],
    volumes: dict[str, Any],
    patches: dict[str, Any],
) -> list[dict[str, Any]]:
    """Manifest counts that disagree with the tables (an empty list when all agree)."""
    pairs = [
        ("cataloged", catalog["instances"]),
        ("volumes", volumes["count"]),
        ("patches", patches["count"]),
    ]
    return [
        {"count": name, "manifest": counts.get(name), "tables": found}
        for name, found in pairs
        if counts.get(name, 0) != found
    ]


# --- text -------------------------------------------------------------------------------------


def _lines(title: str, counts: dict[str, Any], indent: str = "  ") -> list[str]:
    """A histogram as lines: the :data:`_MAX_LINES` largest entries in their order, and how
    many more there are."""
    if not counts:
        return [f"{indent}{title}: none"]
    shown = counts
    if len(counts) > _MAX_LINES:
        largest = sorted(counts, key=lambda k: -counts[k] if isinstance(counts[k], int) else 0)
        keep = set(largest[:_MAX_LINES])
        shown = {k: v for k, v in counts.items() if k in keep}
    width = max(len(str(k)) for k in shown)
    lines = [f"{indent}{title}:"] + [f"{indent}  {k!s:<{width}}  {v}" for k, v in shown.items()]
    if len(shown) < len(counts):
        lines.append(f"{indent}  ... {len(counts) - len(shown)} more (--json lists all)")
    return lines


def format_summary(summary: dict[str, Any]) -> str:
    """The summary of :func:`inspect_dataset` as text for a terminal."""
    counts = summary["manifest"].get("counts") or {}
    out = [
        f"dataset {summary['dataset']} (sparkdl {summary['manifest'].get('sparkdl_version')})",
        "  " + ", ".join(f"{k} {v}" for k, v in counts.items()),
    ]
    out += _lines("rejected by reason", summary["manifest"].get("rejected_by_reason") or {})
    catalog = summary["catalog"]
    out.append(f"catalog: {catalog['instances']} instances")
    out += _lines("by Modality", catalog["by_modality"])
    out += _lines("by SOP class", catalog["by_sop_class_name"])
    out += _lines("by volume outcome", catalog["by_volume_outcome"])
    volumes = summary["volumes"]
    if volumes["present"]:
        out.append(
            f"volumes: {volumes['count']} from {volumes['series']} series, "
            f"{volumes['without_warnings']} without warnings"
        )
        out += _lines("shape (z x y x x)", volumes["shape_zyx"])
        out += _lines("slices", volumes["num_slices"])
        out += _lines("slice spacing (mm, 0.5 bins)", volumes["slice_spacing_mm"])
        out += _lines("pixel spacing (mm, y x x)", volumes["pixel_spacing_mm"])
        out += _lines(
            "warnings (volumes / occurrences)",
            {k: f"{v['volumes']} / {v['occurrences']}" for k, v in volumes["warnings"].items()},
        )
    else:
        out.append("volumes: none (no CT series was assembled)")
    patches = summary["patches"]
    if patches["present"]:
        out.append(f"patches: {patches['count']} from {patches['series']} series")
        splits = sorted(patches["by_split"])
        labels = sorted({lab for row in patches["by_split"].values() for lab in row})
        out.append("  split   " + "".join(f"label {lab:>3}  " for lab in labels))
        for split in splits:
            out.append(
                f"  {split:<7} "
                + "".join(f"{patches['by_split'][split].get(lab, 0):>9}  " for lab in labels)
            )
        out += _lines("malignancy (-1 unknown)", patches["by_malignancy"])
        out += _lines("source", patches["by_source"])
    else:
        out.append("patches: none (ingest ran without annotations or candidates)")
    for check in summary["checks"]:
        out.append(
            f"WARNING: manifest says {check['count']}={check['manifest']}, "
            f"the tables hold {check['tables']}"
        )
    sheet = summary.get("sheet")
    out.append(
        f"sheet: {sheet['path']} ({len(sheet['panels'])} panels)"
        if sheet
        else "sheet: nothing to draw"
    )
    return "\n".join(out)
