#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL=2 TF_USE_LEGACY_KERAS=1
exec .venv/bin/python -m pytest -q -ra "$@"
