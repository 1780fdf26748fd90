# Shared helpers for the e2e scenario scripts: checks that print what they verified,
# a pass/fail tally, and clean-up of processes this script started (by PID).

PASSED=0
FAILED=0
FAILURES=()
PIDS=()

# check NAME CMD... : runs CMD, counts it, prints one line.
check() {
    local name="$1"; shift
    local out
    if out=$("$@" 2>&1); then
        PASSED=$((PASSED + 1))
        echo "  ok   $name"
    else
        FAILED=$((FAILED + 1))
        FAILURES+=("$name")
        echo "  FAIL $name"
        echo "$out" | sed 's/^/       | /' | head -20
    fi
}

# expect_output NAME PATTERN CMD... : CMD must succeed and print a line matching PATTERN.
expect_output() {
    local name="$1" pattern="$2"; shift 2
    check "$name" bash -c 'out=$("$@" 2>&1) || { echo "$out"; exit 1; }; echo "$out" | grep -Eq -- "$0" || { echo "expected /$0/ in:"; echo "$out"; exit 1; }' "$pattern" "$@"
}

# expect_fail NAME PATTERN CMD... : CMD must fail and print PATTERN.
expect_fail() {
    local name="$1" pattern="$2"; shift 2
    check "$name" bash -c 'if out=$("$@" 2>&1); then echo "expected a failure, got:"; echo "$out"; exit 1; fi; echo "$out" | grep -Eq -- "$0" || { echo "expected /$0/ in:"; echo "$out"; exit 1; }' "$pattern" "$@"
}

cleanup_pids() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}

summary() {
    echo
    if [ "$FAILED" -gt 0 ]; then
        echo "failed checks:"
        printf '  - %s\n' "${FAILURES[@]}"
    fi
    echo "e2e: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

# wait_for SECONDS CMD... : polls CMD until it succeeds.
wait_for() {
    local secs="$1"; shift
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.2
    done
}
