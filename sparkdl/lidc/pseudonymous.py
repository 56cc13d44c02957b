"""A read message without identifiers, as JSON: what an executor sends the driver.

A read message names its series, study and slices by their original UIDs and its readers by
their radiologist ids. Ingest parses it on the executor that read it, maps every UID through
the same keyed map as the images (so the marks meet the de-identified slices by SOP UID) and
drops the reader ids (sessions keep their order: reader 0, 1, ...). Only this form leaves
the executor, and it is what ``reads/`` stores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sparkdl.lidc.read_message import (
    NoduleRead,
    NonNoduleMark,
    ReadingSession,
    ReadMessage,
    Roi,
    SmallNoduleRead,
    Unusable,
)

__all__ = ["from_json", "pseudonymize", "to_json"]


def pseudonymize(message: ReadMessage, uid: Callable[[str], str]) -> ReadMessage:
    """``message`` with every UID mapped through ``uid`` and no reader id."""
    sessions = tuple(
        replace(
            session,
            reader_id="",
            nodules=tuple(
                replace(n, rois=tuple(replace(r, sop_uid=uid(r.sop_uid)) for r in n.rois))
                for n in session.nodules
            ),
            small_nodules=tuple(replace(s, sop_uid=uid(s.sop_uid)) for s in session.small_nodules),
            non_nodules=tuple(replace(s, sop_uid=uid(s.sop_uid)) for s in session.non_nodules),
        )
        for session in message.sessions
    )
    study = uid(message.study_uid) if message.study_uid else None
    return ReadMessage(uid(message.series_uid), study, sessions)


def to_json(message: ReadMessage) -> str:
    """``message`` as compact JSON (see :func:`from_json`)."""
    return json.dumps(
        {
            "series_uid": message.series_uid,
            "study_uid": message.study_uid,
            "sessions": [
                {
                    "nodules": [
                        {
                            "id": n.nodule_id,
                            "characteristics": dict(n.characteristics),
                            "rois": [
                                [r.sop_uid, _z(r.z_position), r.inclusion, r.xy.tolist()]
                                for r in n.rois
                            ],
                        }
                        for n in session.nodules
                    ],
                    "small_nodules": [
                        [s.nodule_id, s.sop_uid, _z(s.z_position), list(s.xy)]
                        for s in session.small_nodules
                    ],
                    "non_nodules": [
                        [s.non_nodule_id, s.sop_uid, _z(s.z_position), list(s.xy)]
                        for s in session.non_nodules
                    ],
                    "unusable": [[u.reader, u.kind, u.mark_id, u.reason] for u in session.unusable],
                }
                for session in message.sessions
            ],
        },
        separators=(",", ":"),
    )


def from_json(text: str) -> ReadMessage:
    """The :class:`ReadMessage` :func:`to_json` wrote (reader ids empty)."""
    doc: dict[str, Any] = json.loads(text)
    sessions = tuple(
        ReadingSession(
            reader_id="",
            nodules=tuple(
                NoduleRead(
                    n["id"],
                    dict(n["characteristics"]),
                    tuple(Roi(r[0], _unz(r[1]), bool(r[2]), r[3]) for r in n["rois"]),
                )
                for n in session["nodules"]
            ),
            small_nodules=tuple(
                SmallNoduleRead(s[0], s[1], _unz(s[2]), (int(s[3][0]), int(s[3][1])))
                for s in session["small_nodules"]
            ),
            non_nodules=tuple(
                NonNoduleMark(s[0], s[1], _unz(s[2]), (int(s[3][0]), int(s[3][1])))
                for s in session["non_nodules"]
            ),
            unusable=tuple(Unusable(u[0], u[1], u[2], u[3]) for u in session["unusable"]),
        )
        for session in doc["sessions"]
    )
    return ReadMessage(doc["series_uid"], doc["study_uid"], sessions)


def _z(value: float) -> float | None:
    return None if math.isnan(value) else value  # JSON has no NaN


def _unz(value: float | None) -> float:
    return math.nan if value is None else float(value)
