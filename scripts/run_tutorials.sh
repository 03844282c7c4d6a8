#!/usr/bin/env bash
# Runs every tutorial in examples/tutorials/ on one backend.
#   KERAS_NORMS_SMOKE=1 bash scripts/run_tutorials.sh   (CI: tiny sizes)
#   bash scripts/run_tutorials.sh                       (full: the figures)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export KERAS_BACKEND=${KERAS_BACKEND:-torch}
# The smoke runs' tiny models gain nothing from threads, and torch's
# threads spin when the cores are busy (several times slower on a shared
# machine).
if [ "${KERAS_NORMS_SMOKE:-0}" != "0" ]; then
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi
for script in examples/tutorials/[0-9]*.py; do
    start=$(date +%s)
    echo "== $script (KERAS_BACKEND=$KERAS_BACKEND, smoke=${KERAS_NORMS_SMOKE:-0})"
    "$PYTHON" "$script"
    echo "== $script: $(( $(date +%s) - start )) s"
done
