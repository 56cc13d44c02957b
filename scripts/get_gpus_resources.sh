#!/usr/bin/env bash
# Spark GPU discovery script: prints this host's NVIDIA GPUs as Spark resource JSON, e.g.
#   {"name": "gpu", "addresses": ["0", "1"]}
# Use with: --conf spark.executor.resource.gpu.discoveryScript=/path/get_gpus_resources.sh
# (and spark.worker.* on standalone, spark.driver.* for local mode). Addresses are nvidia-smi
# indices, which is what CUDA_VISIBLE_DEVICES expects.
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "get_gpus_resources.sh: nvidia-smi not found on $(hostname): no NVIDIA driver here." \
       "Install the driver or do not request GPUs (spark.*.resource.gpu.amount)." >&2
  exit 1
fi

indices=$(nvidia-smi --query-gpu=index --format=csv,noheader)
addresses=""
for index in $indices; do
  addresses="${addresses:+$addresses, }\"${index}\""
done
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
