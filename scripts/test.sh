#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
# Lint, format and types first: a failing check stops here, before the long suite.
bash scripts/lint.sh
# Petastorm 0.13.1 in a venv of its own, for tests/test_interop.py (or why it cannot be built).
SPARKDL_INTEROP_PYTHON="$(bash scripts/setup_interop.sh | tail -n 1)"
export SPARKDL_INTEROP_PYTHON
# The oldest pyspark and pyarrow of the supported range, for tests/test_oldest_stack.py.
SPARKDL_OLDEST_PYTHON="$(bash scripts/setup_oldest.sh | tail -n 1)"
export SPARKDL_OLDEST_PYTHON
export TF_CPP_MIN_LOG_LEVEL=2 TF_USE_LEGACY_KERAS=1
exec .venv/bin/python -m pytest -q -ra "$@"
