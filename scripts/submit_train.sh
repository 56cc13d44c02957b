#!/usr/bin/env bash
# sparkdl train through spark-submit, against any master.
#   scripts/submit_train.sh [--master URL] [spark-submit options] -- --data OUT --model-dir M [train options]
# e.g. scripts/submit_train.sh --master spark://host:7077 --properties-file conf/spark-gpu-cluster.conf \
#        -- --data /data/out --model-dir /models/m1 --num-workers 4 --use-gpu
# The cluster needs --num-workers task slots free at once (barrier stage): see conf/spark-gpu-cluster.conf.
# See scripts/submit.sh for the options, the environment variables and how code is shipped.
exec "$(dirname "${BASH_SOURCE[0]}")/submit.sh" train "$@"
