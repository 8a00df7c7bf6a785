#!/usr/bin/env bash
# qemu-user smoke test of cross-built binaries: --version, config check on every shipped
# config, and the in-process two-node selftest over loopback QUIC.
# Usage: bash cross/smoke.sh [TARGET...]   (default: every dist/<target>/awl)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
qemu_for() {
    case $1 in
        mipsel-*) echo qemu-mipsel-static ;;
        mips-*) echo qemu-mips-static ;;
        armv7-*|arm-*) echo qemu-arm-static ;;
        aarch64-*) echo qemu-aarch64-static ;;
        x86_64-*) echo qemu-x86_64-static ;;
    esac
}
targets=("$@")
if [ ${#targets[@]} = 0 ]; then
    for d in dist/*/awl; do [ -e "$d" ] && targets+=("$(basename "$(dirname "$d")")"); done
fi
PASSED=0; FAILED=0
run() {
    local what=$1; shift
    if out=$("$@" 2>&1); then PASSED=$((PASSED + 1)); echo "PASS $what: ${out%%$'\n'*}"
    else FAILED=$((FAILED + 1)); echo "FAIL $what:"; echo "$out" | tail -5; fi
}
for t in "${targets[@]}"; do
    q=$(qemu_for "$t"); bin=dist/$t/awl
    run "$t --version" "$q" "$bin" --version
    for c in configs/*; do run "$t config check $(basename "$c")" "$q" "$bin" config check "$c"; done
    run "$t selftest" timeout 120 "$q" "$bin" selftest
done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
