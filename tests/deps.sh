#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine, if missing (root only; idempotent).
# Called by tests/run-all.sh and .ci/run. Cross-build tools (zig, rustup targets) come from
# cross/toolchain.sh when a test needs them.
set -uo pipefail
[ "$(id -u)" = 0 ] || { echo "deps: not root, installing nothing"; exit 0; }
need=()
want() { command -v "$1" >/dev/null || need+=("$2"); }
want ip iproute2; want ping iputils-ping; want iperf3 iperf3; want nft nftables
want python3 python3; want file file; want qemu-mipsel-static qemu-user-static
want signify-openbsd signify-openbsd; want shellcheck shellcheck; want openssl openssl
want zopfli zopfli; want gcc gcc; want conntrack conntrack; want ethtool ethtool
want dig bind9-dnsutils; want curl curl; want setpriv util-linux; want faketime faketime
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
dpkg -s binutils-multiarch >/dev/null 2>&1 || need+=(binutils-multiarch)
if [ ${#need[@]} -gt 0 ]; then
    echo "deps: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
        echo "deps: apt-get failed"
        exit 1
    fi
fi
# Optional: headless Chromium for the LuCI screenshots (skipped, and said so, without it).
if ! command -v chromium >/dev/null && [ "${AWL_NO_CHROMIUM:-0}" != 1 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
        || echo "deps: chromium not installed; LuCI screenshots will be skipped"
fi
exit 0
