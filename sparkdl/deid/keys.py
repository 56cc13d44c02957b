"""The de-identification key and everything derived from it.

All pseudonyms come from HMAC-SHA256 with one secret key, so every executor, on every run
with the same key, maps the same input to the same output without sharing any state. Each
derivation feeds the HMAC a different input namespace, so a patient pseudonym can never be
matched with a UID remap or a date offset. The key itself never appears in a message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from sparkdl.errors import DeidKeyError

__all__ = ["ENV_VAR", "MIN_KEY_LENGTH", "date_offset_days", "load_key", "pseudonym", "remap_uid"]

ENV_VAR = "SPARKDL_DEID_KEY"
MIN_KEY_LENGTH = 32
# Offsets move every date of a patient back by 1 to 10 years; never 0, so a shifted date is
# never the real one.
MIN_OFFSET_DAYS = -3650
MAX_OFFSET_DAYS = -365

_HOW_TO_MAKE = (
    'Make one with: python -c "import secrets; print(secrets.token_hex(32))" > deid.key '
    f"and pass --key-file deid.key (or export {ENV_VAR}=<the key>). Keep the key secret and "
    "reuse it: the same key gives the same pseudonyms on every run."
)


_USE_THE_INGEST_KEY = (
    "Only the key the ingest used maps its pseudonyms back to the original ids (a new key "
    "maps nothing): pass that key's file with --key-file or set SPARKDL_DEID_KEY to it."
)


def load_key(key_file: str | Path | None = None, *, for_mapping_back: bool = False) -> bytes:
    """The de-identification key, from ``key_file`` if given, else ``$SPARKDL_DEID_KEY``.

    Surrounding whitespace is stripped; at least 32 characters are required.
    ``for_mapping_back``: the key is wanted to map pseudonyms back to original ids, which
    only the ingest's own key can do; the advice says so instead of how to make a key.

    Raises:
        DeidKeyError: the file is missing or unreadable, no key is set, or it is too short.
            The message says how to make a key and never contains the key.
    """
    advice = _USE_THE_INGEST_KEY if for_mapping_back else _HOW_TO_MAKE
    if key_file is not None:
        path = Path(key_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DeidKeyError(
                f"Cannot read the de-identification key file {str(path)!r} "
                f"({type(exc).__name__}). Expected a UTF-8 text file holding the key. " + advice
            ) from None
        source = f"the key file {str(path)!r}"
    else:
        text = os.environ.get(ENV_VAR, "")
        source = f"${ENV_VAR}"
        if not text.strip():
            raise DeidKeyError(
                f"No de-identification key: pass --key-file or set {ENV_VAR}. " + advice
            )
    key = text.strip()
    if len(key) < MIN_KEY_LENGTH:
        raise DeidKeyError(
            f"The de-identification key from {source} is too short: received "
            f"{len(key)} characters, expected at least {MIN_KEY_LENGTH}. " + advice
        )
    return key.encode("utf-8")


def _digest(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def remap_uid(key: bytes, uid: str) -> str:
    """``2.25.`` + the integer of the first 128 bits of HMAC-SHA256(key, uid).

    A UUID-derived UID (PS3.5 B.2): at most 5 + 39 = 44 characters, so always a valid UID.
    """
    return "2.25." + str(int.from_bytes(_digest(key, uid.encode())[:16], "big"))


def pseudonym(key: bytes, value: str) -> str:
    """A short, stable keyed pseudonym: ``P`` + 16 hex characters (64 bits)."""
    return "P" + _digest(key, b"sparkdl:pseudonym\x00" + value.encode("utf-8")).hex()[:16]


def date_offset_days(key: bytes, patient_id: str) -> int:
    """The patient's date shift in days, in [-3650, -365], from HMAC(key, PatientID)."""
    digest = _digest(key, b"sparkdl:date-offset\x00" + patient_id.encode("utf-8"))
    span = MAX_OFFSET_DAYS - MIN_OFFSET_DAYS + 1
    return MIN_OFFSET_DAYS + int.from_bytes(digest[:8], "big") % span
