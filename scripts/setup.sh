#!/usr/bin/env bash
# Set up sparkdl on a fresh machine: Java 17 where `java` is missing, a .venv in the repo
# root with the pinned stack (constraints.txt) and the package (editable).
# Idempotent: when nothing changed since the last run it only checks and returns.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v java >/dev/null 2>&1; then
  echo "[setup] java not found: installing openjdk-17-jre-headless (Spark 4 needs Java 17)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

# The newest supported Python that runs here (a pyenv shim of another version does not run).
SUPPORTED='import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13), sys.version'
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if "$candidate" -c "$SUPPORTED" >/dev/null 2>&1; then PY="$candidate"; break; fi
  done
fi
if [ -z "$PY" ] || ! "$PY" -c "$SUPPORTED" >/dev/null 2>&1; then
  echo "[setup] sparkdl needs Python 3.11-3.13 (pyspark 4.3, TensorFlow 2.21); none found." \
       "Install one (e.g. apt-get install python3.11-venv) or set PYTHON=/path/to/python3.x"
  exit 1
fi

if [ -x .venv/bin/python ] && ! .venv/bin/python -c "$SUPPORTED" >/dev/null 2>&1; then
  echo "[setup] .venv runs an unsupported Python: recreating it"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi

STAMP=".venv/.sparkdl-setup-stamp"
WANT="$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "[setup] up to date"
else
  echo "[setup] installing the pinned stack (constraints.txt); the first time takes a few minutes"
  # setuptools builds the wheel of scripts/package_env.sh in this venv (no build isolation):
  # it must read pyproject.toml's SPDX license string (setuptools >= 77).
  .venv/bin/python -m pip install -q --upgrade "pip>=24"
  .venv/bin/python -m pip install -q -c constraints.txt setuptools wheel
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
  echo "$WANT" > "$STAMP"
fi
# The Spark driver JVM's class-data-sharing archive (sparkdl/jvm_archive.py): built once
# (~30 s), it takes about 3 s off every Spark session sparkdl starts.
.venv/bin/python -m sparkdl.jvm_archive
echo "[setup] done"
