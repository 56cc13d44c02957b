#!/usr/bin/env bash
# Build what Spark executors need to run sparkdl, into dist/ (or --dist DIR).
#
#   dist/sparkdl-<version>-py3-none-any.whl  the package: `pip install` it on nodes, a packed
#                                            venv or a Databricks cluster library
#   dist/sparkdl-<version>.zip               the same wheel under a .zip name, for --py-files:
#                                            pyspark puts only .zip/.egg/.jar files on the
#                                            executors' sys.path, never a .whl
#   dist/sparkdl-env.tar.gz                  with --venv-pack only: a packed virtualenv with the
#                                            pinned stack and sparkdl, for
#                                            --archives dist/sparkdl-env.tar.gz#environment
#
# The wheel is built from a copy of the sources in a temporary folder, so the working tree
# gets no build/ or egg-info litter. Prints the path of the .zip on its last line.
#
# Usage: scripts/package_env.sh [--dist DIR] [--venv-pack]
#   SPARKDL_PYTHON  the Python that builds (default: .venv/bin/python of the repository)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${SPARKDL_PYTHON:-$ROOT/.venv/bin/python}"
DIST="$ROOT/dist"
VENV_PACK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dist) DIST="$2"; shift 2 ;;
    --dist=*) DIST="${1#--dist=}"; shift ;;
    --venv-pack) VENV_PACK=1; shift ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "package_env.sh: unknown argument $1 (expected --dist DIR or --venv-pack)" >&2; exit 2 ;;
  esac
done
mkdir -p "$DIST"
DIST="$(cd "$DIST" && pwd)"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/src"
cp "$ROOT/pyproject.toml" "$ROOT/README.md" "$WORK/src/"
# The package only: no __pycache__, no tests.
tar -C "$ROOT" --exclude='__pycache__' --exclude='*.pyc' -cf - sparkdl | tar -C "$WORK/src" -xf -

"$PY" -m pip wheel --quiet --no-deps --no-build-isolation --no-cache-dir -w "$WORK/wheel" "$WORK/src" >&2
WHEEL="$(ls "$WORK"/wheel/sparkdl-*.whl)"
NAME="$(basename "$WHEEL")"
VERSION="$(echo "$NAME" | cut -d- -f2)"
cp "$WHEEL" "$DIST/$NAME"
cp "$WHEEL" "$DIST/sparkdl-$VERSION.zip"
echo "[package] $DIST/$NAME" >&2

if [ "$VENV_PACK" = 1 ]; then
  # venv-pack does not bundle the interpreter: bin/python links to the Python this venv was made
  # from, which must exist at the same path on every node (or use conda-pack, which bundles it).
  if ! "$PY" -c 'import venv_pack' 2>/dev/null; then
    echo "package_env.sh: --venv-pack needs venv-pack in $PY: $PY -m pip install venv-pack" >&2
    exit 2
  fi
  echo "[package] building a fresh venv with the pinned stack (constraints.txt) and the wheel" >&2
  "$PY" -m venv "$WORK/env"
  "$WORK/env/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" "$DIST/$NAME" >&2
  "$PY" -m venv_pack --prefix "$WORK/env" --output "$DIST/sparkdl-env.tar.gz" --force >&2
  echo "[package] $DIST/sparkdl-env.tar.gz" >&2
fi
echo "$DIST/sparkdl-$VERSION.zip"
