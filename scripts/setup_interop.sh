#!/usr/bin/env bash
# The Petastorm interop venv (.venv-interop): Petastorm 0.13.1 on the last stack it imports on
# (pyarrow 14, NumPy 1.26, pyspark 4.0; tests/interop/requirements.txt), for tests/test_interop.py.
# pyarrow 14 has wheels for Python 3.8-3.12 only: prints the interpreter it used, or
# "unavailable: <why>" when none of python3.12/3.11/3.10 runs here. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV=.venv-interop
REQUIREMENTS=tests/interop/requirements.txt

PY="${INTEROP_PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.12 python3.11 python3.10 python3; do
    if "$candidate" -c 'import sys; assert (3, 10) <= sys.version_info[:2] <= (3, 12)' >/dev/null 2>&1; then
      PY="$candidate"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "unavailable: Petastorm 0.13.1 needs pyarrow 14, which needs Python 3.10-3.12 (set INTEROP_PYTHON)"
  exit 0
fi

STAMP="$VENV/.sparkdl-setup-stamp"
WANT="$(cat "$REQUIREMENTS" | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ]; then
  echo "$ROOT/$VENV/bin/python"
  exit 0
fi
rm -rf "$VENV"
"$PY" -m venv "$VENV" >&2
echo "[setup-interop] installing Petastorm 0.13.1 and its stack into $VENV" >&2
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS" >&2
echo "$WANT" > "$STAMP"
echo "$ROOT/$VENV/bin/python"
