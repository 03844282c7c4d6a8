#!/usr/bin/env bash
# Runs the test suite once per Keras backend (Keras reads KERAS_BACKEND once
# per process) and prints one combined closing line.
set -u
PYTHON=${PYTHON:-python}
passed=0
failed=0
status=0
for backend in jax tensorflow torch; do
    echo "=== KERAS_BACKEND=$backend ==="
    log=$(mktemp)
    KERAS_BACKEND=$backend "$PYTHON" -m pytest -q -p no:cacheprovider "$@" \
        2>&1 | tee "$log"
    code=${PIPESTATUS[0]}
    summary=$(grep -E "^[=]* ?[0-9]+ (passed|failed)" "$log" | tail -n 1)
    p=$(echo "$summary" | grep -oE "[0-9]+ passed" | grep -oE "[0-9]+")
    f=$(echo "$summary" | grep -oE "[0-9]+ failed" | grep -oE "[0-9]+")
    e=$(echo "$summary" | grep -oE "[0-9]+ error" | grep -oE "[0-9]+")
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${e:-0}))
    echo "backend $backend: ${p:-0} passed, ${f:-0} failed, ${e:-0} errors (exit $code)"
    # Exit 5 means no test ran: that is a failure of the matrix too.
    if [ "$code" -ne 0 ]; then status=1; fi
    rm -f "$log"
done
echo "total: $passed passed, $failed failed"
exit $status
