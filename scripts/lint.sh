#!/usr/bin/env bash
# The static checks CI enforces (rules and settings in pyproject.toml): ruff check, ruff
# format --check and mypy --strict. Runs all three, then exits non-zero if any failed,
# naming which. Uses the repository's .venv (scripts/setup.sh makes it).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

failed=()
check() {
  local name="$1"
  shift
  echo "[lint] $name"
  if ! "$@"; then
    failed+=("$name")
  fi
}

check "ruff check" .venv/bin/ruff check sparkdl tests scripts
check "ruff format --check" .venv/bin/ruff format --check sparkdl tests scripts
check "mypy --strict" .venv/bin/python -m mypy

if [ "${#failed[@]}" -gt 0 ]; then
  printf '[lint] failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "[lint] all checks passed"
