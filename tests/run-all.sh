#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, rust-libp2p interop, namespace
# end-to-end tests (root), LuCI view tests and package tests when present.
# Usage: bash tests/run-all.sh [--quick]   (--quick skips interop and namespace tests)
# Prints one line per step and ends with "N passed, M failed"; exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1

PASSED=0
FAILED=0
FAILED_STEPS=()
step() {
    local name=$1; shift
    local t0=$SECONDS
    echo "=== $name"
    if "$@"; then
        PASSED=$((PASSED + 1)); echo "--- ok: $name ($((SECONDS - t0)) s)"
    else
        FAILED=$((FAILED + 1)); FAILED_STEPS+=("$name"); echo "--- FAILED: $name ($((SECONDS - t0)) s)"
    fi
}

bash tests/deps.sh || echo "(continuing without some test dependencies)"
step "cargo fmt --check" cargo fmt --check
step "cargo clippy" cargo clippy --all-targets -- -D warnings
step "cargo test" cargo test
# The fuzz targets use the library's parsers by path: a moved module must not break them
# silently (fuzzing itself runs in .ci/run).
[ -f fuzz/Cargo.toml ] && step "fuzz targets compile" bash -c "cd fuzz && cargo check --quiet --bins"
cargo build --quiet --bin awl && export AWL_BIN="$ROOT/target/debug/awl"

if [ "$QUICK" = 0 ] && [ -f tests/interop/Cargo.toml ]; then
    step "interop with rust-libp2p" bash -c "cd tests/interop && cargo test"
fi

if [ "$QUICK" = 0 ]; then
    for t in tests/e2e_*.sh; do
        [ -e "$t" ] || continue
        step "$(basename "$t" .sh)" bash "$t"
    done
fi

for t in tests/packaging/*.sh; do
    [ -e "$t" ] || continue
    step "$(basename "$t" .sh)" bash "$t"
done

if [ -d luci-app-awl/tests ] && command -v node >/dev/null; then
    step "luci-app-awl views" node --test luci-app-awl/tests/
fi

echo
[ "${#FAILED_STEPS[@]}" -gt 0 ] && echo "failed: ${FAILED_STEPS[*]}"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
