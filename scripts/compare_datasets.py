"""Whether two ingest outputs hold the same tables, row for row and byte for byte.

    python scripts/compare_datasets.py OUT_A OUT_B

Each table of ``OUT/`` (catalog, volumes, patches, candidates, findings, reads, nodules,
``_restricted/rejected`` and ``lineage``) is read with pyarrow, its rows sorted by every
column that is not bytes, and compared value by value; ``manifest.json`` counts and
reasons too. Part-file names, row-group sizes and timings may differ. Prints one line per
table and exits 1 when anything differs: the check that a change of how ingest runs (for
example series-local assembly) changed nothing in what it writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TABLES = [
    "catalog",
    "volumes",
    "patches",
    "candidates",
    "findings",
    "reads",
    "nodules",
    "_restricted/rejected",
    "_restricted/lineage",
]
#: The manifest's facts of what was written (not timings, versions or the run's mode).
MANIFEST_KEYS = ["counts", "rejected_by_reason", "instances_by_volume_outcome", "patches"]


def read_table(folder: Path) -> pa.Table | None:
    """The table at ``folder`` (None when absent), rows in a canonical order."""
    files = sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith("_"))
    if not files:
        return None
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    keys = [
        (f.name, "ascending")
        for f in table.schema
        if not pa.types.is_binary(f.type) and not pa.types.is_nested(f.type)
    ]
    return table.sort_by(keys) if keys else table


def compare(a: Path, b: Path) -> list[str]:
    """What differs between the outputs ``a`` and ``b`` (nothing: the same)."""
    problems: list[str] = []
    for name in TABLES:
        left, right = read_table(a / name), read_table(b / name)
        if left is None and right is None:
            continue
        if left is None or right is None:
            problems.append(f"{name}: only in {'b' if left is None else 'a'}")
            continue
        same = left.equals(right)
        if left.schema != right.schema:
            problems.append(f"{name}: schemas differ")
        elif not same:
            for column in left.column_names:
                if not left.column(column).equals(right.column(column)):
                    problems.append(f"{name}: column {column} differs")
        print(f"{name:22s} {left.num_rows:7d} rows  {'same' if same else 'DIFFERENT'}")
    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in (a, b)]
    for key in MANIFEST_KEYS:
        if key not in manifests[0] or key not in manifests[1]:
            problems.append(f"manifest.json: no {key}")  # a renamed key must not pass unseen
        elif manifests[0][key] != manifests[1][key]:
            problems.append(f"manifest.json: {key} differs")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = compare(Path(argv[0]), Path(argv[1]))
    for problem in problems:
        print(problem)
    print("the same" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
