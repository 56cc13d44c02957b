#!/usr/bin/env bash
# sparkdl ingest through spark-submit, against any master.
#   scripts/submit_ingest.sh [--master URL] [spark-submit options] -- INPUT... --output OUT [ingest options]
# e.g. SPARKDL_DEID_KEY=... scripts/submit_ingest.sh --master spark://host:7077 \
#        --conf spark.executor.memory=8g -- /data/in --output /data/out --annotations a.csv
# See scripts/submit.sh for the options, the environment variables and how code is shipped.
exec "$(dirname "${BASH_SOURCE[0]}")/submit.sh" ingest "$@"
