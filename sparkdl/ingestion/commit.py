"""Putting a run's staged output in place: a journal of file moves, replayed after a crash.

A run writes everything under ``OUT/_staging/<run>/``. Publishing it is a list of file
operations (delete a path; move a staged path over a published one), written first as
``_staging/<run>/_commit.json`` through a temporary name and a rename: that rename is the
commit point. Then ``manifest.json`` is removed, the operations are applied, and the caller
writes the new manifest last.

* Killed before the commit point: the published dataset is untouched, manifest included;
  the next run drops the staging folder.
* Killed after it: no manifest, so nothing looks complete; the next run (any mode) finds
  the journal and applies it again before its own work. Every operation can be applied
  twice: deleting a missing path does nothing, and a move whose source is gone was done.

The journal also carries the manifest fields known before publishing (configuration,
timings, what the run did), so the run that finishes a commit can write the same manifest.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sparkdl.store.storage import HadoopFS, join
from sparkdl.store.tables import MANIFEST, STAGING

logger = logging.getLogger(__name__)

JOURNAL = "_commit.json"


@dataclass(frozen=True)
class Journal:
    """What one commit does: ``("delete", path)`` and ``("move", source, target)`` steps."""

    steps: list[tuple[str, ...]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    def delete(self, path: str) -> None:
        self.steps.append(("delete", path))

    def move(self, source: str, target: str) -> None:
        self.steps.append(("move", source, target))


def write(fs: HadoopFS, staging: str, journal: Journal) -> None:
    """The commit point: after this, the run's output will be published, now or by the next run."""
    fs.write_text(
        join(staging, JOURNAL), json.dumps({"steps": journal.steps, "manifest": journal.manifest})
    )


def apply(fs: HadoopFS, output: str, journal: Journal) -> None:
    """Remove the manifest, then apply every step (each may already have been applied)."""
    fs.delete(join(output, MANIFEST))
    for step in journal.steps:
        if step[0] == "delete":
            fs.delete(step[1])
        elif step[0] == "move":
            source, target = step[1], step[2]
            if fs.exists(source):
                fs.delete(target)
                fs.mkdirs(target.rsplit("/", 1)[0])
                fs.rename(source, target)
        else:
            raise ValueError(f"unknown commit step {step!r}")


def pending(fs: HadoopFS, output: str) -> Journal | None:
    """The journal of a run killed after its commit point, if there is one."""
    staging_root = join(output, STAGING)
    if not fs.exists(staging_root):
        return None
    for run in fs.children(staging_root):
        if fs.exists(join(run, JOURNAL)):
            data = json.loads(fs.read_text(join(run, JOURNAL)))
            return Journal([tuple(step) for step in data["steps"]], data["manifest"])
    return None
