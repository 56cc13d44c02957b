#!/usr/bin/env bash
# The demo on the embedded default: set up, then synth → ingest → train → evaluate on local[*].
# Everything goes under demo-output/ (override with DEMO_OUT); DEMO_PATIENTS sets the cohort size.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL=2 TF_USE_LEGACY_KERAS=1
OUT="${DEMO_OUT:-$ROOT/demo-output}"
PATIENTS="${DEMO_PATIENTS:-30}"
SPARKDL=".venv/bin/sparkdl"
rm -rf "$OUT" && mkdir -p "$OUT"
# A fresh key for this demo only, held in memory: sparkdl never writes a key anywhere.
SPARKDL_DEID_KEY="$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(32))')"
export SPARKDL_DEID_KEY
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

step "1/5 synth: a synthetic chest-CT cohort of $PATIENTS patients with nodules and fake PHI"
"$SPARKDL" synth "$OUT/cohort" --patients "$PATIENTS" --seed 7

step "2/5 ingest: de-identify, catalog, HU volumes, 32³ patches (Spark local[*])"
"$SPARKDL" ingest "$OUT/cohort/dicom" --output "$OUT/dataset" \
  --annotations "$OUT/cohort/annotations.csv" --candidates "$OUT/cohort/candidates.csv"

step "3/5 train: 2 workers as Spark barrier tasks, MultiWorkerMirroredStrategy"
"$SPARKDL" train --data "$OUT/dataset" --model-dir "$OUT/model" --num-workers 2

step "4/5 evaluate: the test split"
"$SPARKDL" evaluate --model-dir "$OUT/model" --data "$OUT/dataset" --report "$OUT/report"

step "5/5 inspect: what the dataset holds"
"$SPARKDL" inspect --data "$OUT/dataset"

echo
echo "Done in $(( $(date +%s) - start )) s. Open next:"
echo "  report:    $OUT/report/summary.txt, $OUT/report/metrics.json, $OUT/report/roc.png,"
echo "             $OUT/report/froc.png (LUNA16 FROC of the candidates), $OUT/report/curves.png (training curves)"
echo "  model:     $OUT/model (model.keras, history.json, tensorboard/ scalars)"
echo "  dataset:   $OUT/dataset (manifest.json, catalog/, volumes/, patches/), picture: $OUT/dataset/inspect.png"
echo "  notebooks: notebooks/01_explore_dataset.ipynb, notebooks/02_train_evaluate.ipynb"
