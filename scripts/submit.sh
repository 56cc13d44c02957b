#!/usr/bin/env bash
# Run one sparkdl command through spark-submit, against any master. Used by submit_ingest.sh
# and submit_train.sh:
#
#   scripts/submit.sh COMMAND [--master URL] [--env-archive TGZ] [--dry-run] [spark-submit options] \
#       -- [arguments of `sparkdl COMMAND`]
#
# Everything before `--` is for spark-submit (--deploy-mode, --conf k=v, --executor-memory,
# --properties-file, --files, ...); everything after it is for sparkdl. Under spark-submit the
# sparkdl command uses the session spark-submit made, so its own --master/--conf do not apply:
# give them before `--`.
#
# What it does:
#   * master: --master, else $SPARK_MASTER, else local[*]
#   * code for the executors: dist/sparkdl-<version>.zip via --py-files, rebuilt by
#     scripts/package_env.sh when missing or older than sparkdl/ (SPARKDL_DIST=dir to put it
#     elsewhere, SPARKDL_PY_FILES=path to use a given zip or egg as it is)
#   * third-party stack on the executors, one of:
#       - the same Python at the same path on every node (default: this repo's .venv/bin/python,
#         or $SPARKDL_PYTHON): spark.pyspark.python and spark.pyspark.driver.python
#       - --env-archive dist/sparkdl-env.tar.gz (scripts/package_env.sh --venv-pack): shipped with
#         --archives ...#environment, executors run ./environment/bin/python (the driver too in
#         --deploy-mode cluster)
#   * Spark settings: --properties-file conf/spark-local.conf unless you pass one; the cluster's
#     spark-defaults.conf is still loaded (--load-spark-defaults); --conf wins over both
#   * SPARK_HOME: $SPARK_HOME if it has bin/spark-submit, else the pip-installed pyspark's
#   * --dry-run: print the spark-submit command instead of running it (the code zip is
#     still built when it is missing or older than sparkdl/, so the printed path exists)
#
# The de-identification key: in client mode (the default) the driver inherits this shell's
# environment, so export SPARKDL_DEID_KEY or pass `-- ... --key-file FILE` (a file on this host).
# In cluster mode see README "Running on a cluster". Never put the key on a command line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" >&2; exit 2; }
[ $# -ge 1 ] || usage
COMMAND="$1"; shift

MASTER="${SPARK_MASTER:-local[*]}"
ENV_ARCHIVE=""
DRY_RUN=0
DEPLOY_MODE="client"
HAS_PROPERTIES=0
SUBMIT_ARGS=()
SEEN_SEPARATOR=0
while [ $# -gt 0 ]; do
  case "$1" in
    --) SEEN_SEPARATOR=1; shift; break ;;
    --master) MASTER="$2"; shift 2 ;;
    --master=*) MASTER="${1#--master=}"; shift ;;
    --env-archive) ENV_ARCHIVE="$2"; shift 2 ;;
    --env-archive=*) ENV_ARCHIVE="${1#--env-archive=}"; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage ;;
    --deploy-mode) DEPLOY_MODE="$2"; SUBMIT_ARGS+=("$1" "$2"); shift 2 ;;
    --deploy-mode=*) DEPLOY_MODE="${1#--deploy-mode=}"; SUBMIT_ARGS+=("$1"); shift ;;
    --properties-file|--properties-file=*) HAS_PROPERTIES=1; SUBMIT_ARGS+=("$1"); shift ;;
    *) SUBMIT_ARGS+=("$1"); shift ;;
  esac
done
if [ "$SEEN_SEPARATOR" != 1 ]; then
  echo "submit.sh: missing \`--\` before the arguments of \`sparkdl $COMMAND\`. Received: $COMMAND ${SUBMIT_ARGS[*]:-}" >&2
  echo "  e.g. scripts/submit_ingest.sh --master spark://host:7077 -- /data/in --output /data/out" >&2
  exit 2
fi
APP_ARGS=("$@")
for arg in "${APP_ARGS[@]}"; do
  case "$arg" in
    --master|--master=*|--conf|--conf=*)
      echo "submit.sh: $arg after \`--\` would be ignored (under spark-submit sparkdl uses the session" \
           "spark-submit made). Give Spark options before \`--\`: submit_$COMMAND.sh $arg ... -- ..." >&2
      exit 2 ;;
  esac
done

# --- Spark and Java ------------------------------------------------------------------------------
PY="${SPARKDL_PYTHON:-$ROOT/.venv/bin/python}"
if [ -z "${SPARK_HOME:-}" ] || [ ! -x "$SPARK_HOME/bin/spark-submit" ]; then
  SPARK_HOME="$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" || {
    echo "submit.sh: no spark-submit: set SPARK_HOME, or run scripts/setup.sh (installs pyspark in .venv)" >&2
    exit 2; }
  export SPARK_HOME
fi
if [ "$DRY_RUN" = 0 ] && [ -z "${JAVA_HOME:-}" ] && ! command -v java >/dev/null 2>&1; then
  echo "submit.sh: java not found. Spark 4 needs Java 17: run scripts/setup.sh or set JAVA_HOME." >&2
  exit 2
fi

# --- Code for the executors ----------------------------------------------------------------------
PY_FILES="${SPARKDL_PY_FILES:-}"
if [ -z "$PY_FILES" ]; then
  DIST="${SPARKDL_DIST:-$ROOT/dist}"
  PY_FILES="$(ls -t "$DIST"/sparkdl-*.zip 2>/dev/null | head -n 1 || true)"
  if [ -z "$PY_FILES" ] || [ -n "$(find "$ROOT/sparkdl" -newer "$PY_FILES" \( -name '*.py' -o -name '*.json' \) -print -quit)" ]; then
    echo "[submit] packaging sparkdl for the executors (scripts/package_env.sh)" >&2
    PY_FILES="$("$ROOT/scripts/package_env.sh" --dist "$DIST" | tail -n 1)"
  fi
fi
[ -f "$PY_FILES" ] || { echo "submit.sh: SPARKDL_PY_FILES=$PY_FILES does not exist" >&2; exit 2; }

PYTHON_CONF=()
if [ -n "$ENV_ARCHIVE" ]; then
  [ -f "$ENV_ARCHIVE" ] || [[ "$ENV_ARCHIVE" == *://* ]] || {
    echo "submit.sh: --env-archive $ENV_ARCHIVE not found; build it with scripts/package_env.sh --venv-pack" >&2
    exit 2; }
  PYTHON_CONF+=(--archives "$ENV_ARCHIVE#environment" --conf spark.pyspark.python=./environment/bin/python)
  if [ "$DEPLOY_MODE" = cluster ]; then
    PYTHON_CONF+=(--conf spark.pyspark.driver.python=./environment/bin/python)
  else
    PYTHON_CONF+=(--conf "spark.pyspark.driver.python=$PY")
  fi
else
  PYTHON_CONF+=(--conf "spark.pyspark.python=$PY" --conf "spark.pyspark.driver.python=$PY")
fi

PROPERTIES=()
if [ "$HAS_PROPERTIES" = 0 ]; then
  PROPERTIES+=(--properties-file "$ROOT/conf/spark-local.conf")
fi

if [ "$DEPLOY_MODE" = cluster ] && [ "$COMMAND" = ingest ]; then
  echo "[submit] cluster deploy mode: the driver does not see this shell's SPARKDL_DEID_KEY;" \
       "give it to the driver through the cluster manager (README: Running on a cluster)" >&2
fi

CMD=("$SPARK_HOME/bin/spark-submit" --master "$MASTER" --name "sparkdl-$COMMAND"
     "${PROPERTIES[@]}" --load-spark-defaults
     --py-files "$PY_FILES" "${PYTHON_CONF[@]}"
     "${SUBMIT_ARGS[@]}"
     "$ROOT/scripts/sparkdl_main.py" "$COMMAND" "${APP_ARGS[@]}")
if [ "$DRY_RUN" = 1 ]; then
  printf '%q ' "${CMD[@]}"; echo
  exit 0
fi
echo "[submit] sparkdl $COMMAND on $MASTER with $(basename "$PY_FILES")" >&2
exec "${CMD[@]}"
