#!/usr/bin/env bash
# Runs the test suite once per Keras backend (Keras reads KERAS_BACKEND once
# per process) and prints one combined closing line.
#
# The JAX suite takes about as long as the other two together, and each
# pytest process keeps about one core busy, so by default JAX runs beside
# TensorFlow-then-torch (two lanes); the logs are printed whole, in backend
# order, once all are done. TEST_LANES=1 runs them one after the other
# with the output live.
set -u
PYTHON=${PYTHON:-python}
TEST_LANES=${TEST_LANES:-2}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# run_backend BACKEND LIVE PYTEST_ARGS...: LIVE=1 also prints the output.
run_backend() {
    local backend=$1 live=$2
    shift 2
    KERAS_BACKEND=$backend "$PYTHON" -m pytest -q -p no:cacheprovider "$@" \
        2>&1 | if [ "$live" = 1 ]; then tee "$logs/$backend.log"; else
            cat > "$logs/$backend.log"; fi
    echo "${PIPESTATUS[0]}" > "$logs/$backend.code"
}

if [ "$TEST_LANES" -ge 2 ]; then
    run_backend jax 0 "$@" &
    jax_lane=$!
    run_backend tensorflow 0 "$@"
    run_backend torch 0 "$@"
    wait "$jax_lane"
fi

passed=0
failed=0
status=0
for backend in jax tensorflow torch; do
    echo "=== KERAS_BACKEND=$backend ==="
    if [ "$TEST_LANES" -ge 2 ]; then
        cat "$logs/$backend.log"
    else
        run_backend "$backend" 1 "$@"
    fi
    code=$(cat "$logs/$backend.code")
    summary=$(grep -E "^[=]* ?[0-9]+ (passed|failed)" "$logs/$backend.log" | tail -n 1)
    p=$(echo "$summary" | grep -oE "[0-9]+ passed" | grep -oE "[0-9]+")
    f=$(echo "$summary" | grep -oE "[0-9]+ failed" | grep -oE "[0-9]+")
    e=$(echo "$summary" | grep -oE "[0-9]+ error" | grep -oE "[0-9]+")
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${e:-0}))
    echo "backend $backend: ${p:-0} passed, ${f:-0} failed, ${e:-0} errors (exit $code)"
    # Exit 5 means no test ran: that is a failure of the matrix too.
    if [ "$code" -ne 0 ]; then status=1; fi
done
echo "total: $passed passed, $failed failed"
exit $status
