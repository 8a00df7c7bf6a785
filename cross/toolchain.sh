#!/usr/bin/env bash
# Installs what cross builds need, from the package registries only (idempotent):
# qemu-user, zig + cargo-zigbuild (PyPI, in /opt/awl-zig), musl std for x86_64/aarch64 from
# rustup, rust-src for nightly -Zbuild-std; if rustup can't serve them, Debian's rustc-web +
# rust-web-src (RUSTC_BOOTSTRAP=1 -Zbuild-std) — see docs/BENCHMARKS.md and toolchain notes.
# Prints the environment to use: eval "$(cross/toolchain.sh)".
set -euo pipefail
log() { echo "toolchain: $*" >&2; }

# binutils-multiarch: an objcopy that edits MIPS/ARM ELF files too.
if ! command -v qemu-mipsel-static >/dev/null || ! command -v file >/dev/null || ! dpkg -s binutils-multiarch >/dev/null 2>&1; then
    log "installing qemu-user-static, file, binutils-multiarch"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static file binutils-multiarch >&2
fi
if [ ! -x /opt/awl-zig/bin/cargo-zigbuild ]; then
    log "installing zig and cargo-zigbuild (PyPI)"
    python3 -m venv /opt/awl-zig >&2
    /opt/awl-zig/bin/pip install -q ziglang==0.17.1 cargo-zigbuild==0.24.1 >&2
fi
# Route for build-std targets: nightly + rust-src, else Debian's 1.96 with RUSTC_BOOTSTRAP.
BUILD_STD_TOOLCHAIN=""
if rustup toolchain list 2>/dev/null | grep -q '^nightly' && rustup component add rust-src --toolchain nightly >&2 2>&1; then
    BUILD_STD_TOOLCHAIN=nightly
else
    log "rustup nightly/rust-src unavailable: using Debian rustc-web + rust-web-src"
    if [ ! -x /usr/bin/rustc ] || ! dpkg -s rust-web-src >/dev/null 2>&1; then
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src >&2
    fi
    rustup toolchain link deb /usr >&2 2>&1 || true
    BUILD_STD_TOOLCHAIN=deb
fi
# Prebuilt musl std where rustup serves it; else those targets use build-std too.
PREBUILT=""
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    if rustup target add "$t" >&2 2>&1; then PREBUILT="$PREBUILT $t"; fi
done
mkdir -p "$PWD/.cache/zig"
echo "export PATH=/opt/awl-zig/bin:\$PATH"
echo "export XDG_CACHE_HOME=$PWD/.cache ZIG_GLOBAL_CACHE_DIR=$PWD/.cache/zig"
echo "export AWL_BUILD_STD_TOOLCHAIN=$BUILD_STD_TOOLCHAIN"
echo "export AWL_PREBUILT_STD='${PREBUILT# }'"
