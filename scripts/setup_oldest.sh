#!/usr/bin/env bash
# The oldest end of the supported range (.venv-oldest): pyspark 4.0.1 and pyarrow 18.0.0 over
# the rest of .venv's pinned stack, for tests/test_oldest_stack.py. Only those two packages are
# installed here; a .pth file puts .venv's site-packages (TensorFlow, NumPy, pydicom, sparkdl)
# behind them on sys.path, so they shadow .venv's pyspark and pyarrow and nothing else.
# Run scripts/setup.sh first. Prints the interpreter. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV=.venv-oldest
OLDEST="pyspark==4.0.1 pyarrow==18.0.0"
BASE_PY="$(.venv/bin/python -c 'import sys; print(sys._base_executable)')"
STACK="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

STAMP="$VENV/.sparkdl-setup-stamp"
WANT="$(echo "$OLDEST $BASE_PY $STACK" | cat - constraints.txt | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ]; then
  echo "$ROOT/$VENV/bin/python"
  exit 0
fi
rm -rf "$VENV"
"$BASE_PY" -m venv "$VENV" >&2
echo "[setup-oldest] installing $OLDEST into $VENV (the rest comes from .venv)" >&2
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps $OLDEST >&2
OWN="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import site; site.addsitedir('$STACK')" > "$OWN/zz_sparkdl_stack.pth"
"$VENV/bin/python" -c 'import pyspark, pyarrow, sparkdl
assert pyspark.__version__ == "4.0.1" and pyarrow.__version__ == "18.0.0", (pyspark.__version__, pyarrow.__version__)' >&2
echo "$WANT" > "$STAMP"
echo "$ROOT/$VENV/bin/python"
